//! Motion compensation of the learned latent, for predicted frames.
//!
//! The latent is cut into blocks of [`BLOCK`]×[`BLOCK`] elements (32×32 pixels); each block
//! has one integer vector, in latent elements (16 pixels), and is predicted by the reference
//! latent moved by it (all channels alike; positions past the edge take the nearest edge
//! element). Whole-element vectors keep the prediction an exact copy of decoded integers, so
//! parsing cannot depend on floating point. On 30 frames of `cockatoo` (a camera panning
//! 20–40 pixels a frame) half-element vectors with bilinear interpolation of the latent took
//! no more bits off than whole ones (both −21.7 % of the predicted frames' information content,
//! 4×4 blocks, vectors not counted); 2×2 blocks took about 2 % more off than 4×4 with the
//! vectors counted.
//!
//! The vectors are coded, in raster order of blocks, as their change from the component-wise
//! median of the left, upper and upper-right blocks' vectors (zero where a neighbour is
//! missing), `dy` then `dx`, all under one bank table.

use super::LatentShape;
use crate::coders::CoderError;
use crate::entropy::{CategoricalTable, ScaleBank, SymbolDecoder};

/// Side of a block, in latent elements.
pub const BLOCK: usize = 2;

/// The largest vector component the format allows.
pub const MAX_VECTOR: i32 = 16;

/// The largest vector component the encoder tries.
const SEARCH_RANGE: i32 = 4;

/// What the search charges per element of distance from the vector's prediction (the median
/// of the neighbours'), in units of the latent's absolute error: where the error is flat, the
/// vector that is cheapest to code wins. (On `cockatoo`, 0.3 beat 3 and a charge for
/// distance from zero instead, by under 1 %.)
const VECTOR_PENALTY: f64 = 0.3;

fn block_rows(shape: LatentShape) -> usize {
    shape.height.div_ceil(BLOCK)
}

fn block_cols(shape: LatentShape) -> usize {
    shape.width.div_ceil(BLOCK)
}

/// One vector per block of a latent: `(dy, dx)`, the prediction of element (row, col) being
/// the reference's element (row + dy, col + dx), clamped to the plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MotionField {
    shape: LatentShape,
    vectors: Vec<(i32, i32)>,
}

impl MotionField {
    /// Every block still.
    pub fn zero(shape: LatentShape) -> Self {
        Self {
            shape,
            vectors: vec![(0, 0); block_rows(shape) * block_cols(shape)],
        }
    }

    /// Whether no block moves (the field is then not worth sending).
    pub fn is_zero(&self) -> bool {
        self.vectors.iter().all(|&v| v == (0, 0))
    }

    /// Encoder: for each block in raster order, the vector whose moved reference is nearest
    /// (absolute error, plus a small charge for distance from the vector's prediction) to the
    /// frame's unrounded latent `exact`.
    pub fn estimate(exact: &[f32], reference: &[i32], shape: LatentShape) -> Self {
        let mut field = Self::zero(shape);
        let cols = block_cols(shape);
        for b in 0..field.vectors.len() {
            let (top, left) = ((b / cols) * BLOCK, (b % cols) * BLOCK);
            let (my, mx) = Self::predicted(&field.vectors, cols, b);
            let error = |v: (i32, i32)| {
                let mut sum = 0.0;
                for c in 0..shape.channels {
                    let offset = c * shape.plane();
                    for row in top..(top + BLOCK).min(shape.height) {
                        for col in left..(left + BLOCK).min(shape.width) {
                            let at = source(shape, row, col, v);
                            let e = exact[offset + row * shape.width + col]
                                - reference[offset + at] as f32;
                            sum += f64::from(e.abs());
                        }
                    }
                }
                sum + VECTOR_PENALTY * f64::from((v.0 - my).abs() + (v.1 - mx).abs())
            };
            let candidates = (-SEARCH_RANGE..=SEARCH_RANGE)
                .flat_map(|dy| (-SEARCH_RANGE..=SEARCH_RANGE).map(move |dx| (dy, dx)));
            field.vectors[b] = candidates
                .map(|v| (v, error(v)))
                .min_by(|a, b| a.1.total_cmp(&b.1))
                .map_or((0, 0), |(v, _)| v);
        }
        field
    }

    /// The reference moved block by block: the prediction the frame's change is coded against.
    pub fn compensate(&self, reference: &[i32]) -> Vec<i32> {
        let shape = self.shape;
        let cols = block_cols(shape);
        let mut out = Vec::with_capacity(reference.len());
        for c in 0..shape.channels {
            let plane = &reference[c * shape.plane()..][..shape.plane()];
            for row in 0..shape.height {
                for col in 0..shape.width {
                    let v = self.vectors[(row / BLOCK) * cols + col / BLOCK];
                    out.push(plane[source(shape, row, col, v)]);
                }
            }
        }
        out
    }

    /// The median of the causal neighbours' vectors, which block `b`'s is coded against.
    fn predicted(vectors: &[(i32, i32)], cols: usize, b: usize) -> (i32, i32) {
        let (row, col) = (b / cols, b % cols);
        let at = |r: Option<usize>, c: Option<usize>| match (r, c) {
            (Some(r), Some(c)) if c < cols => vectors[r * cols + c],
            _ => (0, 0),
        };
        let left = at(Some(row), col.checked_sub(1));
        let up = at(row.checked_sub(1), Some(col));
        let up_right = at(row.checked_sub(1), Some(col + 1));
        let median = |a: i32, b: i32, c: i32| a.max(b).min(a.min(b).max(c));
        (
            median(left.0, up.0, up_right.0),
            median(left.1, up.1, up_right.1),
        )
    }

    /// The symbols that code the field, in decoding order.
    pub fn symbols(&self) -> Vec<i32> {
        let cols = block_cols(self.shape);
        let mut out = Vec::with_capacity(2 * self.vectors.len());
        for (b, &(dy, dx)) in self.vectors.iter().enumerate() {
            let (py, px) = Self::predicted(&self.vectors, cols, b);
            out.extend([dy - py, dx - px]);
        }
        out
    }

    /// Pushes the field's symbols under bank index `table`.
    pub fn push_items<'b>(
        &self,
        bank: &'b ScaleBank,
        table: u8,
        items: &mut Vec<(&'b CategoricalTable, i32)>,
    ) {
        for v in self.symbols() {
            bank.push_symbols(table, v, items);
        }
    }

    /// Decodes a field for a latent of `shape` whose symbols are under bank index `table`.
    pub fn parse(
        shape: LatentShape,
        table: u8,
        decoder: &mut SymbolDecoder,
    ) -> Result<Self, CoderError> {
        let bank = ScaleBank::get();
        let mut field = Self::zero(shape);
        let cols = block_cols(shape);
        for b in 0..field.vectors.len() {
            let (py, px) = Self::predicted(&field.vectors, cols, b);
            let mut component = |p: i32| -> Result<i32, CoderError> {
                let v = i64::from(p) + i64::from(bank.decode(table, decoder)?);
                i32::try_from(v)
                    .ok()
                    .filter(|v| v.abs() <= MAX_VECTOR)
                    .ok_or_else(|| {
                        CoderError::Payload(format!(
                            "motion vector component {v} is beyond ±{MAX_VECTOR}"
                        ))
                    })
            };
            let dy = component(py)?;
            let dx = component(px)?;
            field.vectors[b] = (dy, dx);
        }
        Ok(field)
    }
}

/// Index within a plane of the element that (`row`, `col`) is predicted from under `v`.
fn source(shape: LatentShape, row: usize, col: usize, v: (i32, i32)) -> usize {
    let clamp = |p: usize, d: i32, n: usize| (p as i64 + i64::from(d)).clamp(0, n as i64 - 1);
    (clamp(row, v.0, shape.height) as usize) * shape.width + clamp(col, v.1, shape.width) as usize
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::entropy::{encode, write_words};

    const SHAPE: LatentShape = LatentShape {
        channels: 3,
        height: 9,
        width: 11,
    };

    /// Codes `field` alone under bank index `table` and parses it back.
    fn code_and_parse(field: &MotionField, table: u8) -> Result<MotionField, CoderError> {
        let mut items = Vec::new();
        field.push_items(ScaleBank::get(), table, &mut items);
        let mut bytes = Vec::new();
        write_words(&mut bytes, &encode(items.into_iter()).unwrap());
        let mut decoder = SymbolDecoder::new(&bytes, crate::entropy::StreamEnd::Sealed).unwrap();
        MotionField::parse(field.shape, table, &mut decoder)
    }

    fn pattern(shape: LatentShape) -> Vec<i32> {
        (0..shape.elements())
            .map(|i| ((i * 37) % 23) as i32 - 11)
            .collect()
    }

    #[test]
    fn a_shifted_latent_is_found_and_predicted_exactly_inside_the_edges() {
        let reference = pattern(SHAPE);
        // The frame is the reference moved by (1, -2): element (r, c) = reference (r+1, c-2).
        let moved = MotionField {
            shape: SHAPE,
            vectors: vec![(1, -2); block_rows(SHAPE) * block_cols(SHAPE)],
        };
        let frame = moved.compensate(&reference);
        let exact: Vec<f32> = frame.iter().map(|&v| v as f32).collect();
        let found = MotionField::estimate(&exact, &reference, SHAPE);
        let prediction = found.compensate(&reference);
        // Inside, where the move had a source, the prediction is the frame.
        let cols = block_cols(SHAPE);
        for b in 0..found.vectors.len() {
            let (row, col) = (b / cols * BLOCK, b % cols * BLOCK);
            if row + 1 + BLOCK < SHAPE.height && col >= 2 + BLOCK {
                assert_eq!(found.vectors[b], (1, -2), "block {b}");
            }
        }
        let mismatches = prediction
            .iter()
            .zip(&frame)
            .filter(|(a, b)| a != b)
            .count();
        assert!(
            mismatches * 10 < frame.len(),
            "{mismatches} of {}",
            frame.len()
        );
    }

    #[test]
    fn a_field_parses_back_exactly() {
        let vectors = (0..block_rows(SHAPE) * block_cols(SHAPE))
            .map(|b| ((b as i32 % 7) - 3, 4 - (b as i32 % 5)))
            .collect();
        let field = MotionField {
            shape: SHAPE,
            vectors,
        };
        assert_eq!(code_and_parse(&field, 20).unwrap(), field);
    }

    #[test]
    fn vectors_beyond_the_limit_are_errors() {
        let far = MotionField {
            shape: SHAPE,
            vectors: vec![(MAX_VECTOR + 1, 0); block_rows(SHAPE) * block_cols(SHAPE)],
        };
        assert!(code_and_parse(&far, 40).is_err());
    }
}
