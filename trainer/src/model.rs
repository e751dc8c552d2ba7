//! The learned model as burn modules, built from the codec's [`LearnedArch`] so that training
//! and coding share one architecture definition, and the training-time rate–distortion loss.

use aecodec::coders::pca::{patch_dims, PcaModel};
use aecodec::learned::{
    ArchKind, ConvSpec, LearnedArch, LearnedWeights, MIN_SCALE, SHALLOW_BLOCK, Z_LOG_SCALE,
};
use burn::module::{Module, Param, ParamId};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{PaddingConfig2d, PixelShuffle, PixelShuffleConfig};
use burn::tensor::{Device, Distribution, Tensor, TensorData};

/// One convolution of a [`ConvSpec`], with its optional pixel shuffle.
#[derive(Module, Debug)]
pub struct ConvLayer {
    conv: Conv2d,
    shuffle: Option<PixelShuffle>,
}

impl ConvLayer {
    fn new(spec: &ConvSpec, device: &Device) -> Self {
        let conv = Conv2dConfig::new(
            [spec.in_channels, spec.conv_out()],
            [spec.kernel, spec.kernel],
        )
        .with_stride([spec.stride, spec.stride])
        .with_padding(PaddingConfig2d::Explicit(
            spec.padding(),
            spec.padding(),
            spec.padding(),
            spec.padding(),
        ))
        .init(device);
        let shuffle = (spec.upsample > 1).then(|| PixelShuffleConfig::new(spec.upsample).init());
        Self { conv, shuffle }
    }

    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        match &self.shuffle {
            Some(s) => s.forward(x),
            None => x,
        }
    }
}

/// A chain of layers with ReLU between them (not after the last).
#[derive(Module, Debug)]
pub struct Transform {
    layers: Vec<ConvLayer>,
}

impl Transform {
    fn new(specs: &[ConvSpec], device: &Device) -> Self {
        Self {
            layers: specs.iter().map(|s| ConvLayer::new(s, device)).collect(),
        }
    }

    fn forward(&self, mut x: Tensor<4>) -> Tensor<4> {
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(x);
            if i < last {
                x = burn::tensor::activation::relu(x);
            }
        }
        x
    }
}

/// The whole model: transforms plus the side latent's per-channel prior.
#[derive(Module, Debug)]
pub struct LearnedNet {
    g_a: Transform,
    g_s: Transform,
    h_a: Transform,
    h_s: Transform,
    /// Log of the Laplace scale of each side-latent channel.
    z_log_scale: Param<Tensor<1>>,
    /// A mean-and-scale hyperprior: the hyper-analysis reads `|y|` and `y`.
    means: bool,
}

/// What one forward pass gives the loss.
pub struct ForwardOutput {
    /// Reconstruction, the input's shape.
    pub x_hat: Tensor<4>,
    /// Total bits of `y` and `z` over the batch (under the model's likelihoods).
    pub bits: Tensor<1>,
}

impl LearnedNet {
    pub fn new(arch: &LearnedArch, device: &Device) -> Self {
        let z = usize::from(arch.side_channels);
        Self {
            g_a: Transform::new(&arch.analysis(), device),
            g_s: Transform::new(&arch.synthesis(), device),
            h_a: Transform::new(&arch.hyper_analysis(), device),
            h_s: Transform::new(&arch.hyper_synthesis(), device),
            z_log_scale: Param::from_data(TensorData::new(vec![0.0f32; z], [z]), device),
            means: arch.means,
        }
    }

    /// Training pass: uniform noise stands in for rounding in the likelihoods; the synthesis
    /// sees rounded latents (straight-through), as the decoder will.
    pub fn forward(&self, x: Tensor<4>) -> ForwardOutput {
        let y = self.g_a.forward(x);
        let z = match self.means {
            true => self
                .h_a
                .forward(Tensor::cat(vec![y.clone().abs(), y.clone()], 1)),
            false => self.h_a.forward(y.clone().abs()),
        };
        let device = y.device();
        let z_noisy =
            z.clone() + Tensor::random(z.shape(), Distribution::Uniform(-0.5, 0.5), &device);
        let z_hat = straight_through_round(z);
        let [_, zc, _, _] = z_noisy.dims();
        let z_scale = self
            .z_log_scale
            .val()
            .exp()
            .clamp_min(MIN_SCALE)
            .reshape([1, zc, 1, 1]);
        let z_bits = laplace_bits(z_noisy, z_scale);
        let prior = self.h_s.forward(z_hat);
        let [_, yc, yh, yw] = y.dims();
        let prior = prior.narrow(2, 0, yh).narrow(3, 0, yw);
        let y_scale = prior.clone().narrow(1, 0, yc).exp().clamp_min(MIN_SCALE);
        let y_noisy =
            y.clone() + Tensor::random(y.shape(), Distribution::Uniform(-0.5, 0.5), &device);
        // With means, an element is coded as its difference from its mean. The codec rounds
        // the mean to whole steps; training uses it unrounded: rounding passed straight
        // through would drive every mean whose best value lies within half a step of zero
        // to ±½ (its gradient points the same way until the rounding flips), where it flips
        // between two offsets, one of them wrong (a model trained so coded 20 % more bits
        // with its means than without them).
        let y_centred = match self.means {
            true => y_noisy - prior.narrow(1, yc, yc),
            false => y_noisy,
        };
        let y_bits = laplace_bits(y_centred, y_scale);
        let x_hat = self.g_s.forward(straight_through_round(y));
        ForwardOutput {
            x_hat,
            bits: y_bits.sum() + z_bits.sum(),
        }
    }

    /// The weights, for a model file.
    pub fn weights(&self, arch: &LearnedArch) -> LearnedWeights {
        let mut weights = LearnedWeights::default();
        let groups = [
            (arch.analysis(), &self.g_a),
            (arch.synthesis(), &self.g_s),
            (arch.hyper_analysis(), &self.h_a),
            (arch.hyper_synthesis(), &self.h_s),
        ];
        for (specs, transform) in groups {
            for (spec, layer) in specs.iter().zip(&transform.layers) {
                weights.insert(spec.weight_name(), to_vec(layer.conv.weight.val()));
                let bias = layer.conv.bias.as_ref().expect("layers have a bias");
                weights.insert(spec.bias_name(), to_vec(bias.val()));
            }
        }
        weights.insert(Z_LOG_SCALE.into(), to_vec(self.z_log_scale.val()));
        weights
    }

    /// A network holding `weights` (shapes as `arch` says; checked when they were loaded).
    ///
    /// Parameters are numbered in a fixed order, so the optimizer state saved beside a
    /// checkpoint (keyed by parameter) finds its parameters again when the run resumes.
    pub fn from_weights(arch: &LearnedArch, weights: &LearnedWeights, device: &Device) -> Self {
        let mut net = Self::new(arch, device);
        let mut next_id = 0u64;
        let mut id = || {
            next_id += 1;
            ParamId::from(next_id)
        };
        let groups = [
            (arch.analysis(), &mut net.g_a),
            (arch.synthesis(), &mut net.g_s),
            (arch.hyper_analysis(), &mut net.h_a),
            (arch.hyper_synthesis(), &mut net.h_s),
        ];
        for (specs, transform) in groups {
            for (spec, layer) in specs.iter().zip(transform.layers.iter_mut()) {
                let w = weights.get(&spec.weight_name()).to_vec();
                let shape: [usize; 4] = spec.weight_shape().try_into().expect("4-d weight");
                layer.conv.weight = Param::from_data(TensorData::new(w, shape), device);
                layer.conv.weight.id = id();
                let b = weights.get(&spec.bias_name()).to_vec();
                let n = b.len();
                let mut bias = Param::from_data(TensorData::new(b, [n]), device);
                bias.id = id();
                layer.conv.bias = Some(bias);
            }
        }
        let z = weights.get(Z_LOG_SCALE).to_vec();
        let n = z.len();
        net.z_log_scale = Param::from_data(TensorData::new(z, [n]), device);
        net.z_log_scale.id = id();
        net
    }

    /// A shallow-kind network that starts as the linear autoencoder `pca` (a 16×16 block PCA,
    /// values 0..=255) with latent step `step` code values: the latent is the first
    /// `latent_channels` PCA coefficients divided by `step`, the synthesis their inverse, each
    /// ReLU stage carrying its filters twice, once negated (module docs of the codec's
    /// `learned::arch`). The hyper-synthesis starts by predicting each channel's own scale
    /// (from `variances`, the coefficients' variances) everywhere, a factorized prior that the
    /// hyperprior then learns to adapt.
    pub fn from_pca(
        arch: &LearnedArch,
        pca: &PcaModel,
        variances: &[f64],
        step: f32,
        device: &Device,
    ) -> Result<Self, String> {
        let m = usize::from(arch.latent_channels);
        let a = usize::from(arch.analysis_channels);
        let c = usize::from(arch.synthesis_channels[0]);
        let b = SHALLOW_BLOCK;
        let d = patch_dims(b as u8);
        if arch.kind != ArchKind::Shallow || usize::from(pca.block) != b {
            return Err("a PCA start needs the shallow kind and a 16x16 PCA".into());
        }
        if a != 2 * m || c != 24 || m > usize::from(pca.components) || variances.len() < m {
            return Err(format!(
                "a PCA start needs analysis channels = 2 x latent ({a} vs {m}), 24 synthesis \
                 channels ({c}) and at most {} latent channels",
                pca.components
            ));
        }
        let basis = |k: usize| &pca.basis[k * d..(k + 1) * d];
        let mut w = Self::new(arch, device).weights(arch);
        // g_a.0: patch → ±coefficients / step (input in 0..=1).
        let mut g_a0 = vec![0f32; a * d];
        let mut g_a0_bias = vec![0f32; a];
        for k in 0..m {
            let mean_projection: f32 = basis(k).iter().zip(&pca.mean).map(|(u, v)| u * v).sum();
            for (index, &u) in basis(k).iter().enumerate() {
                // Patch sample `index` is 3·(16·y + x) + colour; the weight is [colour][y][x].
                let (pixel, colour) = (index / 3, index % 3);
                let at = colour * b * b + pixel;
                g_a0[k * d + at] = u * 255.0 / step;
                g_a0[(m + k) * d + at] = -u * 255.0 / step;
            }
            g_a0_bias[k] = -mean_projection / step;
            g_a0_bias[m + k] = mean_projection / step;
        }
        // g_a.1: 3×3, the difference of each pair at the centre tap.
        let mut g_a1 = vec![0f32; m * a * 9];
        for k in 0..m {
            g_a1[(k * a + k) * 9 + 4] = 1.0;
            g_a1[(k * a + m + k) * 9 + 4] = -1.0;
        }
        // g_s.0: 1×1, shuffled by 8 to 24 half-resolution channels: channel colour·4 + s holds
        // the pixels at sub-position s = 2·sy + sx of each 2×2 cell (and 12 + that channel
        // their negation), so that g_s.1's shuffle by 2 puts every pixel back in its place.
        // They hold code values times 1/√255 and g_s.1 scales by 1/√255 again, back to
        // 0..=1: the weights of both layers are then of a like size, and Adam (whose steps are
        // the same size for every weight) moves each layer at a like pace relative to them.
        let split = 255f32.sqrt().recip();
        let half = b / 2;
        let mut g_s0 = vec![0f32; c * half * half * m];
        let mut g_s0_bias = vec![0f32; c * half * half];
        for channel in 0..12 {
            let (colour, sy, sx) = (channel / 4, (channel % 4) / 2, channel % 2);
            for i in 0..half {
                for j in 0..half {
                    let index = 3 * (b * (2 * i + sy) + 2 * j + sx) + colour;
                    let out = channel * half * half + i * half + j;
                    let neg = (12 + channel) * half * half + i * half + j;
                    for k in 0..m {
                        let v = basis(k)[index] * step * split;
                        g_s0[out * m + k] = v;
                        g_s0[neg * m + k] = -v;
                    }
                    g_s0_bias[out] = pca.mean[index] * split;
                    g_s0_bias[neg] = -pca.mean[index] * split;
                }
            }
        }
        // g_s.1: 5×5 from 24 to 12, the difference of each pair at the centre tap.
        let mut g_s1 = vec![0f32; 12 * c * 25];
        for o in 0..12 {
            g_s1[(o * c + o) * 25 + 12] = split;
            g_s1[(o * c + 12 + o) * 25 + 12] = -split;
        }
        let [ga0, ga1] = [&arch.analysis()[0], &arch.analysis()[1]].map(|l| l.name.clone());
        let [gs0, gs1] = [&arch.synthesis()[0], &arch.synthesis()[1]].map(|l| l.name.clone());
        w.insert(format!("{ga0}.weight"), g_a0);
        w.insert(format!("{ga0}.bias"), g_a0_bias);
        w.insert(format!("{ga1}.weight"), g_a1);
        w.insert(format!("{ga1}.bias"), vec![0.0; m]);
        w.insert(format!("{gs0}.weight"), g_s0);
        w.insert(format!("{gs0}.bias"), g_s0_bias);
        w.insert(format!("{gs1}.weight"), g_s1);
        w.insert(format!("{gs1}.bias"), vec![0.0; 12]);
        // The log-scale layer: each channel's Laplace scale (mean |y| = σ/√2) as its bias,
        // its weights quietened so that the side latent starts as a small correction.
        let log_scale = arch.log_scale_layer();
        let mut ws = w.get(&log_scale.weight_name()).to_vec();
        ws.iter_mut().for_each(|v| *v *= 0.1);
        w.insert(log_scale.weight_name(), ws);
        let mut bias: Vec<f32> = variances[..m]
            .iter()
            .map(|&var| ((var / 2.0).sqrt() as f32 / step).max(0.2).ln())
            .collect();
        if arch.means {
            bias.resize(2 * m, 0.0);
        }
        w.insert(log_scale.bias_name(), bias);
        start_means_at_zero(arch, &mut w, m);
        Ok(Self::from_weights(arch, &w, device))
    }

    /// A network of `arch` that starts as the smaller trained model (`from`, `weights`) embedded
    /// in it: every trained weight keeps its place, the added channels start from the fresh
    /// initialization, and the weights reading any added channel start at a tenth of it, so
    /// the widened network begins close to what the trained one did (exactly, were the
    /// added channels zero) and training can grow the new channels from there.
    ///
    /// Pixel shuffles take output channel `c` from conv outputs `c·r²..(c+1)·r²`, so a prefix
    /// of the conv outputs is a prefix of the shuffled channels and embedding by prefix keeps
    /// every trained filter in its place.
    pub fn widened_from(
        arch: &LearnedArch,
        from: &LearnedArch,
        weights: &LearnedWeights,
        device: &Device,
    ) -> Result<Self, String> {
        if !from.fits_in(arch) {
            return Err(format!(
                "a model of {from:?} cannot be widened to {arch:?}: every channel count must stay or grow"
            ));
        }
        if from.means && from.latent_channels != arch.latent_channels {
            // Its last hyper-synthesis layer holds the means after the scales: a prefix
            // embedding would put them in the added scales' place.
            return Err("a model with means keeps its latent width".into());
        }
        let fresh = Self::new(arch, device).weights(arch);
        let mut widened = LearnedWeights::default();
        let old_shapes: std::collections::BTreeMap<_, _> =
            LearnedWeights::expected_shapes(from).into_iter().collect();
        for (name, shape) in LearnedWeights::expected_shapes(arch) {
            let mut values = fresh.get(&name).to_vec();
            let old_shape = &old_shapes[&name];
            if shape.len() == 4 {
                scale_inputs_from(&mut values, &shape, old_shape[1], 0.1);
            }
            if from.latent_channels < arch.latent_channels {
                start_added_latents_quiet(arch, &name, &mut values, &shape, old_shape[0]);
            }
            embed(&mut values, &shape, weights.get(&name), old_shape);
            widened.insert(name, values);
        }
        if arch.means && !from.means {
            start_means_at_zero(arch, &mut widened, usize::from(arch.latent_channels));
        }
        Ok(Self::from_weights(arch, &widened, device))
    }

    /// The same network with the analysis and synthesis transforms frozen (no gradients):
    /// only the hyperprior trains.
    pub fn hyperprior_only(mut self) -> Self {
        self.g_a = self.g_a.no_grad();
        self.g_s = self.g_s.no_grad();
        self
    }

    /// Inference helpers for tests: the synthesis of a latent.
    pub fn synthesize(&self, y_hat: Tensor<4>) -> Tensor<4> {
        self.g_s.forward(y_hat)
    }

    /// The analysis of a frame.
    pub fn analyze(&self, x: Tensor<4>) -> Tensor<4> {
        self.g_a.forward(x)
    }
}

/// Added latent channels start near zero and predicted as such (a small Laplace scale), so
/// that they cost few bits until training finds a use for them: otherwise a freshly
/// initialized hyper-synthesis predicts scale 1 and the widened model starts at twice the
/// rate. Acts on outputs `first..` of the layers that make the latent and its log-scales.
fn start_added_latents_quiet(
    arch: &LearnedArch,
    name: &str,
    values: &mut [f32],
    shape: &[usize],
    first: usize,
) {
    let per_output: usize = shape[1..].iter().product();
    let added = &mut values[first * per_output..];
    let (latent, log_scale) = (arch.latent_layer(), arch.log_scale_layer());
    if name == latent.weight_name() || name == log_scale.weight_name() {
        added.iter_mut().for_each(|v| *v *= 0.1);
    } else if name == log_scale.bias_name() {
        // Above MIN_SCALE, where the clamp would stop the gradient.
        added.fill(0.2f32.ln());
    }
}

/// Means added to a model start at zero everywhere (weights and bias of the outputs from
/// `latent` on of the last hyper-synthesis layer, and the hyper-analysis's weights on the
/// signed latent, its inputs from `latent` on), so the model begins coding exactly as the
/// scale-only one did and training moves them from there.
fn start_means_at_zero(arch: &LearnedArch, weights: &mut LearnedWeights, latent: usize) {
    if !arch.means {
        return;
    }
    let layer = arch.log_scale_layer();
    let per_output: usize = layer.weight_shape()[1..].iter().product();
    let mut w = weights.get(&layer.weight_name()).to_vec();
    w[latent * per_output..].fill(0.0);
    weights.insert(layer.weight_name(), w);
    let mut b = weights.get(&layer.bias_name()).to_vec();
    b[latent..].fill(0.0);
    weights.insert(layer.bias_name(), b);
    // The hyper-analysis's weights on the signed latent, likewise.
    let first = &arch.hyper_analysis()[0];
    let mut w = weights.get(&first.weight_name()).to_vec();
    scale_inputs_from(&mut w, &first.weight_shape(), latent, 0.0);
    weights.insert(first.weight_name(), w);
}

/// Multiplies the weights of input channels `first..` of a conv weight `[out, in, k, k]`.
fn scale_inputs_from(values: &mut [f32], shape: &[usize], first: usize, factor: f32) {
    let (inputs, kernel) = (shape[1], shape[2] * shape[3]);
    for (index, v) in values.iter_mut().enumerate() {
        if (index / kernel) % inputs >= first {
            *v *= factor;
        }
    }
}

/// Copies `old` (shape `old_shape`) into the leading corner of `values` (shape `shape`, no
/// smaller in any dimension): a bias or scale vector, or a conv weight `[out, in, k, k]`.
fn embed(values: &mut [f32], shape: &[usize], old: &[f32], old_shape: &[usize]) {
    if shape.len() == 1 {
        values[..old.len()].copy_from_slice(old);
        return;
    }
    let kernel: usize = shape[2..].iter().product();
    let (row, old_row) = (shape[1] * kernel, old_shape[1] * kernel);
    for o in 0..old_shape[0] {
        values[o * row..o * row + old_row].copy_from_slice(&old[o * old_row..(o + 1) * old_row]);
    }
}

/// Rounds in the forward pass, passes gradients straight through.
fn straight_through_round(x: Tensor<4>) -> Tensor<4> {
    x.clone() + (x.clone().round() - x).detach()
}

/// Bits of each element of `v` under a zero-mean Laplace with mean absolute value `scale`,
/// integrated over the unit bin around it.
fn laplace_bits(v: Tensor<4>, scale: Tensor<4>) -> Tensor<4> {
    // Evaluate on the negative side, where the CDF is 0.5·exp(x / b) and exact.
    let m = v.abs().neg();
    let upper = laplace_cdf(m.clone().add_scalar(0.5), scale.clone());
    let lower = laplace_cdf(m.sub_scalar(0.5), scale);
    let p = (upper - lower).clamp_min(1e-9);
    p.log().mul_scalar(-std::f32::consts::LOG2_E)
}

fn laplace_cdf(x: Tensor<4>, scale: Tensor<4>) -> Tensor<4> {
    // 0.5 + 0.5·sign(x)·(1 − exp(−|x| / b))
    let tail = (x.clone().abs().neg() / scale).exp();
    (tail.neg().add_scalar(1.0) * x.sign())
        .mul_scalar(0.5)
        .add_scalar(0.5)
}

fn to_vec<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .as_slice::<f32>()
        .expect("f32 tensor")
        .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use aecodec::entropy::{scale_of, ScaleBank, SCALES};

    /// The rate the model is trained for is the rate the codec pays: for bank tables of
    /// scale 0.5 to 16 (where most latents live), the bits the training likelihood gives
    /// values drawn from a table's own distribution are within 3.5 % of the bits that table
    /// spends on them (measured: 3.2 % at 0.57, under 1 % from 0.9 to 8, 1.4 % at 15). A slip
    /// in units (nats, a scale that is not the mean absolute value) would be off by 30 % or
    /// more. Below 0.5 both are a fraction of a bit (the bank is a discrete Laplace, the
    /// training a binned continuous one: 0.45 against 0.53 bits at 0.3); above 16 the bank's
    /// 12-bit tables spend up to 6.5 % fewer bits than the training assumes (at 57).
    #[test]
    fn training_bits_match_the_codecs_tables() {
        let device = Device::flex();
        let bank = ScaleBank::get();
        let tables = (0..SCALES).filter(|&j| (0.5..=16.0).contains(&scale_of(j)));
        for j in tables {
            let scale = scale_of(j);
            let radius = (30.0 * scale).ceil() as i32 + 8;
            let values: Vec<i32> = (-radius..=radius).collect();
            let codec_bits: Vec<f64> = values.iter().map(|&v| bank.bits(j as u8, v)).collect();
            let n = values.len();
            let v = Tensor::<4>::from_data(
                TensorData::new(values.iter().map(|&v| v as f32).collect(), [1, 1, 1, n]),
                &device,
            );
            let s = Tensor::<4>::from_data(
                TensorData::new(vec![scale as f32; n], [1, 1, 1, n]),
                &device,
            );
            let train_bits = to_vec(laplace_bits(v, s));
            let (mut codec, mut train) = (0.0, 0.0);
            for (c, t) in codec_bits.iter().zip(&train_bits) {
                let p = 2f64.powf(-c);
                codec += p * c;
                train += p * f64::from(*t);
            }
            assert!(
                (train - codec).abs() <= 0.035 * codec,
                "table {j} (scale {scale:.2}): training {train:.3} bits, codec {codec:.3}"
            );
        }
    }
}
