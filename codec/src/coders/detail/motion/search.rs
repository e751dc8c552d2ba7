//! How the encoder finds a frame's motion. Each 16×16 block gets the vector of least cost —
//! the difference from the reference on a luma-like plane (R + 2G + B) plus `lambda` per bit
//! the vector would take (`field`'s coding, estimated) — moved as a whole; blocks of more than
//! one cell also try their cells on their own, each searched near the block's vector, its own
//! prediction and zero, and keep whichever costs less. Whole pixels are ranked by the sum of
//! absolute differences (windows, then a walk downhill); then the best of them and the
//! predicted vector, and the half and quarter positions around the better, by SATD on the
//! interpolated plane.

use crate::RgbFrame;

use super::field::{FieldLayout, Guide, Unit, Walk, SPLIT_GROUPS};
use super::interpolate::{predict_block, SUBPEL};
use super::{opposite, MotionField, MotionGrid, Side, CELL, MAX_COMPONENT};

/// Integer search range of a block around its predicted vector (and zero), in pixels.
const SEARCH: i32 = 8;
/// Most whole-pixel steps the search walks beyond its windows.
const MAX_WALK: usize = 32;
/// Integer search range of a cell around its block's vector, its own prediction and zero.
const CELL_SEARCH: i32 = 4;
/// `lambda` per unit of the detail step: what a bit of a vector is worth in the search's
/// distortions (on R + 2G + B). Measured on 30 frames of `bikes` against x264 medium, ranking
/// by SAD alone: 0.7, +148.5 %; 1.2, +132.1 %; 2, +133.5 %; 3, +150 %; 4, +167 %. With the
/// sub-pixel steps ranked by SATD: 1.5, +110.6 % (`cityCC0` +84.5 %); 2, +111.0 % (+83.3 %).
pub(in crate::coders::detail) const LAMBDA_PER_STEP: f64 = 2.0;

/// Estimated bits of a unit's "same" flag when it keeps its predicted vector, and when not, by
/// how many of the cells left and above kept theirs (the coded tables follow the content; these
/// are typical of camera video).
const SAME_BITS: [f64; 3] = [1.3, 0.6, 0.15];
const CHANGED_BITS: [f64; 3] = [0.7, 1.6, 3.3];
/// Estimated bits of a block's split flag, whole and split.
const WHOLE_BITS: f64 = 0.3;
const SPLIT_BITS: f64 = 2.5;

/// Estimated bits of a vector component's change `d` as the field codes it (flags: zero or
/// not, sign, one per bit of length, the bits below the leading one but those the written
/// layout drops from large changes). On 30 frames of `bikes`
/// against x264 medium: this, +27.1 %; `2 + length`, +27.9 %; `4 + length`, +27.5 %; the
/// bank-table estimate the search had before, `1 + 2·log2(|d| + 1)`, +27.7 % (`cityCC0`
/// +20.1 % against +19.9 %).
fn change_bits(d: i32) -> f64 {
    match d.unsigned_abs() {
        0 => 1.0,
        m => {
            let length = u32::BITS - m.leading_zeros();
            let coded = length - FieldLayout::WRITTEN.dropped_bits(length);
            3.0 + f64::from(coded)
        }
    }
}

/// The planes the search compares, and its rate weight.
struct Search {
    w: usize,
    h: usize,
    source: Vec<i32>,
    reference: Vec<i32>,
    /// The reference's plane in channel units (R + 2G + B over 4) as a grey frame, which the
    /// codec's interpolation moves to sub-pixel positions.
    reference_grey: RgbFrame,
    /// A bidirectional frame's second reference, the anchor after it (as `reference` and
    /// `reference_grey`): each candidate vector moves the reference by it and the anchor by
    /// its opposite, and the two are averaged (`super::compensate_between`).
    after: Option<(Vec<i32>, RgbFrame)>,
    lambda: f64,
}

/// R + 2G + B of every pixel.
fn luma(frame: &RgbFrame) -> Vec<i32> {
    frame
        .data
        .chunks_exact(3)
        .map(|p| i32::from(p[0]) + 2 * i32::from(p[1]) + i32::from(p[2]))
        .collect()
}

/// The 4-point Hadamard transform (unnormalized).
fn hadamard4([d0, d1, d2, d3]: [i32; 4]) -> [i32; 4] {
    let (a, b) = (d0 + d1, d0 - d1);
    let (c, e) = (d2 + d3, d2 - d3);
    [a + c, b + e, a - c, b - e]
}

/// A block of the frame: its top-left pixel and size.
type Area = ((usize, usize), (usize, usize));

impl Search {
    fn new(source: &RgbFrame, reference: &RgbFrame, after: Option<&RgbFrame>, lambda: f64) -> Self {
        let (w, h) = (source.width as usize, source.height as usize);
        let planes = |frame: &RgbFrame| {
            let plane = luma(frame);
            let grey: Vec<u8> = plane
                .iter()
                .flat_map(|&l| [((l + 2) / 4) as u8; 3])
                .collect();
            let grey = RgbFrame::from_data(w as u32, h as u32, grey).expect("size");
            (plane, grey)
        };
        let (reference, reference_grey) = planes(reference);
        Self {
            w,
            h,
            source: luma(source),
            reference_grey,
            reference,
            after: after.map(planes),
            lambda,
        }
    }

    /// The area of a unit of cells.
    fn area(&self, ((c, r), (sw, sh)): Unit) -> Area {
        let (x0, y0) = (c * CELL, r * CELL);
        (
            (x0, y0),
            ((sw * CELL).min(self.w - x0), (sh * CELL).min(self.h - y0)),
        )
    }

    /// SAD of `area` against the reference moved by whole pixels `(dx, dy)`, stopping once it
    /// reaches `limit`.
    fn integer_sad(&self, ((x0, y0), (bw, bh)): Area, (dx, dy): (i32, i32), limit: i64) -> i64 {
        let (w, h) = (self.w as i32, self.h as i32);
        let mut sad = 0i64;
        for y in 0..bh {
            let row = (y0 + y) * self.w;
            let ry = ((y0 + y) as i32 + dy).clamp(0, h - 1) as usize * self.w;
            let ay = ((y0 + y) as i32 - dy).clamp(0, h - 1) as usize * self.w;
            for x in 0..bw {
                let rx = ((x0 + x) as i32 + dx).clamp(0, w - 1) as usize;
                let predicted = match &self.after {
                    None => self.reference[ry + rx],
                    Some((after, _)) => {
                        let ax = ((x0 + x) as i32 - dx).clamp(0, w - 1) as usize;
                        (self.reference[ry + rx] + after[ay + ax] + 1) >> 1
                    }
                };
                sad += i64::from((self.source[row + x0 + x] - predicted).abs());
            }
            if sad >= limit {
                break;
            }
        }
        sad
    }

    /// SATD of `area` against the reference moved by `v` in quarter pixels (interpolated):
    /// the absolute 4×4 Hadamard transforms of the difference, halved. It ranks candidates as
    /// the detail layer's transforms will cost their residual, which SAD does not.
    fn subpel_satd(&self, ((x0, y0), (bw, bh)): Area, v: (i32, i32), block: &mut Vec<i32>) -> i64 {
        predict_block(&self.reference_grey, 0, (x0, y0), (bw, bh), v, block);
        if let Some((_, after)) = &self.after {
            let mut other = Vec::with_capacity(block.len());
            predict_block(after, 0, (x0, y0), (bw, bh), (-v.0, -v.1), &mut other);
            for (s, t) in block.iter_mut().zip(other) {
                *s = (*s + t + 1) >> 1;
            }
        }
        // The source at the grey plane's precision, so that a perfect match differs by nothing.
        let diff = |x: usize, y: usize| {
            4 * ((self.source[(y0 + y) * self.w + x0 + x] + 2) / 4 - block[y * bw + x])
        };
        let (tiled_w, tiled_h) = (bw - bw % 4, bh - bh % 4);
        let mut total = 0i64;
        for ty in (0..tiled_h).step_by(4) {
            for tx in (0..tiled_w).step_by(4) {
                let rows: [[i32; 4]; 4] = std::array::from_fn(|y| {
                    hadamard4(std::array::from_fn(|x| diff(tx + x, ty + y)))
                });
                total += (0..4)
                    .flat_map(|x| hadamard4(rows.map(|row| row[x])))
                    .map(|v| i64::from(v.abs()))
                    .sum::<i64>();
            }
        }
        // Samples beyond whole 4×4 tiles (areas cut by the frame's edge): absolute differences.
        for y in 0..bh {
            for x in 0..bw {
                if x >= tiled_w || y >= tiled_h {
                    total += 2 * i64::from(diff(x, y).abs());
                }
            }
        }
        total / 2
    }

    /// The vector of least cost for `area`, whose predicted vector is `p` and whose same-flag
    /// context is `context`: `p` itself, whole pixels within `range` of each of `centres`,
    /// then half and quarter pixels around the best. With its cost.
    fn best_vector(
        &self,
        area: Area,
        p: (i32, i32),
        context: usize,
        centres: &[(i32, i32)],
        range: i32,
    ) -> ((i32, i32), f64) {
        let bits = |v: (i32, i32)| {
            if v == p {
                SAME_BITS[context]
            } else {
                CHANGED_BITS[context] + change_bits(v.0 - p.0) + change_bits(v.1 - p.1)
            }
        };
        // Every vector tried is one the field can hold: large changes rounded toward `p`.
        let legal = |v: (i32, i32)| super::legal_vector(v, p);
        let cost = |v: (i32, i32), sad: i64| sad as f64 + self.lambda * bits(v);
        let mut block = Vec::new();
        let mut best = ((0, 0), f64::INFINITY);
        let mut tried: Vec<(i32, i32)> = Vec::with_capacity(centres.len());
        for &(cx, cy) in centres {
            if tried.contains(&(cx, cy)) {
                continue;
            }
            tried.push((cx, cy));
            for dy in -range..=range {
                for dx in -range..=range {
                    let (vx, vy) = (cx + dx, cy + dy);
                    let v = legal((vx * SUBPEL, vy * SUBPEL));
                    let limit = (best.1 as i64).saturating_add(1);
                    let c = cost(v, self.integer_sad(area, (vx, vy), limit));
                    if c < best.1 {
                        best = (v, c);
                    }
                }
            }
        }
        // Beyond the windows: walk whole pixels downhill while a neighbour costs less (motion
        // faster than the windows reach).
        for _ in 0..MAX_WALK {
            let centre = best.0;
            for (sx, sy) in [(-1, 0), (1, 0), (0, -1), (0, 1)] {
                let raw = (centre.0 + sx * SUBPEL, centre.1 + sy * SUBPEL);
                let whole = (raw.0.div_euclid(SUBPEL), raw.1.div_euclid(SUBPEL));
                let v = legal(raw);
                let c = cost(
                    v,
                    self.integer_sad(area, whole, (best.1 as i64).saturating_add(1)),
                );
                if c < best.1 {
                    best = (v, c);
                }
            }
            if best.0 == centre {
                break;
            }
        }
        // Then by SATD: the best whole-pixel vector against the predicted one, and the half and
        // quarter positions around the better.
        let whole = legal(best.0);
        best = (
            whole,
            cost(whole, self.subpel_satd(area, whole, &mut block)),
        );
        if p != whole {
            let at_p = cost(p, self.subpel_satd(area, p, &mut block));
            if at_p < best.1 {
                best = (p, at_p);
            }
        }
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
                let v = legal((centre.0 + sx * step, centre.1 + sy * step));
                if v == centre {
                    continue;
                }
                let c = cost(v, self.subpel_satd(area, v, &mut block));
                if c < best.1 {
                    best = (v, c);
                }
            }
        }
        let clamp = |c: i32| c.clamp(-MAX_COMPONENT, MAX_COMPONENT);
        (legal((clamp(best.0 .0), clamp(best.0 .1))), best.1)
    }

    /// Searches `unit` given what `walk` has decided before it: its vector and cost.
    fn unit(&self, walk: &Walk, unit: Unit, near: (i32, i32), range: i32) -> ((i32, i32), f64) {
        let p = walk.predictor(unit);
        let context = walk.same_group(unit.0) - SPLIT_GROUPS;
        let whole = |v: (i32, i32)| (v.0.div_euclid(SUBPEL), v.1.div_euclid(SUBPEL));
        let centres = [whole(p), whole(near), (0, 0)];
        self.best_vector(self.area(unit), p, context, &centres, range)
    }
}

/// Bits a unit's vector `v` takes, about, as the search weighs them, where its prediction is
/// `p`.
pub(in crate::coders::detail) fn unit_vector_bits(v: (i32, i32), p: (i32, i32)) -> f64 {
    match v == p {
        true => SAME_BITS[1],
        false => CHANGED_BITS[1] + change_bits(v.0 - p.0) + change_bits(v.1 - p.1),
    }
}

/// Bits a block's split flag takes, about.
pub(in crate::coders::detail) fn split_bits(split: bool) -> f64 {
    match split {
        true => SPLIT_BITS,
        false => WHOLE_BITS,
    }
}

/// Finds the motion of `source` from `reference` (see the module's doc); `lambda` weighs a
/// bit against the sum of absolute differences on R + 2G + B.
pub(in crate::coders::detail) fn estimate(
    source: &RgbFrame,
    reference: &RgbFrame,
    lambda: f64,
) -> MotionField {
    walk_field(Search::new(source, reference, None, lambda), None)
}

/// Finds the motion of a bidirectional frame `source` between `before` and `after` (the
/// vectors move `before`, their opposites `after`), its vectors predicted by `guide`.
pub(in crate::coders::detail) fn estimate_between(
    source: &RgbFrame,
    (before, after): (&RgbFrame, &RgbFrame),
    side: Side,
    guide: Guide,
    lambda: f64,
) -> MotionField {
    match side {
        Side::Both => walk_field(Search::new(source, before, Some(after), lambda), guide),
        Side::Before => walk_field(Search::new(source, before, None, lambda), guide),
        Side::After => {
            // Searched as vectors that move `after`, then turned to the opposite ones the
            // field holds.
            let guide = guide.map(opposite);
            let search = Search::new(source, after, None, lambda);
            let mut field = walk_field(search, guide.as_deref());
            field.vectors = opposite(&field.vectors);
            field
        }
    }
}

/// Chooses each block's vectors, whole or split, in coding order.
fn walk_field(search: Search, guide: Guide) -> MotionField {
    let lambda = search.lambda;
    let grid = MotionGrid::new(search.w, search.h);
    let mut walk = Walk::guided(grid, guide);
    let (bcols, brows) = grid.blocks();
    for by in 0..brows {
        for bx in 0..bcols {
            let splittable = grid.block_cells(bx, by).1 > 1;
            let whole = walk.units(bx, by, false)[0];
            let (v, mut whole_cost) = search.unit(&walk, whole, (0, 0), SEARCH);
            let mut split = false;
            if splittable {
                whole_cost += lambda * WHOLE_BITS;
                let cells = walk.units(bx, by, true);
                let mut split_cost = lambda * SPLIT_BITS;
                for &cell in &cells {
                    let (u, c) = search.unit(&walk, cell, v, CELL_SEARCH);
                    split_cost += c;
                    let same = u == walk.predictor(cell);
                    walk.set(cell, u, same);
                }
                split = split_cost < whole_cost;
                if !split {
                    cells.iter().for_each(|&cell| walk.unset(cell));
                }
            }
            walk.split[by * bcols + bx] = split;
            if !split {
                let same = v == walk.predictor(whole);
                walk.set(whole, v, same);
            }
        }
    }
    MotionField {
        vectors: walk.vectors,
        split: walk.split,
        sides: None,
        modes: None,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{mse, texture};
    use super::super::{compensate, MotionGrid};
    use super::*;

    #[test]
    fn a_moved_picture_is_found_and_predicted_closely() {
        let reference = texture(96, 64, 0, 0);
        let moved = texture(96, 64, 5, -3);
        let field = estimate(&moved, &reference, 16.0);
        // Cells away from the edges find the move exactly.
        let grid = MotionGrid::new(96, 64);
        for r in 2..grid.rows - 2 {
            for c in 2..grid.cols - 2 {
                assert_eq!(field.vectors[r * grid.cols + c], (-5 * SUBPEL, 3 * SUBPEL));
            }
        }
        let predicted = compensate(&reference, &field.vectors);
        let still = mse(&moved, &reference);
        let left = mse(&moved, &predicted);
        assert!(left < still / 20.0, "{left} vs {still}");
    }

    #[test]
    fn a_block_whose_quarters_move_apart_is_split() {
        // The picture above row 24 moves right, the rest left: the blocks of rows 16..32
        // need their cells' own vectors.
        let reference = texture(64, 64, 0, 0);
        let (right, left) = (texture(64, 64, 3, 0), texture(64, 64, -3, 0));
        let mut data = right.data.clone();
        let half = 3 * 64 * 24;
        data[half..].copy_from_slice(&left.data[half..]);
        let moved = RgbFrame::from_data(64, 64, data).unwrap();
        let field = estimate(&moved, &reference, 16.0);
        let grid = MotionGrid::new(64, 64);
        let bcols = grid.blocks().0;
        assert!(
            (0..bcols).all(|bx| !field.split[bx]),
            "the top row moves as one"
        );
        let seam = (0..bcols).filter(|&bx| field.split[bcols + bx]).count();
        assert!(seam >= 2, "{:?}", field.split);
        // Each half's cells move its way (within a quarter pixel: a vector that follows its
        // neighbour's may cost less than the exact one).
        let near = |r: usize, x: i32| {
            let v = field.vectors[r * grid.cols + 3];
            (v.0 - x).abs() <= 1 && v.1.abs() <= 1
        };
        assert!(
            near(2, -3 * SUBPEL) && near(3, 3 * SUBPEL),
            "{:?}",
            field.vectors
        );
    }
}
