//! What a latent codec hands the frame coder: a payload, what its ANS stream cost, and the
//! frame as the decoder will hold it.

use super::predicted::ReferenceFrame;
use crate::coders::CoderError;
use crate::entropy::{self, CategoricalTable, StreamEnd};

/// What the entropy coder spent on one frame's ANS stream against the ideal.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EntropyCost {
    /// Symbols in the stream (escape symbols included).
    pub symbols: usize,
    /// Their information content under the tables they were coded with.
    pub ideal_bits: f64,
    /// The stream's real size.
    pub coded_bits: u64,
}

/// One frame coded by a latent codec.
pub struct CodedLatent {
    pub payload: Vec<u8>,
    pub cost: EntropyCost,
    /// The frame the decoder will have: what the next predicted frame is coded against.
    pub reference: ReferenceFrame,
}

impl CodedLatent {
    /// Writes the ANS stream of `items` after the payload's `leading` bytes, ending as `end`
    /// says.
    pub fn finish(
        mut leading: Vec<u8>,
        items: Vec<(&CategoricalTable, i32)>,
        reference: ReferenceFrame,
        end: StreamEnd,
    ) -> Result<Self, CoderError> {
        let ideal_bits = entropy::information_content(items.iter().copied());
        let symbols = items.len();
        let words = entropy::encode(items.into_iter())?;
        let start = leading.len();
        entropy::write_stream(&mut leading, &words, end);
        let cost = EntropyCost {
            symbols,
            ideal_bits,
            coded_bits: 8 * (leading.len() - start) as u64,
        };
        Ok(Self {
            payload: leading,
            cost,
            reference,
        })
    }
}
