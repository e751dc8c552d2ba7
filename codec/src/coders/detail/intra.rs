//! Spatial prediction of an 8×8 cell from the decoded pixels beside it (version 18 on).
//!
//! In a moved frame a block whose reference shows nothing like it (something comes into view,
//! motion blur smears what was sharp) may be predicted from its own frame instead: each of its
//! cells continues the row above it and the column left of it in one of four [`Direction`]s,
//! as H.264's and VP8's intra blocks do. The pixels read are those the decoder has already
//! rebuilt (prediction plus layer, before deblocking), so the cells are rebuilt one by one in
//! raster order, after every cell that is not predicted so. Everything here is integer
//! arithmetic on 8-bit samples: every machine predicts the same.

use super::rdo::rd_rounding;
use super::{DetailLayer, Kernel, BLOCK, BLOCK_COEFFS, KERNEL_MARGIN};
use crate::coders::round_element;
use crate::entropy::index_for_mean_abs;
use crate::RgbFrame;

/// Side of a cell, the layer's block.
const CELL: usize = BLOCK;

/// How a cell continues the pixels beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Direction {
    /// Every pixel the mean of the row above and the column left.
    Dc,
    /// Each column continues the pixel above it.
    Vertical,
    /// Each row continues the pixel left of it.
    Horizontal,
    /// VP8's TrueMotion: left + above − above-left, a gradient that goes on.
    Gradient,
    /// Down and to the left at 45°, from the row above and the one above-right.
    DownLeft,
    /// Down and to the right at 45°, from the row above, the corner and the column left.
    DownRight,
    /// Down and a little to the right (one across for two down).
    VerticalRight,
    /// Across and a little down (two across for one down).
    HorizontalDown,
}

impl Direction {
    pub(super) const ALL: [Direction; 8] = [
        Direction::Dc,
        Direction::Vertical,
        Direction::Horizontal,
        Direction::Gradient,
        Direction::DownLeft,
        Direction::DownRight,
        Direction::VerticalRight,
        Direction::HorizontalDown,
    ];

    /// Bits of its number.
    pub(super) const BITS: usize = 3;

    /// Its number ([`BITS`](Self::BITS) bits).
    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// The direction numbered `index` (only its low [`BITS`](Self::BITS) bits are read).
    pub(super) fn from_index(index: usize) -> Self {
        Self::ALL[index & 7]
    }
}

/// The pixels beside a cell, per channel: the row above, the column left, the corner
/// above-left and the row above-right. Where the frame has none (its first row or column), the
/// other side's nearest pixel stands in, and mid-grey where it has neither; where the row
/// above ends at the frame's right edge, its last pixel stands in for the row above-right.
struct Edges {
    above: [[i32; CELL]; 3],
    left: [[i32; CELL]; 3],
    corner: [i32; 3],
    above_right: [[i32; CELL]; 3],
}

impl Edges {
    fn of(picture: &RgbFrame, (x0, y0): (usize, usize)) -> Self {
        let w = picture.width as usize;
        let at = |x: usize, y: usize, c: usize| i32::from(picture.data[(y * w + x) * 3 + c]);
        let mut edges = Edges {
            above: [[128; CELL]; 3],
            left: [[128; CELL]; 3],
            corner: [128; 3],
            above_right: [[128; CELL]; 3],
        };
        for c in 0..3 {
            match (x0 > 0, y0 > 0) {
                (true, true) => {
                    edges.above[c] = std::array::from_fn(|x| at(x0 + x, y0 - 1, c));
                    edges.left[c] = std::array::from_fn(|y| at(x0 - 1, y0 + y, c));
                    edges.corner[c] = at(x0 - 1, y0 - 1, c);
                }
                (false, true) => {
                    edges.above[c] = std::array::from_fn(|x| at(x0 + x, y0 - 1, c));
                    edges.left[c] = [edges.above[c][0]; CELL];
                    edges.corner[c] = edges.above[c][0];
                }
                (true, false) => {
                    edges.left[c] = std::array::from_fn(|y| at(x0 - 1, y0 + y, c));
                    edges.above[c] = [edges.left[c][0]; CELL];
                    edges.corner[c] = edges.left[c][0];
                }
                (false, false) => {}
            }
            edges.above_right[c] = match y0 > 0 && x0 + 2 * CELL <= w {
                true => std::array::from_fn(|x| at(x0 + CELL + x, y0 - 1, c)),
                false => [edges.above[c][CELL - 1]; CELL],
            };
        }
        edges
    }
}

/// `(v[i − 1] + 2 v[i] + v[i + 1] + 2) >> 2`, the indices clamped to `v`: the samples a
/// diagonal direction reads, smoothed as H.264's are.
fn smoothed(v: &[i32], i: usize) -> i32 {
    let last = v.len() - 1;
    (v[i.saturating_sub(1)] + 2 * v[i] + v[(i + 1).min(last)] + 2) >> 2
}

/// Writes into `picture` the cell at `(x0, y0)` (a whole cell inside the frame) predicted in
/// `direction` from the pixels of `picture` beside it.
pub(super) fn predict_cell(picture: &mut RgbFrame, (x0, y0): (usize, usize), direction: Direction) {
    let edges = Edges::of(picture, (x0, y0));
    write_cell(picture, (x0, y0), direction, &edges);
}

/// Writes into `out` the cell at `(x0, y0)` predicted in `direction` from the pixels of `source`
/// beside it (the encoder's guess, before it knows what the decoder will rebuild there).
pub(super) fn predict_cell_from(
    source: &RgbFrame,
    out: &mut RgbFrame,
    (x0, y0): (usize, usize),
    direction: Direction,
) {
    let edges = Edges::of(source, (x0, y0));
    write_cell(out, (x0, y0), direction, &edges);
}

fn write_cell(
    picture: &mut RgbFrame,
    (x0, y0): (usize, usize),
    direction: Direction,
    edges: &Edges,
) {
    let w = picture.width as usize;
    for c in 0..3 {
        let (above, left, corner) = (&edges.above[c], &edges.left[c], edges.corner[c]);
        let dc = (above.iter().sum::<i32>() + left.iter().sum::<i32>() + CELL as i32) >> 4;
        // The row above and above-right, left to right; and the column left (bottom up), the
        // corner and the row above, so that `around[CELL + k]` is `k` to the right of the
        // corner along the top (`k > 0`) or `−k` down the left side (`k < 0`).
        let top: Vec<i32> = above.iter().chain(&edges.above_right[c]).copied().collect();
        let around: Vec<i32> = (left.iter().rev())
            .chain([&corner])
            .chain(above)
            .copied()
            .collect();
        let along = |k: i32| smoothed(&around, (CELL as i32 + k) as usize);
        for (y, &l) in left.iter().enumerate() {
            for (x, &a) in above.iter().enumerate() {
                let (xi, yi) = (x as i32, y as i32);
                let v = match direction {
                    Direction::Dc => dc,
                    Direction::Vertical => a,
                    Direction::Horizontal => l,
                    Direction::Gradient => (l + a - corner).clamp(0, 255),
                    Direction::DownLeft => smoothed(&top, x + y + 1),
                    Direction::DownRight => along(xi - yi),
                    Direction::VerticalRight => along(xi - yi / 2),
                    Direction::HorizontalDown => along(xi / 2 - yi),
                };
                picture.data[((y0 + y) * w + x0 + x) * 3 + c] = v as u8;
            }
        }
    }
}

/// An intra cell's coefficients in one transform: unrounded (in steps) and as the encoder
/// rounds them, and what that costs (squared error plus [`super::RATE_WEIGHT`] per bit).
struct CodedCell {
    cost: f64,
    ratios: [f32; BLOCK_COEFFS],
    q: [i32; BLOCK_COEFFS],
}

impl DetailLayer {
    /// Adds the layer (`q`, `kernels`) to `picture`, predicting the blocks that `directions`
    /// (per block, raster order) gives a direction from their own frame: first every other
    /// block's residual, then in raster order each such block's prediction from what is rebuilt
    /// beside it, then its residual. With no direction given, as [`add_to`](Self::add_to).
    pub(super) fn add_predicting(
        &self,
        picture: &mut RgbFrame,
        q: &[i32],
        kernels: &[Kernel],
        directions: &[Option<Direction>],
    ) {
        self.add_unpredicted(picture, q, kernels, directions);
        let blocks = q.chunks_exact(BLOCK_COEFFS).zip(kernels).enumerate();
        for (b, (coeffs, &kernel)) in blocks {
            if let Some(Some(d)) = directions.get(b) {
                predict_cell(picture, self.origin(b), *d);
                self.add_block(picture, b, coeffs, kernel);
            }
        }
    }

    /// Adds to `picture` the residual of every block that `directions` does not predict from
    /// its own frame: what an intra block's prediction may read beside it.
    fn add_unpredicted(
        &self,
        picture: &mut RgbFrame,
        q: &[i32],
        kernels: &[Kernel],
        directions: &[Option<Direction>],
    ) {
        let blocks = q.chunks_exact(BLOCK_COEFFS).zip(kernels).enumerate();
        for (b, (coeffs, &kernel)) in blocks {
            if directions.get(b).copied().flatten().is_none() {
                self.add_block(picture, b, coeffs, kernel);
            }
        }
    }

    /// The encoder's guess of the blocks that `directions` gives a direction: each predicted
    /// from the pixels of `beside` next to it (a guess of what the decoder will have there),
    /// written into `under`.
    pub(super) fn predict_open_loop(
        &self,
        beside: &RgbFrame,
        under: &mut RgbFrame,
        directions: &[Option<Direction>],
    ) {
        for (b, d) in directions.iter().enumerate() {
            if let Some(d) = *d {
                predict_cell_from(beside, under, self.origin(b), d);
            }
        }
    }

    /// An intra cell's `residual` in `kernel`, each coefficient rounded for rate and distortion
    /// under the bank table `index_of` gives its place, each plane left out where that costs
    /// less; a transform other than the 8×8 DCT costs [`KERNEL_MARGIN`] more, as elsewhere.
    fn code_cell(
        &self,
        residual: &[[f32; 64]; 3],
        kernel: Kernel,
        index_of: impl Fn(usize) -> u8,
    ) -> CodedCell {
        let mut cell = CodedCell {
            cost: if kernel == Kernel::Dct8 {
                0.0
            } else {
                KERNEL_MARGIN
            },
            ratios: [0.0; BLOCK_COEFFS],
            q: [0; BLOCK_COEFFS],
        };
        for (p, plane) in residual.iter().enumerate() {
            let coeffs = self.transform.forward_in(kernel, plane);
            let (mut coded, mut dropped) = (0.0, 0.0);
            for (i, &c) in coeffs.iter().enumerate() {
                let x = c / self.step;
                let (value, cost) = rd_rounding(x, round_element(x), index_of(p * 64 + i));
                cell.ratios[p * 64 + i] = x;
                cell.q[p * 64 + i] = value;
                coded += cost;
                dropped += f64::from(x) * f64::from(x);
            }
            if dropped <= coded {
                cell.q[p * 64..][..64].fill(0);
            }
            cell.cost += coded.min(dropped);
        }
        cell
    }

    /// Encoder: codes again, in the order the decoder rebuilds them, the blocks that
    /// `directions` predicts from their own frame, whose coefficients `q` (with `kernels` and
    /// the unrounded `ratios`) were quantized against a guess of their prediction: each block's
    /// direction and transform are chosen anew against what the decoder will really have beside
    /// it, its coefficients rounded for rate and distortion under the tables the first
    /// quantization gets (a plane left out where that costs less). `under` is the picture
    /// before the layer elsewhere.
    pub(super) fn code_intra_blocks(
        &self,
        frame: &RgbFrame,
        under: &RgbFrame,
        directions: &mut [Option<Direction>],
        (q, kernels, ratios): (&mut [i32], &mut [Kernel], &mut [f32]),
    ) {
        if directions.iter().all(Option::is_none) {
            return;
        }
        let (_, groups, indices) = self.plain_rounding(ratios);
        let fallback = index_for_mean_abs(0.25);
        let mut rebuilt = under.clone();
        self.add_unpredicted(&mut rebuilt, q, kernels, directions);
        for b in 0..directions.len() {
            if directions[b].is_none() {
                continue;
            }
            let at = b * BLOCK_COEFFS;
            let index_of = |i: usize| indices[usize::from(groups[at + i])].unwrap_or(fallback);
            let mut best: Option<(Direction, Kernel, CodedCell)> = None;
            for d in Direction::ALL {
                predict_cell(&mut rebuilt, self.origin(b), d);
                let residual = self.block_residual(frame, &rebuilt, b);
                for kernel in Kernel::ALL {
                    let cell = self.code_cell(&residual, kernel, index_of);
                    if best.as_ref().is_none_or(|best| cell.cost < best.2.cost) {
                        best = Some((d, kernel, cell));
                    }
                }
            }
            let (
                d,
                kernel,
                CodedCell {
                    ratios: r, q: v, ..
                },
            ) = best.expect("every direction tried");
            let all_zero = v.iter().all(|&x| x == 0);
            kernels[b] = if all_zero { Kernel::Dct8 } else { kernel };
            ratios[at..at + BLOCK_COEFFS].copy_from_slice(&r);
            q[at..at + BLOCK_COEFFS].copy_from_slice(&v);
            directions[b] = Some(d);
            predict_cell(&mut rebuilt, self.origin(b), d);
            self.add_block(&mut rebuilt, b, &v, kernels[b]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> RgbFrame {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w, i / w);
                [(x * 9) as u8, (y * 7) as u8, ((x + y) * 3) as u8]
            })
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    fn pixel(p: &RgbFrame, x: usize, y: usize) -> [u8; 3] {
        let at = (y * p.width as usize + x) * 3;
        [p.data[at], p.data[at + 1], p.data[at + 2]]
    }

    #[test]
    fn each_direction_continues_the_pixels_beside_the_cell() {
        let source = ramp(24, 24);
        for direction in Direction::ALL {
            let mut p = source.clone();
            predict_cell(&mut p, (8, 8), direction);
            for (x, y) in [(8, 8), (15, 8), (8, 15), (15, 15), (11, 13)] {
                let expected = match direction {
                    // (The diagonals: `diagonal_directions_continue_lines_at_their_angle`.)
                    Direction::DownLeft
                    | Direction::DownRight
                    | Direction::VerticalRight
                    | Direction::HorizontalDown => continue,
                    Direction::Vertical => pixel(&source, x, 7),
                    Direction::Horizontal => pixel(&source, 7, y),
                    // A plane continues exactly: left + above − corner.
                    Direction::Gradient => pixel(&source, x, y),
                    Direction::Dc => {
                        let mean = |c: usize| {
                            let s: u32 = (8..16)
                                .map(|i| u32::from(pixel(&source, i, 7)[c]))
                                .chain((8..16).map(|i| u32::from(pixel(&source, 7, i)[c])))
                                .sum();
                            ((s + 8) >> 4) as u8
                        };
                        [mean(0), mean(1), mean(2)]
                    }
                };
                assert_eq!(pixel(&p, x, y), expected, "{direction:?} at ({x}, {y})");
            }
            // Nothing outside the cell changes.
            assert_eq!(pixel(&p, 16, 8), pixel(&source, 16, 8));
            assert_eq!(pixel(&p, 8, 16), pixel(&source, 8, 16));
            assert_eq!(Direction::from_index(direction.index()), direction);
        }
    }

    #[test]
    fn diagonal_directions_continue_lines_at_their_angle() {
        let frame = |f: &dyn Fn(u32, u32) -> u8| {
            let data = (0..24 * 24).flat_map(|i| [f(i % 24, i / 24); 3]).collect();
            RgbFrame::from_data(24, 24, data).unwrap()
        };
        // Lines at 45° down-left (constant along x + y) and down-right (along x − y); a
        // linear ramp across them survives the diagonals' smoothing.
        let down_left = frame(&|x, y| (20 + 3 * (x + y)) as u8);
        let down_right = frame(&|x, y| (100 + 3 * x as i32 - 3 * y as i32) as u8);
        for (source, direction) in [
            (&down_left, Direction::DownLeft),
            (&down_right, Direction::DownRight),
        ] {
            let mut p = source.clone();
            predict_cell(&mut p, (8, 8), direction);
            for y in 8..16 {
                for x in 8..16 {
                    // (The last sample down-left reads past the row above-right's end.)
                    if direction == Direction::DownLeft && (x, y) == (15, 15) {
                        continue;
                    }
                    assert_eq!(
                        pixel(&p, x, y),
                        pixel(source, x, y),
                        "{direction:?} ({x}, {y})"
                    );
                }
            }
        }
        // Every direction keeps a flat picture flat, and touches nothing outside the cell.
        let flat = frame(&|_, _| 77);
        let textured = ramp(24, 24);
        for direction in Direction::ALL {
            let mut p = flat.clone();
            predict_cell(&mut p, (8, 8), direction);
            assert_eq!(p, flat, "{direction:?}");
            let mut p = textured.clone();
            predict_cell(&mut p, (8, 8), direction);
            for (x, y) in [(7, 8), (16, 8), (8, 16), (16, 16), (7, 7)] {
                assert_eq!(pixel(&p, x, y), pixel(&textured, x, y), "{direction:?}");
            }
        }
    }

    #[test]
    fn cells_on_the_frames_edges_use_what_they_have_and_the_corner_cell_is_grey() {
        let source = ramp(16, 16);
        let mut p = source.clone();
        predict_cell(&mut p, (0, 0), Direction::Gradient);
        assert_eq!(pixel(&p, 3, 5), [128, 128, 128]);
        // The first row's cells have only a left column: vertical continues its top pixel.
        let mut p = source.clone();
        predict_cell(&mut p, (8, 0), Direction::Vertical);
        assert_eq!(pixel(&p, 12, 6), pixel(&source, 7, 0));
        // The first column's: horizontal continues the row above's first pixel.
        let mut p = source.clone();
        predict_cell(&mut p, (0, 8), Direction::Horizontal);
        assert_eq!(pixel(&p, 5, 12), pixel(&source, 0, 7));
    }
}
