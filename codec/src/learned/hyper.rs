//! The hyper-synthesis in exact integer arithmetic: it picks the table every latent element is
//! parsed with, so its result must be the same on every machine, thread count and backend.
//!
//! Weights are rounded to multiples of 2^-[`HYPER_WEIGHT_BITS`], activations are kept as
//! multiples of 2^-[`HYPER_ACTIVATION_BITS`] clamped to ±2^12, and biases to the product's
//! grid. Every product and every partial sum is then an integer below 2^53, which `f64`
//! holds exactly, so the GEMM's summation order (and FMA) cannot change any result; after
//! each layer the accumulator is floored back to the activation grid.

use super::arch::{HYPER_ACTIVATION_BITS, HYPER_WEIGHT_BITS};
use super::conv::{ConvKernel, FeatureMap};
use super::step::LatentStep;
use crate::entropy::index_for_log_scale;

/// Activations are clamped to this magnitude (in real units) to bound the sums.
const ACTIVATION_LIMIT: f64 = 4096.0;
/// Weights are clamped to this magnitude (in real units).
const WEIGHT_LIMIT: f64 = 64.0;

/// The hyper-synthesis layers with weights on the integer grid.
pub struct ExactHyperSynthesis {
    layers: Vec<ConvKernel<f64>>,
    /// Whether the last layer gives means after the log-scales.
    means: bool,
}

impl ExactHyperSynthesis {
    /// Rounds float layers to the grid; `means`: the last layer gives means after the
    /// log-scales.
    pub fn new(layers: &[ConvKernel<f32>], means: bool) -> Self {
        let wscale = f64::from(1u32 << HYPER_WEIGHT_BITS);
        let bscale = f64::from(1u32 << (HYPER_WEIGHT_BITS + HYPER_ACTIVATION_BITS));
        let layers = layers
            .iter()
            .map(|l| ConvKernel {
                spec: l.spec.clone(),
                weight: l
                    .weight
                    .iter()
                    .map(|&w| (f64::from(w).clamp(-WEIGHT_LIMIT, WEIGHT_LIMIT) * wscale).round())
                    .collect(),
                bias: l
                    .bias
                    .iter()
                    .map(|&b| {
                        (f64::from(b).clamp(-ACTIVATION_LIMIT, ACTIVATION_LIMIT) * bscale).round()
                    })
                    .collect(),
            })
            .collect();
        Self { layers, means }
    }

    /// The prior of a latent of `height`×`width` from the rounded side latent `z` (planar,
    /// `side_channels` × zh × zw), quantized with `step`: one table index per latent element,
    /// planar, each log-scale lowered by the step's `ln` first; and, when the last layer
    /// also gives means (twice the latent's channels), each element's mean in whole steps.
    pub fn prior(
        &self,
        z: &FeatureMap<i32>,
        height: usize,
        width: usize,
        step: LatentStep,
    ) -> LatentPrior {
        let ascale = f64::from(1u32 << HYPER_ACTIVATION_BITS);
        let limit = ACTIVATION_LIMIT * ascale;
        let mut x = FeatureMap {
            channels: z.channels,
            height: z.height,
            width: z.width,
            data: z
                .data
                .iter()
                .map(|&v| (f64::from(v) * ascale).clamp(-limit, limit))
                .collect(),
        };
        let wscale = f64::from(1u32 << HYPER_WEIGHT_BITS);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            let floor_at = if i < last { 0.0 } else { -limit };
            x = layer.forward_with(&x, |v| (v / wscale).floor().clamp(floor_at, limit));
        }
        let outputs = x.cropped(height, width);
        let elements = outputs.data.len() / if self.means { 2 } else { 1 };
        let (log_scales, means) = outputs.data.split_at(elements);
        let log_step_q8 = step.log_q8();
        LatentPrior {
            tables: log_scales
                .iter()
                .map(|&s| index_for_log_scale(s as i64 - log_step_q8))
                .collect(),
            offsets: step.means_in_steps(means.iter().map(|&m| m as i64)),
        }
    }
}

/// What the hyperprior says of each element of a latent quantized with some step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatentPrior {
    /// The bank table each element is coded with.
    pub tables: Vec<u8>,
    /// Each element's mean in whole steps, or none (a scale-only hyperprior): an element is
    /// coded as its difference from its mean.
    pub offsets: Vec<i32>,
}

impl LatentPrior {
    /// The values coded for a latent (in steps): their differences from the means.
    pub fn centred(&self, latent: &[i32]) -> Vec<i32> {
        match self.offsets.is_empty() {
            true => latent.to_vec(),
            false => latent
                .iter()
                .zip(&self.offsets)
                .map(|(&v, &m)| v - m)
                .collect(),
        }
    }

    /// An unrounded latent (in steps) less the means, as the encoder rounds it.
    pub fn centred_exact(&self, exact: &[f32]) -> Vec<f32> {
        match self.offsets.is_empty() {
            true => exact.to_vec(),
            false => exact
                .iter()
                .zip(&self.offsets)
                .map(|(&v, &m)| v - m as f32)
                .collect(),
        }
    }

    /// The latent from the values coded: the means added back.
    pub fn uncentred(&self, mut coded: Vec<i32>) -> Vec<i32> {
        for (v, &m) in coded.iter_mut().zip(&self.offsets) {
            *v = v.saturating_add(m);
        }
        coded
    }
}
