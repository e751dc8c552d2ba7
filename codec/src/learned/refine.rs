//! Encoder-side latent refinement (`aecodec encode --effort N`): the analysis transform
//! guesses a latent in one pass; a few steps of gradient descent on that latent, against the
//! frame's own rate and distortion, find one the synthesis turns into a better picture for
//! fewer bits. The decoder is unchanged: it reads whatever latent the encoder chose.
//!
//! The loss is `weight · Σ (x̂ − x)² + bits`, with `x̂` the synthesis of the latent (clamped
//! to 0..=1 as the decoder's output is) and `bits` the information content of each element
//! under the Laplace table its hyperprior index names, as a smooth function of the unrounded
//! element (the probability of the unit interval around it). The hyperprior's side latent
//! and tables stay as the analysis made them; the encoder's rounding and channel context run
//! afterwards, as for any latent. The gradient of the distortion flows back through the
//! synthesis with the same convolution kernels as inference: a stride-1 convolution's
//! gradient is the convolution with its kernel flipped and its channels transposed, a pixel
//! shuffle's is the inverse shuffle, a ReLU's is its mask.

use super::context::ChannelContext;
use super::conv::{ConvKernel, FeatureMap};
use super::{ConvSpec, LatentPrior, LatentShape, LearnedModel};
use crate::entropy::scale_of;

/// How hard the refinement works.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RefineParams {
    /// Gradient steps.
    pub iterations: usize,
    /// Squared error (0..=1 units, summed over samples) that one bit is worth.
    pub weight: f64,
    /// Adam's first step size, in units of the latent step; it falls linearly to a tenth.
    pub learning_rate: f32,
}

impl RefineParams {
    /// `iterations` steps for a model trained at `lambda` (loss `lambda · 255² · MSE + bpp`)
    /// coding at latent step `step`: at the trained step one bit is worth what it was in
    /// training, times [`DISTORTION_EMPHASIS`]; a coarser step moves along the rate–distortion
    /// curve, where squared error grows as the step's square, so the weight falls as
    /// `1 / step²`.
    pub fn for_model(iterations: usize, lambda: f64, step: f32) -> Self {
        let per_sample = lambda * 255.0 * 255.0 / 3.0;
        Self {
            iterations,
            weight: DISTORTION_EMPHASIS * per_sample / f64::from(step * step),
            learning_rate: LEARNING_RATE,
        }
    }
}

/// Squared error (0..=1 units, summed over samples) that one bit is worth where the
/// encoder chooses between the refined latent and the analysis's, for a model trained at
/// `lambda` coding at latent step `step`: the slope of the learned picture's own
/// rate–distortion curve there, [`CURVE_SLOPE`] times the training trade scaled by `1 /
/// step²`.
pub fn choice_weight(lambda: f64, step: f32) -> f64 {
    CURVE_SLOPE * lambda * 255.0 * 255.0 / 3.0 / f64::from(step * step)
}

/// The learned picture's rate–distortion slope as a share of the training trade at the same
/// step, measured between neighbouring latent steps of the levels' model: `bikes` 0.55 at
/// steps 1–1.4 and 0.71 at 4–5.6, `ukui-wallpapers` 0.78 at 1–1.4.
pub const CURVE_SLOPE: f64 = 0.6;

/// How much more squared error weighs than in training. The rounding that follows the
/// refinement adds error the loss cannot see, so the loss leans towards quality. BD-rate of
/// the learned picture alone against no refinement (`aecodec eval … --codecs learned
/// --detail-steps 0 --latent-steps 0.7,…,16`, one frame each of `bikes` and
/// `ukui-wallpapers`, 20 steps, the encoder choosing by real cost, the rate priced with the
/// channel context): emphasis 1: −3.3 / −8.2 %; 1.2: −3.5 / −8.8 %; 1.5: −3.7 / −8.8 %; 2:
/// −2.5 / −9.0 %; 3: −1.5 / −7.9 %.
pub const DISTORTION_EMPHASIS: f64 = 1.5;

/// Adam's first step, in latent steps (same measurement, emphasis 1.5: 0.1: −3.1 / −8.3 %;
/// 0.15: −3.7 / −8.8 %; at emphasis 2, 0.3: −1.0 / −8.2 %).
pub const LEARNING_RATE: f32 = 0.15;

/// The synthesis's layers with what their gradients need.
pub struct SynthesisGradient<'a> {
    layers: &'a [ConvKernel<f32>],
    /// Per layer: the kernel that maps the gradient of its convolution's output to the
    /// gradient of its input.
    transposed: Vec<ConvKernel<f32>>,
}

impl<'a> SynthesisGradient<'a> {
    /// The gradient kernels of a chain of stride-1 "same" convolutions (each optionally
    /// pixel-shuffled), or `None` where a layer is of another kind.
    pub fn new(layers: &'a [ConvKernel<f32>]) -> Option<Self> {
        let transposed = layers
            .iter()
            .map(transposed_kernel)
            .collect::<Option<Vec<_>>>()?;
        Some(Self { layers, transposed })
    }

    /// The synthesis of `input`, with every layer's output kept for the gradient.
    fn forward(&self, input: FeatureMap<f32>) -> Vec<FeatureMap<f32>> {
        let mut outputs = vec![input];
        for (i, layer) in self.layers.iter().enumerate() {
            let relu = i + 1 < self.layers.len();
            let next = layer.forward(outputs.last().expect("the input is there"), relu);
            outputs.push(next);
        }
        outputs
    }

    /// The gradient with respect to the synthesis's input, given the gradient with respect to
    /// its output and the outputs [`Self::forward`] kept.
    fn backward(&self, outputs: &[FeatureMap<f32>], mut grad: FeatureMap<f32>) -> FeatureMap<f32> {
        for (i, (layer, back)) in self.layers.iter().zip(&self.transposed).enumerate().rev() {
            if i + 1 < self.layers.len() {
                for (g, &o) in grad.data.iter_mut().zip(&outputs[i + 1].data) {
                    if o <= 0.0 {
                        *g = 0.0;
                    }
                }
            }
            let unshuffled = pixel_unshuffle(&grad, layer.spec.upsample.max(1));
            grad = back.forward(&unshuffled, false);
        }
        grad
    }
}

/// The kernel of a stride-1 "same" convolution's input gradient: the weights flipped in
/// space, input and output channels swapped, no bias.
fn transposed_kernel(layer: &ConvKernel<f32>) -> Option<ConvKernel<f32>> {
    let s = &layer.spec;
    if s.stride != 1 || s.kernel.is_multiple_of(2) || s.padding() != s.kernel / 2 {
        return None;
    }
    let (k, cin, cout) = (s.kernel, s.in_channels, s.conv_out());
    let mut weight = vec![0.0; layer.weight.len()];
    for co in 0..cout {
        for ci in 0..cin {
            for ky in 0..k {
                for kx in 0..k {
                    let from = ((co * cin + ci) * k + ky) * k + kx;
                    let to = ((ci * cout + co) * k + (k - 1 - ky)) * k + (k - 1 - kx);
                    weight[to] = layer.weight[from];
                }
            }
        }
    }
    let spec = ConvSpec {
        name: format!("{}.grad", s.name),
        in_channels: cout,
        out_channels: cin,
        kernel: k,
        stride: 1,
        upsample: 1,
    };
    Some(ConvKernel {
        spec,
        weight,
        bias: vec![0.0; cin],
    })
}

/// `[c, h·r, w·r]` to `[c·r², h, w]`: the inverse of the synthesis's pixel shuffle
/// (PyTorch's channel order).
fn pixel_unshuffle(map: &FeatureMap<f32>, r: usize) -> FeatureMap<f32> {
    if r == 1 {
        return map.clone();
    }
    let (c, h, w) = (map.channels, map.height / r, map.width / r);
    let mut out = FeatureMap::zeros(c * r * r, h, w);
    for ch in 0..c {
        for i in 0..r {
            for j in 0..r {
                let dst = &mut out.data[((ch * r + i) * r + j) * h * w..][..h * w];
                for y in 0..h {
                    let src = &map.data[(ch * h * r + y * r + i) * w * r..][..w * r];
                    for x in 0..w {
                        dst[y * w + x] = src[x * r + j];
                    }
                }
            }
        }
    }
    out
}

/// Bits of an element at `u` (unrounded) under a zero-mean Laplace of scale `b`, as the
/// probability of the unit interval around it, and their derivative in `u`.
fn laplace_bits(u: f32, b: f32) -> (f32, f32) {
    let a = u.abs();
    let ln2 = std::f32::consts::LN_2;
    if a >= 0.5 {
        // p = ½·e^{−(a−½)/b}·(1 − e^{−1/b}): linear in a.
        let p0 = 0.5 * (1.0 - (-1.0 / b).exp());
        let bits = (a - 0.5) / (b * ln2) - p0.log2();
        (bits, u.signum() / (b * ln2))
    } else {
        let (lo, hi) = ((-(0.5 - u) / b).exp(), (-(0.5 + u) / b).exp());
        let p = (1.0 - 0.5 * lo - 0.5 * hi).max(1e-9);
        let dp = 0.5 * (hi - lo) / b;
        (-p.log2(), -dp / (p * ln2))
    }
}

/// How the refinement prices the latent's bits: each element's Laplace scale (its
/// hyperprior table, moved by its channel's [context](super::context) shift) and, per channel,
/// whether the elements are coded as their differences from their neighbours' prediction
/// (the median edge detector, here on unrounded values).
pub struct LatentRate {
    scales: Vec<f32>,
    /// Each element's mean (in steps), none for a scale-only hyperprior.
    means: Vec<f32>,
    predicted: Vec<bool>,
    shape: LatentShape,
}

impl LatentRate {
    /// The rate of a latent of `shape` coded under `prior` as `context` says.
    pub fn new(prior: &LatentPrior, context: &ChannelContext, shape: LatentShape) -> Self {
        let plane = shape.plane();
        let scales = prior
            .tables
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                let table = ChannelContext::table(context.coding(i / plane), t);
                scale_of(usize::from(table)) as f32
            })
            .collect();
        let predicted = (0..shape.channels)
            .map(|c| context.coding(c).predicted)
            .collect();
        Self {
            scales,
            means: prior.offsets.iter().map(|&m| m as f32).collect(),
            predicted,
            shape,
        }
    }

    /// The bits of `u`; adds their gradient to `grad`.
    fn bits(&self, u: &[f32], grad: &mut [f32]) -> f64 {
        // Values are coded as their differences from their means (a constant shift: the
        // gradient is the same).
        let centred: Vec<f32>;
        let u = match self.means.is_empty() {
            true => u,
            false => {
                centred = u.iter().zip(&self.means).map(|(v, m)| v - m).collect();
                &centred
            }
        };
        let (plane, width) = (self.shape.plane(), self.shape.width);
        let mut bits = 0.0f64;
        for (c, &predicted) in self.predicted.iter().enumerate() {
            let at = c * plane;
            let values = &u[at..at + plane];
            for k in 0..plane {
                let (i, j) = (k / width, k % width);
                let (prediction, parts) = match predicted {
                    true => predict_unrounded(values, width, i, j),
                    false => (0.0, [(0, 0.0); 3]),
                };
                let (r, dr) = laplace_bits(values[k] - prediction, self.scales[at + k]);
                bits += f64::from(r);
                grad[at + k] += dr;
                for (neighbour, d) in parts {
                    grad[at + neighbour] -= dr * d;
                }
            }
        }
        bits
    }
}

/// [`super::context::predict`] on unrounded values: the prediction and, for up to three
/// neighbours (index in the plane), its derivative in each.
fn predict_unrounded(plane: &[f32], width: usize, i: usize, j: usize) -> (f32, [(usize, f32); 3]) {
    let one = |k: usize| (plane[k], [(k, 1.0), (0, 0.0), (0, 0.0)]);
    match (i, j) {
        (0, 0) => (0.0, [(0, 0.0); 3]),
        (0, _) => one(j - 1),
        (_, 0) => one((i - 1) * width),
        _ => {
            let (left, up) = (i * width + j - 1, (i - 1) * width + j);
            let up_left = up - 1;
            let (a, b, c) = (plane[left], plane[up], plane[up_left]);
            if c >= a.max(b) {
                one(if a <= b { left } else { up })
            } else if c <= a.min(b) {
                one(if a >= b { left } else { up })
            } else {
                (a + b - c, [(left, 1.0), (up, 1.0), (up_left, -1.0)])
            }
        }
    }
}

/// The loss [`refine`] descends, and its gradient in the latent (step units).
struct Loss {
    value: f64,
    gradient: Vec<f32>,
}

/// Evaluates the loss at `u` (the latent in units of `step`).
fn loss(
    synthesis: &SynthesisGradient<'_>,
    target: &FeatureMap<f32>,
    u: &FeatureMap<f32>,
    step: f32,
    rate: &LatentRate,
    weight: f64,
) -> Loss {
    let input = FeatureMap {
        data: u.data.iter().map(|&v| v * step).collect(),
        ..*u
    };
    let outputs = synthesis.forward(input);
    let out = outputs.last().expect("the synthesis has layers");
    let mut distortion = 0.0f64;
    let mut grad = FeatureMap::zeros(out.channels, out.height, out.width);
    let w2 = (2.0 * weight) as f32;
    for ((g, &o), &t) in grad.data.iter_mut().zip(&out.data).zip(&target.data) {
        let e = o.clamp(0.0, 1.0) - t;
        distortion += f64::from(e * e);
        if (0.0..=1.0).contains(&o) {
            *g = w2 * e;
        }
    }
    let back = synthesis.backward(&outputs, grad);
    let mut gradient: Vec<f32> = back.data.iter().map(|&g| g * step).collect();
    let bits = rate.bits(&u.data, &mut gradient);
    Loss {
        value: weight * distortion + bits,
        gradient,
    }
}

/// Refines `u`, a latent in units of `step` whose bits `rate` prices, towards a lower rate
/// plus `params.weight` times the squared error of its synthesis against `target` (the frame,
/// planar, 0..=1); `false` (and `u` as it was) where the synthesis has no gradient.
pub fn refine(
    model: &LearnedModel,
    target: &FeatureMap<f32>,
    u: &mut FeatureMap<f32>,
    step: f32,
    rate: &LatentRate,
    params: RefineParams,
) -> bool {
    let Some(synthesis) = SynthesisGradient::new(model.synthesis_layers()) else {
        return false;
    };
    let (beta1, beta2, eps) = (0.9f32, 0.999f32, 1e-8f32);
    let mut m = vec![0.0f32; u.data.len()];
    let mut v = vec![0.0f32; u.data.len()];
    let mut best = u.clone();
    let mut best_value = f64::INFINITY;
    for t in 0..params.iterations {
        let l = loss(&synthesis, target, u, step, rate, params.weight);
        if l.value < best_value {
            best_value = l.value;
            best.data.copy_from_slice(&u.data);
        }
        let progress = t as f32 / params.iterations as f32;
        let lr = params.learning_rate * (1.0 - 0.9 * progress);
        let (c1, c2) = (
            1.0 - beta1.powi(t as i32 + 1),
            1.0 - beta2.powi(t as i32 + 1),
        );
        for (((x, &g), m), v) in u.data.iter_mut().zip(&l.gradient).zip(&mut m).zip(&mut v) {
            *m = beta1 * *m + (1.0 - beta1) * g;
            *v = beta2 * *v + (1.0 - beta2) * g * g;
            *x -= lr * (*m / c1) / ((*v / c2).sqrt() + eps);
        }
    }
    let last = loss(&synthesis, target, u, step, rate, params.weight).value;
    if last >= best_value {
        *u = best;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::coder::tests::random_model_of;
    use crate::learned::LearnedArch;

    fn pseudo_random(n: usize, seed: u64, scale: f32) -> Vec<f32> {
        let mut state = seed;
        (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
            })
            .collect()
    }

    /// The analytic gradient matches finite differences of the loss, for both layouts (within
    /// 5 %: the ReLUs and the output clamp have kinks a difference may straddle).
    #[test]
    fn the_gradient_matches_finite_differences() {
        let mut small = LearnedArch::SHALLOW;
        small.analysis_channels = 16;
        small.latent_channels = 8;
        small.hyper_channels = 8;
        small.side_channels = 4;
        let mut pixel = LearnedArch::DEFAULT;
        pixel.analysis_channels = 8;
        pixel.latent_channels = 6;
        pixel.synthesis_channels = [8, 6, 4];
        pixel.hyper_channels = 4;
        pixel.side_channels = 2;
        for arch in [small, pixel] {
            let model = random_model_of(arch);
            let synthesis = SynthesisGradient::new(model.synthesis_layers()).unwrap();
            let (h, w) = (2, 3);
            let c = usize::from(arch.latent_channels);
            let u = FeatureMap {
                channels: c,
                height: h,
                width: w,
                data: pseudo_random(c * h * w, 7, 6.0),
            };
            let target = FeatureMap {
                channels: 3,
                height: h * 16,
                width: w * 16,
                data: pseudo_random(3 * h * w * 256, 9, 1.0)
                    .into_iter()
                    .map(|v| v + 0.5)
                    .collect(),
            };
            // Every other channel coded as differences from its neighbours' prediction, every
            // element around a mean.
            let rate = LatentRate {
                scales: pseudo_random(c * h * w, 11, 2.0)
                    .into_iter()
                    .map(|v| v.abs() + 0.3)
                    .collect(),
                means: pseudo_random(c * h * w, 13, 3.0)
                    .into_iter()
                    .map(f32::round)
                    .collect(),
                predicted: (0..c).map(|k| k % 2 == 1).collect(),
                shape: LatentShape {
                    channels: c,
                    height: h,
                    width: w,
                },
            };
            let (step, weight) = (0.7, 40.0);
            let at = |u: &FeatureMap<f32>| loss(&synthesis, &target, u, step, &rate, weight);
            let base = at(&u);
            for i in [0, 5, h * w + 4, c * h * w / 2, c * h * w - 1] {
                let eps = 1e-3;
                let mut plus = u.clone();
                plus.data[i] += eps;
                let mut minus = u.clone();
                minus.data[i] -= eps;
                let numeric = (at(&plus).value - at(&minus).value) / (2.0 * f64::from(eps));
                let analytic = f64::from(base.gradient[i]);
                assert!(
                    (numeric - analytic).abs() <= 0.05 * numeric.abs().max(1.0),
                    "{:?} element {i}: numeric {numeric}, analytic {analytic}",
                    arch.kind
                );
            }
        }
    }

    #[test]
    fn laplace_bits_are_continuous_and_their_slope_matches() {
        for b in [0.2f32, 1.0, 5.0] {
            for u in [-3.0f32, -0.6, -0.5, -0.2, 0.0, 0.3, 0.5, 0.7, 2.5] {
                let (r, dr) = laplace_bits(u, b);
                let h = 1e-3;
                let numeric = (laplace_bits(u + h, b).0 - laplace_bits(u - h, b).0) / (2.0 * h);
                assert!((numeric - dr).abs() < 0.02 * dr.abs().max(1.0), "{u} {b}");
                assert!(r > 0.0);
            }
        }
    }

    #[test]
    fn unshuffle_inverts_the_shuffle() {
        let map = FeatureMap {
            channels: 8,
            height: 2,
            width: 3,
            data: pseudo_random(48, 3, 1.0),
        };
        let shuffled = crate::learned::conv::tests::pixel_shuffle(&map, 2);
        assert_eq!(
            (shuffled.channels, shuffled.height, shuffled.width),
            (2, 4, 6)
        );
        assert_eq!(pixel_unshuffle(&shuffled, 2), map);
    }
}
