//! Frame coders: one per coding tool. Each turns a padded RGB frame into a packet payload and
//! back; the container stores the payload and the header names the tool.

pub mod pca;
mod pixel;

pub use pca::{PcaCoder, PcaModel};
pub use pixel::PixelCoder;

use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::container::{CodingParams, FrameType, Header};
use crate::entropy::{EntropyError, StreamEnd};
use crate::learned::{LearnedCoder, LearnedModel};
use crate::model_file::{Model, ModelError, ModelStore};
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
    #[error(
        "a predicted frame without the frame before it (decoding must start at an intra frame)"
    )]
    NoReference,
    #[error("this file needs model {0}, which is not available (pass it with --model)")]
    ModelUnavailable(String),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("the {kind} model cannot code with {params}")]
    Incompatible { kind: &'static str, params: String },
}

/// Refuses a frame that is not `width`×`height`.
pub fn check_frame_size(frame: &RgbFrame, width: u32, height: u32) -> Result<(), CoderError> {
    if (frame.width, frame.height) != (width, height) {
        return Err(CoderError::FrameSize {
            got_w: frame.width,
            got_h: frame.height,
            want_w: width,
            want_h: height,
        });
    }
    Ok(())
}

/// A coded frame, ready for the container.
#[derive(Debug, Clone)]
pub struct EncodedFrame {
    pub frame_type: FrameType,
    pub payload: Vec<u8>,
}

/// Codes frames of one fixed (padded) size. A coder keeps what predicted frames need (the
/// last frame it coded or decoded); intra frames reset nothing and need nothing.
pub trait FrameCoder: Send {
    /// Whether the coder can code [`FrameType::Predicted`] frames.
    fn supports_prediction(&self) -> bool {
        false
    }
    /// Codes one frame of the coded size as `frame_type` (intra, unless the coder supports
    /// prediction).
    fn encode(
        &mut self,
        frame: &RgbFrame,
        frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError>;
    /// First decoding stage, entropy decoding: a payload to the frame's integer latent
    /// (prediction from the previous frame included). Parsing depends on integers only.
    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError>;
    /// Second decoding stage, synthesis: the latent to a frame of the coded size.
    fn synthesize(&self, latent: &LatentFrame) -> RgbFrame;
    /// How the entropy-coded streams this coder parses end (by the file's version; coders
    /// start with [`StreamEnd::Sealed`], what they write).
    fn read_streams_as(&mut self, end: StreamEnd);
    /// Both stages.
    fn decode(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<RgbFrame, CoderError> {
        let latent = self.parse(frame_type, payload)?;
        Ok(self.synthesize(&latent))
    }
}

/// A frame's quantized latent as the entropy decoder delivers it: the integers synthesis
/// turns into pixels (pixel values for the pixel coder, coefficients for PCA).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatentFrame {
    pub values: Vec<i32>,
}

/// SHA-256 of a byte string, the identity of a model file.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Which coder a stream uses, with everything needed to build one and fill the header.
#[derive(Clone)]
pub enum CoderSpec {
    /// Built into the binary: no model file.
    Pixel { step: u8 },
    /// Block PCA with a fitted model.
    Pca {
        model: Arc<PcaModel>,
        components: u16,
        step: f32,
    },
    /// A learned autoencoder with a hyperprior.
    Learned { model: Arc<LearnedModel> },
}

impl CoderSpec {
    /// The identity that goes into the header's `model_id`.
    pub fn model_id(&self) -> [u8; 32] {
        match self {
            CoderSpec::Pixel { .. } => sha256(pixel::MODEL_NAME.as_bytes()),
            CoderSpec::Pca { model, .. } => model.id,
            CoderSpec::Learned { model } => model.id,
        }
    }

    /// Size of the model file a client must fetch once.
    pub fn model_bytes(&self) -> u64 {
        match self {
            CoderSpec::Pixel { .. } => 0,
            CoderSpec::Pca { model, .. } => model.file_bytes,
            CoderSpec::Learned { model } => model.file_bytes,
        }
    }

    pub fn params(&self) -> CodingParams {
        match self {
            CoderSpec::Pixel { step } => CodingParams::Pixel { step: *step },
            CoderSpec::Pca {
                model,
                components,
                step,
            } => CodingParams::Pca {
                block: model.block,
                components: *components,
                step: *step,
            },
            CoderSpec::Learned { model } => CodingParams::Learned {
                quality: model.info.quality,
            },
        }
    }

    /// The stride frames are padded to.
    pub fn stride(&self) -> u32 {
        self.params().stride()
    }

    /// A coder for frames of the given coded size.
    pub fn build(&self, coded_width: u32, coded_height: u32) -> Box<dyn FrameCoder> {
        match self {
            CoderSpec::Pixel { step } => {
                Box::new(PixelCoder::new(*step, coded_width, coded_height))
            }
            CoderSpec::Pca {
                model,
                components,
                step,
            } => Box::new(PcaCoder::new(
                model.clone(),
                *components,
                *step,
                coded_width,
                coded_height,
            )),
            CoderSpec::Learned { model } => {
                Box::new(LearnedCoder::new(model.clone(), coded_width, coded_height))
            }
        }
    }

    /// A spec for coding with `model` at these parameters, checking that they fit it.
    pub fn with_model(model: &Model, params: CodingParams) -> Result<Self, CoderError> {
        match (model, params) {
            (
                Model::Pca(m),
                CodingParams::Pca {
                    block,
                    components,
                    step,
                },
            ) if block == m.block
                && components >= 1
                && components <= m.components
                && (pca::MIN_STEP..=pca::MAX_STEP).contains(&step) =>
            {
                Ok(CoderSpec::Pca {
                    model: m.clone(),
                    components,
                    step,
                })
            }
            (Model::Learned(m), CodingParams::Learned { .. }) => {
                Ok(CoderSpec::Learned { model: m.clone() })
            }
            (Model::Learned(_), p) => Err(CoderError::Incompatible {
                kind: "learned",
                params: format!("{p:?}"),
            }),
            (Model::Pca(m), p) => Err(CoderError::Incompatible {
                kind: "PCA",
                params: format!(
                    "{p:?} (it has {} components of {}x{} blocks; steps from {} to {})",
                    m.components,
                    m.block,
                    m.block,
                    pca::MIN_STEP,
                    pca::MAX_STEP
                ),
            }),
        }
    }

    /// The spec a file's header calls for, finding its model in `models` by id.
    pub fn for_header(header: &Header, models: &ModelStore) -> Result<Self, CoderError> {
        let spec = match header.coding {
            CodingParams::Pixel { step } => CoderSpec::Pixel { step },
            params => {
                let model = models
                    .find(&header.model_id)?
                    .ok_or_else(|| CoderError::ModelUnavailable(header.model_id_hex()))?;
                Self::with_model(&model, params)?
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
