//! Frame coders: one per coding tool. Each turns a padded RGB frame into a packet payload and
//! back; the container stores the payload and the header names the tool.

pub mod detail;
pub mod pca;
mod pixel;

pub use detail::{BasePolicy, DetailedCoder};
pub use pca::{PcaCoder, PcaModel};
pub use pixel::{PixelCoder, MODEL_NAME as PIXEL_MODEL_NAME};

use crate::container::{CodingParams, FrameType, LayerBytes, PacketLayers};
use crate::entropy::{EntropyError, StreamEnd};
use crate::model_file::{ModelError, ModelId};
use crate::RgbFrame;

/// The model an error (or one of its causes) says is missing, so that a program can say how
/// its user gives it.
pub fn missing_model(err: &(dyn std::error::Error + 'static)) -> Option<ModelId> {
    std::iter::successors(Some(err), |e| e.source()).find_map(|e| match e.downcast_ref() {
        Some(CoderError::ModelUnavailable(id)) => Some(*id),
        _ => None,
    })
}

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
    WrongModel { needed: ModelId, given: ModelId },
    #[error(
        "a predicted frame without the frame before it (decoding must start at an intra frame)"
    )]
    NoReference,
    #[error(
        "this file needs model {0}, which is neither built in nor in the model cache \
         (give its model file, or save it in the cache as {0}.model)"
    )]
    ModelUnavailable(ModelId),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("coding tools: {0}")]
    Tools(String),
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

/// A predicted frame's values: `reference` plus the decoded `changes`, element by element; a
/// sum that overflows is a corrupt payload (`what` names the values in the message).
pub(crate) fn add_changes(
    reference: &[i32],
    changes: &[i32],
    what: &str,
) -> Result<Vec<i32>, CoderError> {
    changes
        .iter()
        .zip(reference)
        .map(|(&change, &r)| {
            r.checked_add(change)
                .ok_or_else(|| CoderError::Payload(format!("{what} overflow")))
        })
        .collect()
}

/// Rounds one unrounded value (a latent element, a coefficient in steps) to the integer that is
/// coded, clamping absurd values.
pub(crate) fn round_element(value: f32) -> i32 {
    value.round().clamp(-1e6, 1e6) as i32
}

/// Encoder-only: rounds the unrounded values `exact` of a predicted frame, except where one lies
/// within `dead_zone` (in steps) of its prediction, whose value is then kept: the small
/// back-and-forth changes near a still value cost bits and buy little. The decoder reads
/// whatever the encoder chose.
pub(crate) fn round_near(exact: &[f32], prediction: &[i32], dead_zone: f32) -> Vec<i32> {
    exact
        .iter()
        .zip(prediction)
        .map(|(&f, &p)| {
            if (f - p as f32).abs() < dead_zone {
                p
            } else {
                round_element(f)
            }
        })
        .collect()
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
    /// Codes two predicted frames in a row, `frame` then `next`: two packets' payloads, for
    /// `frame` and for `next`. A coder with bidirectional frames codes `next` first as a hidden
    /// anchor inside the first packet and predicts `frame` from both sides; the second packet
    /// then only shows the anchor. Others code the two in turn.
    fn encode_pair(
        &mut self,
        frame: &RgbFrame,
        next: &RgbFrame,
    ) -> Result<(EncodedFrame, EncodedFrame), CoderError> {
        let first = self.encode(frame, FrameType::Predicted)?;
        Ok((first, self.encode(next, FrameType::Predicted)?))
    }
    /// First decoding stage, entropy decoding: a payload to the frame's integer latent
    /// (prediction from the previous frame included). Parsing depends on integers only.
    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError>;
    /// Second decoding stage, synthesis: the latent to a frame of the coded size. Latents
    /// come in stream order: a coder that predicts pixels keeps the frame it made last.
    fn synthesize(&mut self, latent: &LatentFrame) -> RgbFrame;
    /// How many rates the coder's intra frames may be coded at, for a layer above it that
    /// tries each (1: the coder's own).
    fn intra_rates(&self) -> usize {
        1
    }
    /// Codes intra frames at rate `rate` (below [`Self::intra_rates`]; 0 is the coder's own)
    /// from now on.
    fn set_intra_rate(&mut self, _rate: usize) {}
    /// How the entropy-coded streams this coder parses end (by the file's version; coders
    /// start with [`StreamEnd::Sealed`], what they write).
    fn read_streams_as(&mut self, end: StreamEnd);
    /// How the payloads this coder parses are laid out, by the file's version (coders start
    /// with this build's, what they write). Most coders' payloads never changed.
    fn read_version(&mut self, _version: u16) {}
    /// Both stages.
    fn decode(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<RgbFrame, CoderError> {
        let latent = self.parse(frame_type, payload)?;
        Ok(self.synthesize(&latent))
    }
}

/// Codes what a motion-compensated prediction misses (the learned residual,
/// `crate::learned::ResidualCoder`) for the detail layer's predicted frames.
pub trait ResidualCoding: Send {
    /// Analyses what `prediction` misses of `frame`, for the [`Self::encode`]s that follow.
    fn prepare(&mut self, frame: &RgbFrame, prediction: &RgbFrame);
    /// How many rates the encoder may try for one frame (finest first).
    fn rates(&self) -> usize;
    /// Codes the prepared residual at rate `rate` (below [`Self::rates`]): the payload, and
    /// the latent the decoder will parse from it.
    fn encode(&mut self, rate: usize) -> Result<(Vec<u8>, LatentFrame), CoderError>;
    /// Parses a residual payload.
    fn parse(&mut self, payload: &[u8]) -> Result<LatentFrame, CoderError>;
    /// Adds the residual a parsed latent renders to `frame`.
    fn add_to(&self, frame: &mut RgbFrame, latent: &LatentFrame);
    fn read_streams_as(&mut self, end: StreamEnd);
    /// As [`FrameCoder::read_version`].
    fn read_version(&mut self, version: u16);
}

/// A frame's quantized latent as the entropy decoder delivers it: the integers synthesis
/// turns into pixels (pixel values for the pixel coder, coefficients for PCA).
#[derive(Debug, Clone, PartialEq)]
pub struct LatentFrame {
    pub values: Vec<i32>,
    /// What each value counts (the learned coder's [latent step](crate::learned::LatentStep));
    /// 1 for coders whose integers are what they code.
    pub scale: f32,
}

impl LatentFrame {
    /// Integers that stand for themselves.
    pub fn plain(values: Vec<i32>) -> Self {
        Self { values, scale: 1.0 }
    }
}

/// Which of `payload`'s bytes belong to which layer, for a packet coded with `coding`: a
/// learned tool's payload is all latent; a learned + detail payload splits into its base
/// (empty when the frame skips the learned synthesis), its detail layer and the base's length
/// prefix; anything else, or a payload that does not split, counts as other.
pub fn packet_layers(coding: Option<&CodingParams>, payload: &[u8]) -> PacketLayers {
    let len = payload.len() as u64;
    let other = |len| PacketLayers {
        bytes: LayerBytes {
            other: len,
            ..LayerBytes::default()
        },
        renders_learned: false,
        moves_previous: false,
    };
    match coding {
        Some(CodingParams::Learned { .. }) => PacketLayers {
            bytes: LayerBytes {
                learned: len,
                ..LayerBytes::default()
            },
            renders_learned: true,
            moves_previous: false,
        },
        // An empty packet shows the anchor the packet before it hid (version 16 on).
        Some(CodingParams::LearnedDetail { .. }) if payload.is_empty() => PacketLayers {
            bytes: LayerBytes::default(),
            renders_learned: false,
            moves_previous: true,
        },
        Some(CodingParams::LearnedDetail { .. }) => match DetailedCoder::split(payload) {
            Ok((base, detail)) => {
                // A bidirectional frame's anchor may carry a learned residual of its own.
                let learned = base.len() + DetailedCoder::hidden_learned_len(detail);
                PacketLayers {
                    bytes: LayerBytes {
                        learned: learned as u64,
                        detail: (detail.len() + base.len() - learned) as u64,
                        other: len - (base.len() + detail.len()) as u64,
                    },
                    renders_learned: learned > 0,
                    moves_previous: DetailedCoder::moves_previous(detail),
                }
            }
            Err(_) => other(len),
        },
        _ => other(len),
    }
}
