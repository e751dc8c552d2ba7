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
use crate::entropy::index_for_log_scale;

/// Activations are clamped to this magnitude (in real units) to bound the sums.
const ACTIVATION_LIMIT: f64 = 4096.0;
/// Weights are clamped to this magnitude (in real units).
const WEIGHT_LIMIT: f64 = 64.0;

/// The hyper-synthesis layers with weights on the integer grid.
pub struct ExactHyperSynthesis {
    layers: Vec<ConvKernel<f64>>,
}

impl ExactHyperSynthesis {
    /// Rounds float layers to the grid.
    pub fn new(layers: &[ConvKernel<f32>]) -> Self {
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
        Self { layers }
    }

    /// Table indices for a latent of `height`×`width` from the rounded side latent `z`
    /// (planar, `side_channels` × zh × zw): one index per latent element, planar. Each
    /// log-scale is lowered by `log_step_q8` (the latent step's `ln`, in 2^−8) first.
    pub fn table_indices(
        &self,
        z: &FeatureMap<i32>,
        height: usize,
        width: usize,
        log_step_q8: i64,
    ) -> Vec<u8> {
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
        let log_scale = x.cropped(height, width);
        log_scale
            .data
            .iter()
            .map(|&s| index_for_log_scale(s as i64 - log_step_q8))
            .collect()
    }
}
