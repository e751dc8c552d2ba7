//! Sub-pixel interpolation: a block of the reference moved by a quarter-pixel vector, through a
//! separable 6-tap filter in integers, so the prediction is the same on every machine. A
//! reference kernel defines it; a fast one, checked equal to it in tests, serves the codec.

use crate::RgbFrame;

use super::MOTION_BLOCK;

/// Sub-pixel positions per pixel.
pub(super) const SUBPEL: i32 = 4;

/// Filter taps per quarter-pixel phase (each sums to 64), for samples at −2 … +3.
const TAPS: [[i32; 6]; 4] = [
    [0, 0, 64, 0, 0, 0],
    [2, -9, 57, 18, -6, 2],
    [2, -10, 40, 40, -10, 2],
    [2, -6, 18, 57, -9, 2],
];

/// Sample `(x, y)` of channel `c` of `frame`, the edges repeated beyond it.
fn sample(frame: &RgbFrame, c: usize, x: i32, y: i32) -> i32 {
    let w = frame.width as i32;
    let h = frame.height as i32;
    let (x, y) = (x.clamp(0, w - 1) as usize, y.clamp(0, h - 1) as usize);
    i32::from(frame.data[(y * frame.width as usize + x) * 3 + c])
}

/// The prediction of the `bw`×`bh` block at `(x0, y0)`, channel `c`, from `reference` moved by
/// `v` (quarter pixels): into `out`, row by row. The definition: every sample read through
/// [`sample`] (edges repeated), both passes always run. [`predict_block`] must equal it.
pub(super) fn predict_block_reference(
    reference: &RgbFrame,
    c: usize,
    (x0, y0): (usize, usize),
    (bw, bh): (usize, usize),
    v: (i32, i32),
    out: &mut Vec<i32>,
) {
    out.clear();
    let (ix, fx) = (v.0.div_euclid(SUBPEL), v.0.rem_euclid(SUBPEL) as usize);
    let (iy, fy) = (v.1.div_euclid(SUBPEL), v.1.rem_euclid(SUBPEL) as usize);
    let (hx, hy) = (&TAPS[fx], &TAPS[fy]);
    // Horizontal pass over the rows the vertical taps reach, then the vertical pass.
    let rows = bh + 5;
    let mut mid = vec![0i32; rows * bw];
    for r in 0..rows {
        let y = y0 as i32 + iy + r as i32 - 2;
        for col in 0..bw {
            let x = x0 as i32 + ix + col as i32;
            mid[r * bw + col] = (0..6)
                .map(|t| hx[t] * sample(reference, c, x + t as i32 - 2, y))
                .sum();
        }
    }
    for r in 0..bh {
        for col in 0..bw {
            let sum: i32 = (0..6).map(|t| hy[t] * mid[(r + t) * bw + col]).sum();
            out.push(((sum + 2048) >> 12).clamp(0, 255));
        }
    }
}

/// [`predict_block_reference`], fast: a block whose taps stay inside the frame reads the
/// samples directly, and a whole-pixel direction skips its pass (a phase-0 pass multiplies by
/// 64, which the rounding shift takes back exactly). Blocks at the edges take the reference.
/// Blocks are at most [`MOTION_BLOCK`] on a side.
pub(super) fn predict_block(
    reference: &RgbFrame,
    c: usize,
    (x0, y0): (usize, usize),
    (bw, bh): (usize, usize),
    v: (i32, i32),
    out: &mut Vec<i32>,
) {
    debug_assert!(bw <= MOTION_BLOCK && bh <= MOTION_BLOCK);
    let (w, h) = (reference.width as i32, reference.height as i32);
    let (ix, fx) = (v.0.div_euclid(SUBPEL), v.0.rem_euclid(SUBPEL) as usize);
    let (iy, fy) = (v.1.div_euclid(SUBPEL), v.1.rem_euclid(SUBPEL) as usize);
    let left = x0 as i32 + ix - 2;
    let top = y0 as i32 + iy - 2;
    if left < 0 || top < 0 || left + bw as i32 + 5 > w || top + bh as i32 + 5 > h {
        return predict_block_reference(reference, c, (x0, y0), (bw, bh), v, out);
    }
    out.clear();
    let stride = 3 * w as usize;
    let data = &reference.data;
    // Sample (x, y) of the block's window, x and y from its top-left tap.
    let at = |x: usize, y: usize| {
        i32::from(data[(top as usize + y) * stride + 3 * (left as usize + x) + c])
    };
    let (hx, hy) = (&TAPS[fx], &TAPS[fy]);
    match (fx, fy) {
        (0, 0) => {
            for r in 0..bh {
                out.extend((0..bw).map(|col| at(col + 2, r + 2)));
            }
        }
        (_, 0) => {
            for r in 0..bh {
                out.extend((0..bw).map(|col| {
                    let sum: i32 = (0..6).map(|t| hx[t] * at(col + t, r + 2)).sum();
                    ((sum + 32) >> 6).clamp(0, 255)
                }));
            }
        }
        (0, _) => {
            for r in 0..bh {
                out.extend((0..bw).map(|col| {
                    let sum: i32 = (0..6).map(|t| hy[t] * at(col + 2, r + t)).sum();
                    ((sum + 32) >> 6).clamp(0, 255)
                }));
            }
        }
        _ => {
            let rows = bh + 5;
            let mut mid = [0i32; (MOTION_BLOCK + 5) * MOTION_BLOCK];
            for r in 0..rows {
                for col in 0..bw {
                    mid[r * bw + col] = (0..6).map(|t| hx[t] * at(col + t, r)).sum();
                }
            }
            for r in 0..bh {
                out.extend((0..bw).map(|col| {
                    let sum: i32 = (0..6).map(|t| hy[t] * mid[(r + t) * bw + col]).sum();
                    ((sum + 2048) >> 12).clamp(0, 255)
                }));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::texture;
    use super::*;

    #[test]
    fn the_fast_prediction_equals_the_reference_everywhere() {
        let frame = texture(80, 48, 0, 0);
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for (x0, y0, bw, bh) in [
            (0, 0, 16, 16),
            (32, 16, 16, 16),
            (64, 32, 16, 16),
            (48, 32, 16, 16),
            (8, 8, 8, 8),
            (72, 40, 8, 8),
        ] {
            for vy in -11..=11 {
                for vx in -11..=11 {
                    for c in 0..3 {
                        predict_block(&frame, c, (x0, y0), (bw, bh), (vx, vy), &mut fast);
                        predict_block_reference(&frame, c, (x0, y0), (bw, bh), (vx, vy), &mut slow);
                        assert_eq!(fast, slow, "block ({x0}, {y0}), vector ({vx}, {vy})");
                    }
                }
            }
        }
    }
}
