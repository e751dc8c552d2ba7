//! Motion-compensated prediction in the pixel domain, for predicted frames that go without a
//! learned base: the frame is predicted from the previous decoded frame moved block by block,
//! and the detail layer codes what the prediction misses.
//!
//! The motion grid is one of 16×16 blocks, each moved as a whole or split into four 8×8
//! cells with their own vectors (files of version 8 on; before, every 16×16 block had one).
//! Vectors are in quarter pixels and interpolated with a separable 6-tap filter in integers
//! (`interpolate`), so the prediction is the same on every machine. How vectors are coded is
//! `field`; how the encoder finds them, `search`.

mod field;
mod interpolate;
mod modes;
mod search;

pub(super) use field::{FieldLayout, FieldTables, Guide, Guided};
pub(super) use modes::{
    apply as apply_modes, block_of_cell, cell_directions, mode_bits, BlockMode,
};
pub(super) use search::{
    estimate, estimate_between, split_bits, unit_vector_bits, LAMBDA_PER_STEP,
};

use crate::RgbFrame;

/// The vector nearest `v`, toward its prediction `p`, that a field can hold.
pub(super) fn legal_vector(v: (i32, i32), p: (i32, i32)) -> (i32, i32) {
    (
        p.0 + field::legal_change(v.0 - p.0),
        p.1 + field::legal_change(v.1 - p.1),
    )
}

/// Side of a motion block, the unit a frame's vectors are first given for.
pub(super) const MOTION_BLOCK: usize = 16;
/// Side of a cell: the quarter of a block that a split block moves on its own.
pub(super) const CELL: usize = 8;
/// The largest vector component a stream may carry, in quarter pixels (256 pixels).
pub(super) const MAX_COMPONENT: i32 = 1024;

/// The step byte a motion-compensated frame's layer is written with: its quantizer step is the
/// stream's detail step times [`step_factor`] of it: twice the intra frame's, as x264's
/// P-frames are coarser too, since the intra frame's detail carries on through the moved
/// pictures (30 frames of `bikes` against x264 medium: 1.41 times, +130.8 %; twice, +127.5 %).
pub(super) const MOVED_STEP_BYTE: u8 = 144;

/// The factor a step byte puts on the detail step: `2^((byte − 128) / 16)`.
pub(super) fn step_factor(byte: u8) -> f32 {
    ((f64::from(byte) - 128.0) / 16.0).exp2() as f32
}

/// A frame's motion grid: its cells across and down (the last ones may be cut by the frame's
/// edge), grouped two by two into blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct MotionGrid {
    pub(super) cols: usize,
    pub(super) rows: usize,
}

impl MotionGrid {
    /// The grid of a `width`×`height` frame.
    pub(super) fn new(width: usize, height: usize) -> Self {
        Self {
            cols: width.div_ceil(CELL),
            rows: height.div_ceil(CELL),
        }
    }

    /// Cells in the frame.
    pub(super) fn cells(&self) -> usize {
        self.cols * self.rows
    }

    /// Blocks across and down.
    pub(super) fn blocks(&self) -> (usize, usize) {
        (self.cols.div_ceil(2), self.rows.div_ceil(2))
    }

    /// The cells `(col, row)` of block `(bx, by)` inside the frame, in Z order (top-left,
    /// top-right, bottom-left, bottom-right), and how many there are.
    pub(super) fn block_cells(&self, bx: usize, by: usize) -> ([(usize, usize); 4], usize) {
        let mut cells = [(0, 0); 4];
        let mut n = 0;
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            let (c, r) = (2 * bx + dx, 2 * by + dy);
            if c < self.cols && r < self.rows {
                cells[n] = (c, r);
                n += 1;
            }
        }
        (cells, n)
    }

    /// The block's cells across and down: its span, as one unit.
    pub(super) fn block_span(&self, bx: usize, by: usize) -> (usize, usize) {
        ((self.cols - 2 * bx).min(2), (self.rows - 2 * by).min(2))
    }
}

/// A frame's vectors, one per cell of its [`MotionGrid`] in raster order, in quarter pixels
/// `(x, y)`; and per block (raster order) whether its cells were coded apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct MotionField {
    pub(super) vectors: Vec<(i32, i32)>,
    pub(super) split: Vec<bool>,
    /// A bidirectional frame's side per cell, where each unit has its own ([`SIDE_PER_UNIT`]);
    /// none where the frame has one side.
    pub(super) sides: Option<Vec<Side>>,
    /// Per block (raster order), what it keeps of its moved picture, where the field says
    /// (a moved frame's, version 17 on); none where every block keeps all of it.
    pub(super) modes: Option<Vec<BlockMode>>,
}

/// The median of the vectors of the cells left of, above and above-right of a unit whose
/// top-left cell is `(col, row)` and which is `span` cells wide, of those decoded already
/// (`decoded`, per cell): of two, the smaller; of none, (0, 0).
pub(super) fn predicted(
    vectors: &[(i32, i32)],
    decoded: &[bool],
    cols: usize,
    (col, row): (usize, usize),
    span: usize,
) -> (i32, i32) {
    let mut near = [(0, 0); 3];
    let mut n = 0;
    let mut take = |c: usize, r: usize| {
        let i = r * cols + c;
        if decoded[i] {
            near[n] = vectors[i];
            n += 1;
        }
    };
    if col > 0 {
        take(col - 1, row);
    }
    if row > 0 {
        take(col, row - 1);
        if col + span < cols {
            take(col + span, row - 1);
        }
    }
    let median = |mut v: [i32; 3]| {
        v[..n].sort_unstable();
        match n {
            0 => 0,
            2 => v[0],
            _ => v[n / 2],
        }
    };
    (median(near.map(|v| v.0)), median(near.map(|v| v.1)))
}

/// The whole frame predicted from `reference`, each cell moved by its vector in `vectors`
/// (one per cell of the frame's grid).
pub(super) fn compensate(reference: &RgbFrame, vectors: &[(i32, i32)]) -> RgbFrame {
    let (w, h) = (reference.width as usize, reference.height as usize);
    let grid = MotionGrid::new(w, h);
    let mut data = vec![0u8; 3 * w * h];
    let mut block = Vec::new();
    for (i, &v) in vectors.iter().enumerate().take(grid.cells()) {
        let (x0, y0) = ((i % grid.cols) * CELL, (i / grid.cols) * CELL);
        let size = (CELL.min(w - x0), CELL.min(h - y0));
        for c in 0..3 {
            interpolate::predict_block(reference, c, (x0, y0), size, v, &mut block);
            for (k, &s) in block.iter().enumerate() {
                let (x, y) = (x0 + k % size.0, y0 + k / size.0);
                data[(y * w + x) * 3 + c] = s as u8;
            }
        }
    }
    RgbFrame::from_data(w as u32, h as u32, data).expect("the size matches")
}

/// The prediction a moved frame's `vectors` and block `modes` (empty where the field has none)
/// make from `reference`.
pub(super) fn predict(
    reference: &RgbFrame,
    vectors: &[(i32, i32)],
    modes: &[BlockMode],
) -> RgbFrame {
    let mut moved = compensate(reference, vectors);
    modes::apply(&mut moved, modes);
    moved
}

/// The step byte of a bidirectional frame's layer: four times the intra frame's step. Nothing
/// is predicted from such a frame, so what its layer leaves out goes no further (30 frames of
/// `bikes` against x264 medium: 152, +38.5 %; 160, +36.0 %; 168, +35.9 %; with anchors at
/// 136, +45.6 %, at 152, +38.1 %).
pub(super) const BIDIRECTIONAL_STEP_BYTE: u8 = 160;

/// Half of each of an anchor's vectors (rounded down, in quarter pixels): where a bidirectional
/// frame halfway between the anchor and its reference expects each cell's motion
/// ([`Guide`]).
pub(super) fn halved(vectors: &[(i32, i32)]) -> Vec<(i32, i32)> {
    vectors
        .iter()
        .map(|&(x, y)| (x.div_euclid(2), y.div_euclid(2)))
        .collect()
}

/// Which of the frames either side a bidirectional frame is predicted from: both, or one
/// alone where the other does not show what it does (a cut, something coming into view).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Side {
    Both,
    Before,
    After,
}

impl Side {
    pub(super) const ALL: [Side; 3] = [Side::Both, Side::Before, Side::After];

    /// Its byte in a bidirectional frame's payload.
    pub(super) fn byte(self) -> u8 {
        self as u8
    }

    pub(super) fn from_byte(byte: u8) -> Option<Self> {
        Self::ALL.get(usize::from(byte)).copied()
    }
}

/// The side byte of a bidirectional frame whose field gives each unit (a whole block or a
/// split block's cell) its own side (version 14 on): where something comes into view in one
/// part of the frame only, or one side is sharper there, each unit takes the side that
/// predicts it best.
pub(super) const SIDE_PER_UNIT: u8 = 3;

/// The squared error in `prediction` against `frame` (all three channels) of the cells
/// `span` = (columns, rows) from cell `(col, row)` of the motion grid.
pub(super) fn cells_squared_error(
    frame: &RgbFrame,
    prediction: &RgbFrame,
    (col, row): (usize, usize),
    span: (usize, usize),
) -> f64 {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let (x0, y0) = (col * CELL, row * CELL);
    let (x1, y1) = ((x0 + span.0 * CELL).min(w), (y0 + span.1 * CELL).min(h));
    let mut total = 0i64;
    for y in y0..y1 {
        let row = 3 * (y * w + x0)..3 * (y * w + x1);
        for (&a, &b) in frame.data[row.clone()].iter().zip(&prediction.data[row]) {
            total += (i64::from(a) - i64::from(b)).pow(2);
        }
    }
    total as f64
}

/// Every vector reversed.
pub(super) fn opposite(vectors: &[(i32, i32)]) -> Vec<(i32, i32)> {
    vectors.iter().map(|&(x, y)| (-x, -y)).collect()
}

/// A bidirectional frame predicted from `before` and `after`, the frames either side of it,
/// as `side` says: from both, each cell the rounded mean of `before` moved by its vector and
/// `after` moved by the opposite one (what lies at a point of the frame between was half a
/// move away on each side); from one, that one moved so.
pub(super) fn compensate_between(
    (before, after): (&RgbFrame, &RgbFrame),
    side: Side,
    vectors: &[(i32, i32)],
) -> RgbFrame {
    match side {
        Side::Both => compensate_cells((before, after), vectors, |_| Side::Both),
        Side::Before => compensate(before, vectors),
        Side::After => compensate(after, &opposite(vectors)),
    }
}

/// A bidirectional frame predicted cell by cell from the side each takes (`sides`, one per
/// cell of the frame's grid), as [`compensate_between`] does for a whole frame.
pub(super) fn compensate_per_cell(
    around: (&RgbFrame, &RgbFrame),
    sides: &[Side],
    vectors: &[(i32, i32)],
) -> RgbFrame {
    compensate_cells(around, vectors, |i| {
        sides.get(i).copied().unwrap_or(Side::Both)
    })
}

/// Each cell `i` predicted from the side `side_of(i)` says, moved by its vector.
fn compensate_cells(
    (before, after): (&RgbFrame, &RgbFrame),
    vectors: &[(i32, i32)],
    side_of: impl Fn(usize) -> Side,
) -> RgbFrame {
    let (w, h) = (before.width as usize, before.height as usize);
    let grid = MotionGrid::new(w, h);
    let mut data = vec![0u8; 3 * w * h];
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for (i, &(vx, vy)) in vectors.iter().enumerate().take(grid.cells()) {
        let (x0, y0) = ((i % grid.cols) * CELL, (i / grid.cols) * CELL);
        let size = (CELL.min(w - x0), CELL.min(h - y0));
        let side = side_of(i);
        for c in 0..3 {
            match side {
                Side::Both => {
                    interpolate::predict_block(before, c, (x0, y0), size, (vx, vy), &mut a);
                    interpolate::predict_block(after, c, (x0, y0), size, (-vx, -vy), &mut b);
                    for (s, &t) in a.iter_mut().zip(&b) {
                        *s = (*s + t + 1) >> 1;
                    }
                }
                Side::Before => {
                    interpolate::predict_block(before, c, (x0, y0), size, (vx, vy), &mut a)
                }
                Side::After => {
                    interpolate::predict_block(after, c, (x0, y0), size, (-vx, -vy), &mut a)
                }
            }
            for (k, &s) in a.iter().enumerate() {
                let (x, y) = (x0 + k % size.0, y0 + k / size.0);
                data[(y * w + x) * 3 + c] = s as u8;
            }
        }
    }
    RgbFrame::from_data(w as u32, h as u32, data).expect("the size matches")
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub(crate) fn texture(w: u32, h: u32, dx: i32, dy: i32) -> RgbFrame {
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

    pub(crate) fn mse(a: &RgbFrame, b: &RgbFrame) -> f64 {
        a.data
            .iter()
            .zip(&b.data)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum::<f64>()
            / a.data.len() as f64
    }

    #[test]
    fn whole_pixel_vectors_copy_and_the_filters_keep_flat_areas_flat() {
        let reference = texture(44, 30, 0, 0);
        let cells = MotionGrid::new(44, 30).cells();
        assert_eq!(compensate(&reference, &vec![(0, 0); cells]), reference);
        let flat = RgbFrame::from_data(44, 30, vec![77; 44 * 30 * 3]).unwrap();
        for v in [(1, 0), (2, 3), (-3, -1)] {
            assert_eq!(compensate(&flat, &vec![v; cells]), flat);
        }
    }

    #[test]
    fn a_side_per_cell_predicts_each_cell_as_its_side_does_for_the_whole_frame() {
        let (before, after) = (texture(40, 24, 0, 0), texture(40, 24, 7, -3));
        let grid = MotionGrid::new(40, 24);
        let vectors: Vec<(i32, i32)> = (0..grid.cells() as i32).map(|i| (i % 5 - 2, 3)).collect();
        let around = (&before, &after);
        let whole: Vec<RgbFrame> = Side::ALL
            .iter()
            .map(|&side| compensate_between(around, side, &vectors))
            .collect();
        for (k, &side) in Side::ALL.iter().enumerate() {
            let sides = vec![side; grid.cells()];
            assert_eq!(compensate_per_cell(around, &sides, &vectors), whole[k]);
        }
        let sides: Vec<Side> = (0..grid.cells()).map(|i| Side::ALL[i * 7 % 3]).collect();
        let mixed = compensate_per_cell(around, &sides, &vectors);
        for (i, side) in sides.iter().enumerate() {
            let k = Side::ALL.iter().position(|s| s == side).unwrap();
            let cell = (i % grid.cols, i / grid.cols);
            let error = cells_squared_error(&mixed, &whole[k], cell, (1, 1));
            assert_eq!(error, 0.0, "cell {i}");
        }
    }

    #[test]
    fn a_block_cut_by_the_edge_has_the_cells_inside_the_frame() {
        let grid = MotionGrid::new(40, 20);
        assert_eq!((grid.cols, grid.rows), (5, 3));
        assert_eq!(grid.blocks(), (3, 2));
        assert_eq!(
            grid.block_cells(2, 1),
            ([(4, 2), (0, 0), (0, 0), (0, 0)], 1)
        );
        assert_eq!(grid.block_cells(1, 1).1, 2);
        assert_eq!(grid.block_span(2, 0), (1, 2));
    }
}
