//! Frame coders: one per coding tool. Each turns a padded RGB frame into a packet payload and
//! back; the container stores the payload and the header names the tool.

mod pixel;

pub use pixel::PixelCoder;

use sha2::{Digest, Sha256};

use crate::container::{CodingParams, FrameType, Header};
use crate::entropy::EntropyError;
use crate::RgbFrame;

/// Why a frame could not be coded or a payload could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum CoderError {
    #[error(transparent)]
    Entropy(#[from] EntropyError),
    #[error("corrupt payload: {0}")]
    Payload(String),
    #[error("frame is {got_w}x{got_h}, the coder expects {want_w}x{want_h}")]
    FrameSize {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error("this file needs model {needed}, but the model given is {given}")]
    WrongModel { needed: String, given: String },
    #[error("this file needs model {0}, which is not available (pass it with --model)")]
    ModelUnavailable(String),
}

/// A coded frame, ready for the container.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub frame_type: FrameType,
    pub payload: Vec<u8>,
}

/// Codes frames of one fixed (padded) size.
pub trait FrameCoder: Send {
    /// Codes one frame of the coded size.
    fn encode(&mut self, frame: &RgbFrame) -> Result<EncodedFrame, CoderError>;
    /// Decodes one payload to a frame of the coded size.
    fn decode(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<RgbFrame, CoderError>;
}

/// SHA-256 of a byte string, the identity of a model file.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Which coder a stream uses, with everything needed to build one and fill the header.
#[derive(Debug, Clone)]
pub enum CoderSpec {
    /// Built into the binary: no model file.
    Pixel { step: u8 },
}

impl CoderSpec {
    /// The identity that goes into the header's `model_id`.
    pub fn model_id(&self) -> [u8; 32] {
        match self {
            CoderSpec::Pixel { .. } => sha256(pixel::MODEL_NAME.as_bytes()),
        }
    }

    /// Size of the model file a client must fetch once.
    pub fn model_bytes(&self) -> u64 {
        match self {
            CoderSpec::Pixel { .. } => 0,
        }
    }

    pub fn params(&self) -> CodingParams {
        match *self {
            CoderSpec::Pixel { step } => CodingParams::Pixel { step },
        }
    }

    /// The stride frames are padded to.
    pub fn stride(&self) -> u32 {
        self.params().stride()
    }

    /// A coder for frames of the given coded size.
    pub fn build(&self, coded_width: u32, coded_height: u32) -> Box<dyn FrameCoder> {
        match *self {
            CoderSpec::Pixel { step } => Box::new(PixelCoder::new(step, coded_width, coded_height)),
        }
    }

    /// The spec a file's header calls for, checking the model identity.
    pub fn for_header(header: &Header) -> Result<Self, CoderError> {
        let spec = match header.coding {
            CodingParams::Pixel { step } => CoderSpec::Pixel { step },
            CodingParams::Pca { .. } | CodingParams::Learned { .. } => {
                return Err(CoderError::ModelUnavailable(header.model_id_hex()))
            }
        };
        if spec.model_id() != header.model_id {
            return Err(CoderError::WrongModel {
                needed: header.model_id_hex(),
                given: hex::encode(spec.model_id()),
            });
        }
        Ok(spec)
    }
}
