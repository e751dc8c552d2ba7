//! Motion-compensated prediction in the pixel domain, for predicted frames that go without a
//! learned base: each 16×16 block of the frame is predicted from the previous decoded frame
//! moved by its own vector, in quarter pixels, and the detail layer codes what the prediction
//! misses. Interpolation is a separable 6-tap filter in integers, so the prediction is the same
//! on every machine; vectors are coded as their change from the median of the vectors left,
//! above and above-right, under one table of the scale bank chosen per frame.

use crate::coders::CoderError;
use crate::entropy::{self, ScaleBank, StreamEnd, SymbolDecoder};
use crate::varint;
use crate::RgbFrame;

/// Side of a motion block.
pub(super) const MOTION_BLOCK: usize = 16;
/// Sub-pixel positions per pixel.
const SUBPEL: i32 = 4;
/// The largest vector component a stream may carry, in quarter pixels (256 pixels).
const MAX_COMPONENT: i32 = 1024;
/// Integer search range around the predicted vector, in pixels.
const SEARCH: i32 = 8;

/// The step byte a motion-compensated frame's layer is written with: its quantizer step is the
/// stream's detail step times [`step_factor`] of it. Coarser than the intra frame's, as
/// x264's P-frames are: the intra frame's detail carries on through the moved pictures.
pub(super) const MOVED_STEP_BYTE: u8 = 136;

/// The factor a step byte puts on the detail step: `2^((byte − 128) / 16)`.
pub(super) fn step_factor(byte: u8) -> f32 {
    ((f64::from(byte) - 128.0) / 16.0).exp2() as f32
}

/// Filter taps per quarter-pixel phase (each sums to 64), for samples at −2 … +3.
const TAPS: [[i32; 6]; 4] = [
    [0, 0, 64, 0, 0, 0],
    [2, -9, 57, 18, -6, 2],
    [2, -10, 40, 40, -10, 2],
    [2, -6, 18, 57, -9, 2],
];

/// A frame's vectors, one per motion block in raster order, in quarter pixels `(x, y)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MotionField {
    pub(super) vectors: Vec<(i32, i32)>,
}

/// Motion blocks across and down a `width`×`height` frame.
pub(super) fn grid(width: usize, height: usize) -> (usize, usize) {
    (width.div_ceil(MOTION_BLOCK), height.div_ceil(MOTION_BLOCK))
}

/// The median of the causal neighbours' vectors (left, above, above-right; those there are).
fn predicted(vectors: &[(i32, i32)], cols: usize, b: usize) -> (i32, i32) {
    let (row, col) = (b / cols, b % cols);
    let mut near = Vec::with_capacity(3);
    if col > 0 {
        near.push(vectors[b - 1]);
    }
    if row > 0 {
        near.push(vectors[b - cols]);
        if col + 1 < cols {
            near.push(vectors[b - cols + 1]);
        }
    }
    let median = |mut v: Vec<i32>| {
        v.sort_unstable();
        match v.len() {
            0 => 0,
            2 => v[0],
            n => v[n / 2],
        }
    };
    (
        median(near.iter().map(|v| v.0).collect()),
        median(near.iter().map(|v| v.1).collect()),
    )
}

impl MotionField {
    /// The values coded: each vector's change from its prediction, x then y.
    fn changes(&self, cols: usize) -> Vec<i32> {
        let mut out = Vec::with_capacity(2 * self.vectors.len());
        for (b, &(x, y)) in self.vectors.iter().enumerate() {
            let (px, py) = predicted(&self.vectors, cols, b);
            out.extend([x - px, y - py]);
        }
        out
    }

    /// The field's bytes: its length (varint), the table byte, the ANS words.
    pub(super) fn code(&self, cols: usize, out: &mut Vec<u8>) -> Result<(), CoderError> {
        let bank = ScaleBank::get();
        let changes = self.changes(cols);
        let index = bank.cheapest_of_all(&changes);
        let mut items = Vec::with_capacity(changes.len());
        for &v in &changes {
            bank.push_symbols(index, v, &mut items);
        }
        let words = entropy::encode(items.into_iter())?;
        let mut body = vec![index];
        entropy::write_words(&mut body, &words);
        varint::write_u64(out, body.len() as u64);
        out.extend_from_slice(&body);
        Ok(())
    }

    /// Reads a field of `blocks` vectors from the front of `input`, leaving the rest.
    pub(super) fn parse(
        input: &mut &[u8],
        (cols, rows): (usize, usize),
        end: StreamEnd,
    ) -> Result<Self, CoderError> {
        let corrupt = |what: &str| CoderError::Payload(format!("motion field: {what}"));
        let len = varint::read_u64(input).map_err(|e| corrupt(&format!("length: {e}")))?;
        if len > input.len() as u64 || len == 0 {
            return Err(corrupt("its length runs past the payload"));
        }
        let (body, rest) = input.split_at(len as usize);
        *input = rest;
        let index = entropy::check_table_index(body[0])?;
        let mut decoder = SymbolDecoder::new(&body[1..], end)?;
        let bank = ScaleBank::get();
        let blocks = cols * rows;
        let mut vectors = Vec::with_capacity(blocks);
        for b in 0..blocks {
            let (px, py) = predicted(&vectors, cols, b);
            let dx = bank.decode(index, &mut decoder)?;
            let dy = bank.decode(index, &mut decoder)?;
            let v = (px.saturating_add(dx), py.saturating_add(dy));
            if v.0.abs() > MAX_COMPONENT || v.1.abs() > MAX_COMPONENT {
                return Err(corrupt("a vector beyond 256 pixels"));
            }
            vectors.push(v);
        }
        decoder.finish()?;
        Ok(Self { vectors })
    }
}

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
fn predict_block_reference(
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
fn predict_block(
    reference: &RgbFrame,
    c: usize,
    (x0, y0): (usize, usize),
    (bw, bh): (usize, usize),
    v: (i32, i32),
    out: &mut Vec<i32>,
) {
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

/// The whole frame predicted from `reference` by `field`.
pub(super) fn compensate(reference: &RgbFrame, field: &MotionField) -> RgbFrame {
    let (w, h) = (reference.width as usize, reference.height as usize);
    let (cols, _) = grid(w, h);
    let mut data = vec![0u8; 3 * w * h];
    let mut block = Vec::new();
    for (b, &v) in field.vectors.iter().enumerate() {
        let (x0, y0) = ((b % cols) * MOTION_BLOCK, (b / cols) * MOTION_BLOCK);
        let size = (MOTION_BLOCK.min(w - x0), MOTION_BLOCK.min(h - y0));
        for c in 0..3 {
            predict_block(reference, c, (x0, y0), size, v, &mut block);
            for (i, &s) in block.iter().enumerate() {
                let (x, y) = (x0 + i % size.0, y0 + i / size.0);
                data[(y * w + x) * 3 + c] = s as u8;
            }
        }
    }
    RgbFrame::from_data(w as u32, h as u32, data).expect("the size matches")
}

/// One channel-summed plane of a frame (R + 2G + B), what the search matches on.
fn luma(frame: &RgbFrame) -> Vec<i32> {
    frame
        .data
        .chunks_exact(3)
        .map(|p| i32::from(p[0]) + 2 * i32::from(p[1]) + i32::from(p[2]))
        .collect()
}

/// Finds a vector for every block of `source` against `reference`: the integer offset within
/// [`SEARCH`] pixels of the predicted vector (and of zero) with the least absolute difference
/// plus `lambda` per bit of the vector's change, then the best half and quarter positions
/// around it.
pub(super) fn estimate(source: &RgbFrame, reference: &RgbFrame, lambda: f64) -> MotionField {
    let (w, h) = (source.width as usize, source.height as usize);
    let (cols, rows) = grid(w, h);
    let (src, refl) = (luma(source), luma(reference));
    let lum = |x: i32, y: i32| {
        refl[y.clamp(0, h as i32 - 1) as usize * w + x.clamp(0, w as i32 - 1) as usize]
    };
    let bits = |d: i32| 1.0 + 2.0 * f64::from(d.unsigned_abs() + 1).log2();
    let mut vectors: Vec<(i32, i32)> = Vec::with_capacity(cols * rows);
    let mut block = Vec::new();
    let mut ref_frame_luma: Option<RgbFrame> = None;
    for b in 0..cols * rows {
        let (x0, y0) = ((b % cols) * MOTION_BLOCK, (b / cols) * MOTION_BLOCK);
        let (bw, bh) = (MOTION_BLOCK.min(w - x0), MOTION_BLOCK.min(h - y0));
        let p = predicted(&vectors, cols, b);
        let cost_of =
            |v: (i32, i32), sad: i64| sad as f64 + lambda * (bits(v.0 - p.0) + bits(v.1 - p.1));
        let integer_sad = |dx: i32, dy: i32, limit: i64| {
            let mut sad = 0i64;
            for y in 0..bh {
                let row = (y0 + y) * w;
                for x in 0..bw {
                    let r = lum((x0 + x) as i32 + dx, (y0 + y) as i32 + dy);
                    sad += i64::from((src[row + x0 + x] - r).abs());
                }
                if sad >= limit {
                    break;
                }
            }
            sad
        };
        let mut best = ((0, 0), f64::INFINITY);
        let centres = [(p.0.div_euclid(SUBPEL), p.1.div_euclid(SUBPEL)), (0, 0)];
        for (ci, &(cx, cy)) in centres.iter().enumerate() {
            if ci == 1 && centres[0] == (0, 0) {
                break;
            }
            for dy in -SEARCH..=SEARCH {
                for dx in -SEARCH..=SEARCH {
                    let (vx, vy) = (cx + dx, cy + dy);
                    let v = (vx * SUBPEL, vy * SUBPEL);
                    let limit = if best.1.is_finite() {
                        best.1 as i64 + 1
                    } else {
                        i64::MAX
                    };
                    let cost = cost_of(v, integer_sad(vx, vy, limit));
                    if cost < best.1 {
                        best = (v, cost);
                    }
                }
            }
        }
        // Half, then quarter positions around the best, on the interpolated picture.
        let reference_luma = ref_frame_luma.get_or_insert_with(|| {
            let data: Vec<u8> = refl.iter().map(|&l| ((l + 2) / 4) as u8).collect();
            let grey: Vec<u8> = data.iter().flat_map(|&g| [g, g, g]).collect();
            RgbFrame::from_data(w as u32, h as u32, grey).expect("the size matches")
        });
        let source_block: Vec<i32> = (0..bh)
            .flat_map(|y| (0..bw).map(move |x| (y, x)))
            .map(|(y, x)| (src[(y0 + y) * w + x0 + x] + 2) / 4)
            .collect();
        for step in [2, 1] {
            let centre = best.0;
            for (sx, sy) in [
                (-1, -1),
                (0, -1),
                (1, -1),
                (-1, 0),
                (1, 0),
                (-1, 1),
                (0, 1),
                (1, 1),
            ] {
                let v = (centre.0 + sx * step, centre.1 + sy * step);
                predict_block(reference_luma, 0, (x0, y0), (bw, bh), v, &mut block);
                let sad: i64 = block
                    .iter()
                    .zip(&source_block)
                    .map(|(&a, &s)| i64::from((a - s).abs()))
                    .sum();
                // The luma proxy is in quarter units here: scale the difference back.
                let cost = cost_of(v, 4 * sad);
                if cost < best.1 {
                    best = (v, cost);
                }
            }
        }
        let clamp = |c: i32| c.clamp(-MAX_COMPONENT, MAX_COMPONENT);
        vectors.push((clamp(best.0 .0), clamp(best.0 .1)));
    }
    MotionField { vectors }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texture(w: u32, h: u32, dx: i32, dy: i32) -> RgbFrame {
        let mut data = Vec::with_capacity((3 * w * h) as usize);
        for y in 0..h as i32 {
            for x in 0..w as i32 {
                let (u, v) = ((x - dx) as f64, (y - dy) as f64);
                let g = 128.0
                    + 60.0 * (u * 0.21).sin() * (v * 0.17).cos()
                    + 30.0 * (u * 0.05 + v * 0.07).sin();
                data.extend([g as u8, (255.0 - g) as u8, (g * 0.5) as u8]);
            }
        }
        RgbFrame::from_data(w, h, data).unwrap()
    }

    fn mse(a: &RgbFrame, b: &RgbFrame) -> f64 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.data.len() as f64
    }

    #[test]
    fn a_moved_picture_is_found_and_predicted_closely() {
        let reference = texture(96, 64, 0, 0);
        let moved = texture(96, 64, 5, -3);
        let field = estimate(&moved, &reference, 4.0);
        // Blocks away from the edges find the move exactly.
        let (cols, rows) = grid(96, 64);
        for r in 1..rows - 1 {
            for c in 1..cols - 1 {
                assert_eq!(field.vectors[r * cols + c], (-5 * SUBPEL, 3 * SUBPEL));
            }
        }
        let predicted = compensate(&reference, &field);
        let still = mse(&moved, &reference);
        assert!(
            mse(&moved, &predicted) < still / 20.0,
            "{} vs {still}",
            mse(&moved, &predicted)
        );
    }

    #[test]
    fn the_fast_prediction_equals_the_reference_everywhere() {
        let frame = texture(80, 48, 0, 0);
        let (mut fast, mut slow) = (Vec::new(), Vec::new());
        for (x0, y0, bw, bh) in [
            (0, 0, 16, 16),
            (32, 16, 16, 16),
            (64, 32, 16, 16),
            (48, 32, 16, 16),
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

    #[test]
    fn whole_pixel_vectors_copy_and_the_filters_keep_flat_areas_flat() {
        let reference = texture(48, 32, 0, 0);
        let (cols, rows) = grid(48, 32);
        let field = MotionField {
            vectors: vec![(0, 0); cols * rows],
        };
        assert_eq!(compensate(&reference, &field), reference);
        let flat = RgbFrame::from_data(48, 32, vec![77; 48 * 32 * 3]).unwrap();
        for v in [(1, 0), (2, 3), (-3, -1)] {
            let field = MotionField {
                vectors: vec![v; cols * rows],
            };
            assert_eq!(compensate(&flat, &field), flat);
        }
    }

    #[test]
    fn a_field_parses_back_exactly_and_forged_ones_are_errors() {
        let (cols, rows) = (5, 3);
        let field = MotionField {
            vectors: (0..15).map(|i| (i * 3 - 20, 7 - i)).collect(),
        };
        let mut bytes = Vec::new();
        field.code(cols, &mut bytes).unwrap();
        bytes.extend([9, 9]);
        let mut input = &bytes[..];
        let parsed = MotionField::parse(&mut input, (cols, rows), StreamEnd::Sealed).unwrap();
        assert_eq!(parsed, field);
        assert_eq!(input, &[9, 9]);
        for cut in 0..bytes.len() - 2 {
            let mut input = &bytes[..cut];
            assert!(MotionField::parse(&mut input, (cols, rows), StreamEnd::Sealed).is_err());
        }
        let far = MotionField {
            vectors: vec![(MAX_COMPONENT + 1, 0); 15],
        };
        let mut bytes = Vec::new();
        far.code(cols, &mut bytes).unwrap();
        let mut input = &bytes[..];
        assert!(MotionField::parse(&mut input, (cols, rows), StreamEnd::Sealed).is_err());
    }
}
