//! The learned codec: a convolutional autoencoder with a scale hyperprior (Ballé et al. 2018).
//!
//! * [`arch`]: the architecture, shared with the trainer;
//! * [`conv`]: the inference kernels, with `blocked_gemm` their matrix product in
//!   WebAssembly;
//! * [`hyper`]: the exact integer hyper-synthesis that picks the entropy tables;
//! * [`motion`] and [`predicted`]: predicted frames, the latent moved block by block and the
//!   change from it coded under context-chosen tables;
//! * [`intra`]: intra frames, the hyperprior latent codec, and [`context`], its per-channel
//!   spatial prediction and table shifts;
//! * [`residual`]: what motion-compensated prediction misses, coded by the intra model;
//! * [`refine`]: the encoder's latent refinement (`--effort`), gradient descent on a frame's
//!   latent against its rate and distortion;
//! * [`step`]: the latent quantizer step that lets one shallow model code at every rate;
//! * [`coded`]: what a latent codec hands back (payload, cost, the frame's state);
//! * [`coder`]: the [`FrameCoder`](crate::coders::FrameCoder) that ties them together and
//!   keeps the reference frame.

pub mod activity;
pub mod arch;
// Natively the `gemm` crate's kernels run; this one is tested there all the same.
#[cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]
mod blocked_gemm;
pub mod coded;
pub mod coder;
pub mod context;
pub mod conv;
pub mod hyper;
pub mod intra;
pub mod motion;
pub mod predicted;
pub mod refine;
pub mod residual;
pub mod step;

pub use arch::{ArchKind, ConvSpec, LearnedArch, MIN_SCALE, SHALLOW_BLOCK, Z_LOG_SCALE};
pub use coded::{CodedLatent, EntropyCost};
pub use coder::LearnedCoder;
pub use hyper::LatentPrior;
pub use residual::ResidualCoder;
pub use step::LatentStep;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::model_file::{
    write_model_bytes, ModelError, ModelFile, ModelId, NamedTensor, TrainingInfo,
};
use crate::RgbFrame;
use conv::{run_chain, ConvKernel, FeatureMap};
use hyper::ExactHyperSynthesis;

/// Size of one latent: channels, rows, columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatentShape {
    pub channels: usize,
    pub height: usize,
    pub width: usize,
}

impl LatentShape {
    /// Elements of one channel.
    pub fn plane(&self) -> usize {
        self.height * self.width
    }

    /// Elements of all channels.
    pub fn elements(&self) -> usize {
        self.channels * self.plane()
    }

    /// `data` (channel, then row, then column) as a feature map of this shape.
    pub fn map<T>(&self, data: Vec<T>) -> FeatureMap<T> {
        FeatureMap {
            channels: self.channels,
            height: self.height,
            width: self.width,
            data,
        }
    }
}

pub(crate) use crate::coders::round_element;

/// Named weight tensors (flattened, shapes as the architecture says).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LearnedWeights {
    tensors: BTreeMap<String, Vec<f32>>,
}

impl LearnedWeights {
    pub fn insert(&mut self, name: String, values: Vec<f32>) {
        self.tensors.insert(name, values);
    }

    /// A tensor every loaded model has (loading checks them all).
    pub fn get(&self, name: &str) -> &[f32] {
        self.tensors
            .get(name)
            .unwrap_or_else(|| panic!("weights have no tensor {name}"))
    }

    /// Name and shape of every tensor a model of `arch` holds.
    pub fn expected_shapes(arch: &LearnedArch) -> Vec<(String, Vec<usize>)> {
        let mut shapes = Vec::new();
        for spec in arch.all_layers() {
            shapes.push((spec.weight_name(), spec.weight_shape()));
            shapes.push((spec.bias_name(), vec![spec.conv_out()]));
        }
        shapes.push((Z_LOG_SCALE.into(), vec![usize::from(arch.side_channels)]));
        shapes
    }
}

/// What a model was trained for, stored in its file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LearnedInfo {
    pub arch: LearnedArch,
    /// Rate–distortion trade-off: loss = lambda · 255² · MSE + bits per pixel.
    pub lambda: f64,
    /// Quality level, 1 (smallest files) upwards.
    pub quality: u8,
    /// Training steps taken, over all runs that made this model.
    pub steps: u64,
    /// The model this one was fine-tuned from (hex id), if any.
    pub parent: Option<String>,
    pub training: TrainingInfo,
}

/// A trained model, ready to code with.
pub struct LearnedModel {
    pub info: LearnedInfo,
    pub weights: LearnedWeights,
    analysis: Vec<ConvKernel<f32>>,
    synthesis: Vec<ConvKernel<f32>>,
    hyper_analysis: Vec<ConvKernel<f32>>,
    hyper_synthesis: ExactHyperSynthesis,
    /// The model file's id.
    pub id: ModelId,
    pub file_bytes: u64,
}

impl LearnedModel {
    /// The `kind` of learned model files.
    pub const KIND: &'static str = "learned";

    /// A model from weights (checked against the architecture).
    pub fn new(
        info: LearnedInfo,
        weights: LearnedWeights,
        id: ModelId,
        file_bytes: u64,
    ) -> Result<Self, ModelError> {
        info.arch
            .check()
            .map_err(|e| ModelError::BadConfig(e.to_string()))?;
        for (name, shape) in LearnedWeights::expected_shapes(&info.arch) {
            let len = weights.tensors.get(&name).map(Vec::len);
            if len != Some(shape.iter().product()) {
                return Err(ModelError::BadTensor {
                    name,
                    what: format!("{len:?} values, expected shape {shape:?}"),
                });
            }
        }
        let kernels = |specs: Vec<ConvSpec>| -> Vec<ConvKernel<f32>> {
            specs
                .into_iter()
                .map(|spec| ConvKernel {
                    weight: weights.get(&spec.weight_name()).to_vec(),
                    bias: weights.get(&spec.bias_name()).to_vec(),
                    spec,
                })
                .collect()
        };
        let arch = info.arch;
        Ok(Self {
            analysis: kernels(arch.analysis()),
            synthesis: kernels(arch.synthesis()),
            hyper_analysis: kernels(arch.hyper_analysis()),
            hyper_synthesis: ExactHyperSynthesis::new(&kernels(arch.hyper_synthesis()), arch.means),
            info,
            weights,
            id,
            file_bytes,
        })
    }

    /// Reads a parsed model file.
    pub fn from_file(file: &ModelFile<'_>) -> Result<Self, ModelError> {
        if file.kind() != Self::KIND {
            return Err(ModelError::BadConfig("not a learned model".into()));
        }
        let info: LearnedInfo = file.config()?;
        info.arch
            .check()
            .map_err(|e| ModelError::BadConfig(e.to_string()))?;
        let mut weights = LearnedWeights::default();
        for (name, shape) in LearnedWeights::expected_shapes(&info.arch) {
            let values = file.tensor(&name, &shape)?;
            weights.insert(name, values);
        }
        Self::new(info, weights, file.id, file.file_bytes)
    }

    /// Parses model file bytes; the id is their SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let file = ModelFile::parse(bytes)?;
        Self::from_file(&file)
    }

    /// Serializes a model file (its id is the SHA-256 of these bytes).
    pub fn file_bytes_for(info: &LearnedInfo, weights: &LearnedWeights) -> Vec<u8> {
        let shapes = LearnedWeights::expected_shapes(&info.arch);
        let tensors: Vec<NamedTensor<'_>> = shapes
            .iter()
            .map(|(name, shape)| NamedTensor {
                name,
                shape: shape.clone(),
                values: weights.get(name),
            })
            .collect();
        write_model_bytes(Self::KIND, info, &tensors)
    }

    /// The analysis transform: a padded frame to its latent `y` (1/16 resolution).
    pub fn analyze(&self, frame: &RgbFrame) -> FeatureMap<f32> {
        run_chain(&self.analysis, frame_to_map(frame))
    }

    /// The analysis of a planar map in frame units (0..=1 for a picture; a residual may leave
    /// that range).
    pub fn analyze_map(&self, map: FeatureMap<f32>) -> FeatureMap<f32> {
        run_chain(&self.analysis, map)
    }

    /// The hyper-analysis: `y` to the side latent `z`, unrounded. It reads `|y|`, and with
    /// means `y` as well (channels after those of `|y|`).
    pub fn hyper_analyze(&self, y: &FeatureMap<f32>) -> FeatureMap<f32> {
        let mut input = y.clone();
        input.data.iter_mut().for_each(|v| *v = v.abs());
        if self.info.arch.means {
            input.channels *= 2;
            input.data.extend_from_slice(&y.data);
        }
        run_chain(&self.hyper_analysis, input)
    }

    /// The table and (with a mean-and-scale hyperprior) the mean of every element of a
    /// `height`×`width` latent quantized with `step`, from the rounded `ẑ`.
    pub fn prior(
        &self,
        z: &FeatureMap<i32>,
        height: usize,
        width: usize,
        step: LatentStep,
    ) -> LatentPrior {
        self.hyper_synthesis.prior(z, height, width, step)
    }

    /// Whether this model's intra payloads carry a [`LatentStep`] (the shallow kind's do;
    /// the pixel-shuffle kind codes at its training rate only, as it always has).
    pub fn has_latent_step(&self) -> bool {
        self.info.arch.kind == ArchKind::Shallow
    }

    /// The synthesis transform: the rounded latent, quantized with `step`, to a frame.
    pub fn synthesize(&self, y: &FeatureMap<i32>, step: f32) -> RgbFrame {
        let map = FeatureMap {
            channels: y.channels,
            height: y.height,
            width: y.width,
            data: y.data.iter().map(|&v| v as f32 * step).collect(),
        };
        map_to_frame(&run_chain(&self.synthesis, map))
    }

    /// The synthesis transform's layers (ReLU between them), for its gradient.
    pub(crate) fn synthesis_layers(&self) -> &[ConvKernel<f32>] {
        &self.synthesis
    }

    /// The synthesis in float, for comparing with other implementations.
    pub fn synthesize_map(&self, y: FeatureMap<f32>) -> FeatureMap<f32> {
        run_chain(&self.synthesis, y)
    }
}

/// Packed RGB bytes to a planar map in 0..=1.
pub fn frame_to_map(frame: &RgbFrame) -> FeatureMap<f32> {
    let (w, h) = (frame.width as usize, frame.height as usize);
    let mut map = FeatureMap::zeros(3, h, w);
    for (i, px) in frame.data.chunks_exact(3).enumerate() {
        for (c, &v) in px.iter().enumerate() {
            map.data[c * w * h + i] = f32::from(v) / 255.0;
        }
    }
    map
}

/// A planar map in 0..=1 to packed RGB bytes, rounded and clamped.
pub fn map_to_frame(map: &FeatureMap<f32>) -> RgbFrame {
    let (w, h) = (map.width, map.height);
    let mut data = vec![0u8; 3 * w * h];
    for c in 0..3 {
        let plane = &map.data[c * w * h..(c + 1) * w * h];
        for (i, &v) in plane.iter().enumerate() {
            // Adding ½ and truncating rounds the clamped (non-negative) value to nearest,
            // inline, where `f32::round` is a libm call per sample.
            data[3 * i + c] = ((v * 255.0).clamp(0.0, 255.0) + 0.5) as u8;
        }
    }
    RgbFrame {
        width: w as u32,
        height: h as u32,
        data,
    }
}

/// A fresh description for a model trained from scratch.
pub fn new_info(arch: LearnedArch, lambda: f64, quality: u8) -> LearnedInfo {
    LearnedInfo {
        arch,
        lambda,
        quality,
        steps: 0,
        parent: None,
        training: TrainingInfo::default(),
    }
}
