//! How each block of a moved frame uses its motion-compensated picture (version 17 on).
//!
//! Where the camera or an object moves fast, the reference often holds nothing like the block:
//! something comes into view, or motion blur smears what was sharp. The moved picture then
//! carries texture that is not there, and the layer pays twice: once to take it out, once to
//! put the real texture in. A block may therefore keep only part of its moved picture:
//! [`BlockMode::Smooth`] its low frequencies (a small blur), [`BlockMode::Flat`] only each
//! cell's mean colour, from which the layer codes the block as an intra frame would. Both are
//! computed in integers from the moved picture, so every machine predicts the same. From
//! version 18 a block may also leave its moved picture altogether ([`BlockMode::Intra`]): each
//! of its cells is predicted from the decoded pixels beside it (`detail::intra`).

use crate::RgbFrame;

use super::super::intra::Direction;
use super::{MotionGrid, CELL, MOTION_BLOCK};

/// What a block keeps of its motion-compensated picture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(in crate::coders::detail) enum BlockMode {
    /// All of it.
    #[default]
    Moved,
    /// The picture blurred by a separable [1 2 1]/4 filter, twice.
    Smooth,
    /// Each 8×8 cell's mean, per channel.
    Flat,
    /// None of it: each cell (Z order, as [`MotionGrid::block_cells`]) predicted in its
    /// direction from the decoded pixels beside it.
    Intra([Direction; 4]),
}

impl BlockMode {
    /// The modes made from the moved picture alone.
    pub(in crate::coders::detail) const FROM_MOVED: [BlockMode; 3] =
        [BlockMode::Moved, BlockMode::Smooth, BlockMode::Flat];

    /// Its value in a latent: 0 to 2, or an intra block's 3 plus its cells' directions,
    /// [`Direction::BITS`] bits each.
    pub(in crate::coders::detail) fn index(self) -> i32 {
        match self {
            BlockMode::Moved => 0,
            BlockMode::Smooth => 1,
            BlockMode::Flat => 2,
            BlockMode::Intra(directions) => {
                let bits = (0..4)
                    .map(|i| directions[i].index() << (Direction::BITS * i))
                    .sum::<usize>();
                3 + bits as i32
            }
        }
    }

    /// The mode a latent's value stands for (a negative value: [`BlockMode::Moved`]).
    pub(in crate::coders::detail) fn from_index(value: i32) -> Self {
        match value {
            1 => BlockMode::Smooth,
            2 => BlockMode::Flat,
            3.. => {
                let bits = (value - 3) as usize;
                BlockMode::Intra(std::array::from_fn(|i| {
                    Direction::from_index(bits >> (Direction::BITS * i))
                }))
            }
            _ => BlockMode::Moved,
        }
    }

    /// Whether the block is predicted from its own frame.
    pub(in crate::coders::detail) fn is_intra(self) -> bool {
        matches!(self, BlockMode::Intra(_))
    }
}

/// The pixel area `(x0, y0, x1, y1)` of block `b` (raster order) of `grid` in a `w`×`h` frame.
fn block_area(grid: MotionGrid, b: usize, (w, h): (usize, usize)) -> (usize, usize, usize, usize) {
    let bcols = grid.blocks().0;
    let (x0, y0) = ((b % bcols) * MOTION_BLOCK, (b / bcols) * MOTION_BLOCK);
    (
        x0,
        y0,
        (x0 + MOTION_BLOCK).min(w),
        (y0 + MOTION_BLOCK).min(h),
    )
}

/// Applies each block's mode in `modes` (one per block of the frame's grid, raster order;
/// blocks beyond the list keep all of their picture) to `moved`, the motion-compensated
/// picture. A smooth block's blur reads the moved picture as it was before any mode, across
/// its edges too, so the order of the blocks does not matter.
pub(in crate::coders::detail) fn apply(moved: &mut RgbFrame, modes: &[BlockMode]) {
    if modes.iter().all(|&m| m == BlockMode::Moved) {
        return;
    }
    let (w, h) = (moved.width as usize, moved.height as usize);
    let grid = MotionGrid::new(w, h);
    let source = moved.clone();
    for (b, &mode) in modes
        .iter()
        .enumerate()
        .take(grid.blocks().0 * grid.blocks().1)
    {
        let area = block_area(grid, b, (w, h));
        match mode {
            // An intra block's cells are predicted as the layer is added (`detail::intra`).
            BlockMode::Moved | BlockMode::Intra(_) => {}
            BlockMode::Smooth => smooth(&source, moved, area),
            BlockMode::Flat => flatten(moved, area),
        }
    }
}

/// The area `(x0, y0, x1, y1)` of `out` blurred: `source` (edges repeated) through [1 2 1]
/// twice across, then twice down, in integers ([1 4 6 4 1]/16 each way).
fn smooth(source: &RgbFrame, out: &mut RgbFrame, (x0, y0, x1, y1): (usize, usize, usize, usize)) {
    const TAPS: [i32; 5] = [1, 4, 6, 4, 1];
    let (w, h) = (source.width as i32, source.height as i32);
    let at = |x: i32, y: i32, c: usize| {
        let (x, y) = (x.clamp(0, w - 1) as usize, y.clamp(0, h - 1) as usize);
        i32::from(source.data[(y * w as usize + x) * 3 + c])
    };
    let bw = x1 - x0;
    let rows = y1 - y0 + 4;
    let mut across = vec![0i32; rows * bw * 3];
    for r in 0..rows {
        let y = y0 as i32 + r as i32 - 2;
        for col in 0..bw {
            let x = (x0 + col) as i32;
            for c in 0..3 {
                across[(r * bw + col) * 3 + c] =
                    (0..5).map(|t| TAPS[t] * at(x + t as i32 - 2, y, c)).sum();
            }
        }
    }
    for y in y0..y1 {
        for col in 0..bw {
            for c in 0..3 {
                let sum: i32 = (0..5)
                    .map(|t| TAPS[t] * across[((y - y0 + t) * bw + col) * 3 + c])
                    .sum();
                out.data[(y * w as usize + x0 + col) * 3 + c] = ((sum + 128) >> 8) as u8;
            }
        }
    }
}

/// Each 8×8 cell of the area `(x0, y0, x1, y1)` of `picture` set to its rounded mean, per
/// channel.
fn flatten(picture: &mut RgbFrame, (x0, y0, x1, y1): (usize, usize, usize, usize)) {
    let w = picture.width as usize;
    for cy in (y0..y1).step_by(CELL) {
        for cx in (x0..x1).step_by(CELL) {
            let (ex, ey) = ((cx + CELL).min(x1), (cy + CELL).min(y1));
            let n = ((ex - cx) * (ey - cy)) as u32;
            for c in 0..3 {
                let mut sum = 0u32;
                for y in cy..ey {
                    for x in cx..ex {
                        sum += u32::from(picture.data[(y * w + x) * 3 + c]);
                    }
                }
                let mean = ((sum + n / 2) / n) as u8;
                for y in cy..ey {
                    for x in cx..ex {
                        picture.data[(y * w + x) * 3 + c] = mean;
                    }
                }
            }
        }
    }
}

/// Estimated bits of a block's mode flags: most blocks keep their moved picture. Against x264
/// medium, 30 frames of `bikes` and its fast, blurred frames 30–109: 1.5 bits, +20.3 % on the
/// 30; 4, +19.5 and +64.6 %; 10, +19.2 and +67.1 %.
pub(in crate::coders::detail) fn mode_bits(mode: BlockMode) -> f64 {
    match mode {
        BlockMode::Moved => 0.2,
        // Four cells' directions besides the flags.
        BlockMode::Intra(_) => 4.0 + 4.0 * DIRECTION_BITS,
        _ => 4.0,
    }
}

/// Estimated bits of an intra cell's direction (three flags). Against x264 medium, 30 frames of
/// `bikes` and its frames 30–109: 2 bits, +17.6 and +31.9 %; 3, +16.9 and +32.7 %.
pub(in crate::coders::detail) const DIRECTION_BITS: f64 = 2.0;

/// Per cell of `grid` (raster order), the direction it is predicted in where its block is an
/// intra block of `modes` (one per block, raster order; blocks beyond the list keep their
/// moved picture); empty where no block is intra.
pub(in crate::coders::detail) fn cell_directions(
    grid: MotionGrid,
    modes: &[BlockMode],
) -> Vec<Option<Direction>> {
    if !modes.iter().any(|m| m.is_intra()) {
        return Vec::new();
    }
    let mut out = vec![None; grid.cells()];
    let bcols = grid.blocks().0;
    for (b, mode) in modes.iter().enumerate().take(bcols * grid.blocks().1) {
        if let BlockMode::Intra(directions) = mode {
            let (cells, n) = grid.block_cells(b % bcols, b / bcols);
            for (&(c, r), &direction) in cells[..n].iter().zip(directions) {
                out[r * grid.cols + c] = Some(direction);
            }
        }
    }
    out
}

impl super::MotionField {
    /// Its intra blocks' cells' directions ([`cell_directions`]; empty where it has none).
    pub(in crate::coders::detail) fn intra_directions(
        &self,
        grid: MotionGrid,
    ) -> Vec<Option<Direction>> {
        cell_directions(grid, self.modes.as_deref().unwrap_or_default())
    }

    /// The field with its intra blocks' directions taken from `directions` (per cell of
    /// `grid`, raster order).
    pub(in crate::coders::detail) fn with_directions(
        &self,
        grid: MotionGrid,
        directions: &[Option<Direction>],
    ) -> Self {
        let mut field = self.clone();
        let bcols = grid.blocks().0;
        for (b, mode) in field.modes.iter_mut().flatten().enumerate() {
            if let BlockMode::Intra(cells_directions) = mode {
                let (cells, n) = grid.block_cells(b % bcols, b / bcols);
                for (k, d) in cells_directions.iter_mut().enumerate() {
                    // (A cell outside the frame has no direction coded: the parser gives it DC.)
                    *d = match cells[..n].get(k) {
                        Some(&(c, r)) => directions[r * grid.cols + c].unwrap_or(Direction::Dc),
                        None => Direction::Dc,
                    };
                }
            }
        }
        field
    }
}

/// The block (raster order) that cell `cell` (raster order) of `grid` lies in.
pub(in crate::coders::detail) fn block_of_cell(grid: MotionGrid, cell: usize) -> usize {
    let (c, r) = (cell % grid.cols, cell / grid.cols);
    (r / 2) * grid.blocks().0 + c / 2
}

#[cfg(test)]
mod tests {
    use super::super::tests::texture;
    use super::*;

    #[test]
    fn flat_blocks_hold_their_cells_means_and_smooth_ones_keep_flat_areas_flat() {
        let (w, h) = (40, 24);
        let moved = texture(w, h, 0, 0);
        let grid = MotionGrid::new(w as usize, h as usize);
        let blocks = grid.blocks().0 * grid.blocks().1;
        assert_eq!(blocks, 6);
        let modes = [0, 2, 1, 2, 0, 1].map(BlockMode::from_index);
        let mut picture = moved.clone();
        apply(&mut picture, &modes);
        let at = |f: &RgbFrame, x: usize, y: usize, c: usize| f.data[(y * w as usize + x) * 3 + c];
        // Block 0 keeps its picture; block 1's first cell (x 16..24, y 0..8) is its mean.
        for c in 0..3 {
            let sum: u32 = (0..8)
                .flat_map(|y| (16..24).map(move |x| (x, y)))
                .map(|(x, y)| u32::from(at(&moved, x, y, c)))
                .sum();
            let mean = ((sum + 32) / 64) as u8;
            assert!((16..24).all(|x| (0..8).all(|y| at(&picture, x, y, c) == mean)));
            assert!((0..16).all(|x| (0..16).all(|y| at(&picture, x, y, c) == at(&moved, x, y, c))));
        }
        // Block 5 (x 32..40, cut by the edge) is smoother than it was.
        let roughness = |f: &RgbFrame| -> i32 {
            (16..24)
                .flat_map(|y| (33..40).map(move |x| (x, y)))
                .map(|(x, y)| (i32::from(at(f, x, y, 0)) - i32::from(at(f, x - 1, y, 0))).abs())
                .sum()
        };
        assert!(roughness(&picture) < roughness(&moved));
        let grey = RgbFrame::from_data(w, h, vec![93; (3 * w * h) as usize]).unwrap();
        let mut smoothed = grey.clone();
        apply(&mut smoothed, &[BlockMode::Smooth; 6]);
        assert_eq!(smoothed, grey);
    }
}
