//! The learned model's architecture: one definition, read by the trainer (which builds burn
//! modules from it) and by the codec (which runs its own inference kernels on it).
//!
//! A frame `x` (RGB in 0..=1) goes through four transforms, as in Ballé et al. 2018:
//!
//! * analysis `g_a`: four 5×5 stride-2 convolutions to the latent `y` at 1/16 resolution;
//! * hyper-analysis `h_a`: from `|y|` to the side latent `z` at 1/64 resolution;
//! * hyper-synthesis `h_s`: from the rounded `ẑ` back to one log-scale per element of `y`,
//!   which picks a Laplace table from the [scale bank](crate::entropy::ScaleBank);
//! * synthesis `g_s`: from the rounded `ŷ` to the frame, with 3×3 convolutions and pixel
//!   shuffles (cheap to decode: no transposed convolutions, few channels at full resolution).
//!
//! Every convolution is "same" padded (zeros) and, after upsampling, cropped to the size of
//! the tensor it mirrors, so any coded size that is a multiple of 16 works.
//!
//! Two kinds of model share the hyperprior and differ in `g_a` and `g_s` ([`ArchKind`]):
//! the pixel-shuffle kind above, and the *shallow* kind, a wide latent with a two-layer
//! synthesis in the spirit of Yang & Mandt 2023:
//!
//! * `g_a`: a 16×16 stride-16 convolution (one patch per latent position), ReLU, then a 3×3
//!   convolution to the latent, so every latent element sees its neighbours' patches;
//! * `g_s`: a 1×1 convolution whose outputs are pixel-shuffled by 8 to a few channels at half
//!   resolution (a 16×16 block transform), ReLU, then a 5×5 convolution shuffled by 2 to RGB,
//!   which blends neighbouring blocks.
//!
//! Both chains are ReLU networks that can start as an exact linear transform: each layer
//! before a ReLU carries every filter twice, once negated, and the layer after it takes their
//! difference (`relu(v) − relu(−v) = v`). The trainer starts the shallow kind that way from
//! the closed-form PCA of its training patches (the linear autoencoder), so training refines a
//! transform that already codes, instead of discovering one.

use serde::{Deserialize, Serialize};

/// Which layer layout the analysis and synthesis transforms have (module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ArchKind {
    /// Four 5×5 stride-2 analysis layers; four 3×3 + pixel-shuffle synthesis layers.
    #[default]
    PixelShuffle,
    /// A patch analysis and a two-layer synthesis around a wide latent.
    Shallow,
}

impl ArchKind {
    fn is_pixel_shuffle(&self) -> bool {
        *self == ArchKind::PixelShuffle
    }
}

/// Most channels one layer of a model file may have.
pub const MAX_CHANNELS: u16 = 1024;

/// Why a model file's layer layout is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArchError {
    #[error("channel counts {0:?} outside 1..={MAX_CHANNELS}")]
    Channels(Vec<u16>),
    #[error("the shallow kind has one synthesis width")]
    ShallowSynthesis,
}

/// Sizes of the transforms. The tensor names and shapes follow from these alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LearnedArch {
    /// The layer layout. Files of the pixel-shuffle kind do not name it, so their bytes (and
    /// ids) are what they were before the shallow kind existed.
    #[serde(default, skip_serializing_if = "ArchKind::is_pixel_shuffle")]
    pub kind: ArchKind,
    /// Channels inside the analysis transform.
    pub analysis_channels: u16,
    /// Channels of the latent `y`.
    pub latent_channels: u16,
    /// Channels inside the synthesis transform, from the latent's resolution up:
    /// at 1/8, 1/4 and 1/2 resolution (pixel-shuffle kind); the shallow kind has only the
    /// first, its channels at 1/2 resolution, and the other two are 0.
    pub synthesis_channels: [u16; 3],
    /// Channels inside the hyper transforms.
    pub hyper_channels: u16,
    /// Channels of the side latent `z`.
    pub side_channels: u16,
    /// Whether the hyper-synthesis also predicts each latent element's mean (Minnen et al.
    /// 2018's mean-and-scale hyperprior): its last layer then has twice the latent's
    /// channels, the log-scales first, and the hyper-analysis reads the latent's signs too.
    /// Files without means do not name it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub means: bool,
}

fn is_false(v: &bool) -> bool {
    !v
}

impl LearnedArch {
    /// The architecture of the default models (trained at 64 latent channels, then widened;
    /// `samples/models/README.md`).
    pub const DEFAULT: LearnedArch = LearnedArch {
        kind: ArchKind::PixelShuffle,
        analysis_channels: 64,
        latent_channels: 128,
        synthesis_channels: [64, 32, 16],
        hyper_channels: 32,
        side_channels: 32,
        means: false,
    };

    /// The shallow kind's default sizes: 320 latent values per 16×16 block (CompressAI's
    /// high-rate width), 24 channels at half resolution (12 and their negations, see the
    /// module docs), a hyperprior of 64 channels.
    pub const SHALLOW: LearnedArch = LearnedArch {
        kind: ArchKind::Shallow,
        analysis_channels: 640,
        latent_channels: 320,
        synthesis_channels: [24, 0, 0],
        hyper_channels: 64,
        side_channels: 32,
        means: false,
    };

    /// Every channel count the kind uses, in declaration order.
    fn channel_counts(&self) -> Vec<u16> {
        let synthesis = match self.kind {
            ArchKind::PixelShuffle => &self.synthesis_channels[..],
            ArchKind::Shallow => &self.synthesis_channels[..1],
        };
        let mut all = vec![self.analysis_channels, self.latent_channels];
        all.extend_from_slice(synthesis);
        all.extend([self.hyper_channels, self.side_channels]);
        all
    }

    /// Whether a model of this architecture fits inside `wider` channel for channel, so
    /// that its weights can start a model of `wider` (see the trainer's widening); means
    /// may be added, not taken away.
    pub fn fits_in(&self, wider: &LearnedArch) -> bool {
        self.kind == wider.kind
            && (wider.means || !self.means)
            && self
                .channel_counts()
                .iter()
                .zip(wider.channel_counts())
                .all(|(&narrow, wide)| narrow <= wide)
    }

    /// Refuses sizes a model file could use to make the decoder allocate without bound.
    pub fn check(&self) -> Result<(), ArchError> {
        let all = self.channel_counts();
        if all.iter().any(|&c| c == 0 || c > MAX_CHANNELS) {
            return Err(ArchError::Channels(all));
        }
        if self.kind == ArchKind::Shallow && self.synthesis_channels[1..] != [0, 0] {
            return Err(ArchError::ShallowSynthesis);
        }
        Ok(())
    }

    /// The layer that makes the latent `y` (the analysis transform's last).
    pub fn latent_layer(&self) -> ConvSpec {
        self.analysis().pop().expect("the analysis has layers")
    }

    /// The layer that makes the latent's log-scales (the hyper-synthesis's last; with
    /// [`means`](Self::means), its first `latent_channels` outputs).
    pub fn log_scale_layer(&self) -> ConvSpec {
        self.hyper_synthesis()
            .pop()
            .expect("the hyper-synthesis has layers")
    }

    /// How many pixels one latent element spans, across and down: the product of the
    /// analysis transform's strides. Frames are padded to a multiple of it; the container's
    /// [`CodingParams::LEARNED_STRIDE`](crate::container::CodingParams::LEARNED_STRIDE) states
    /// the same number as a format fact, and a test holds the two equal.
    pub fn downsampling(&self) -> u32 {
        self.analysis().iter().map(|l| l.stride as u32).product()
    }

    /// The analysis transform's layers, input first. ReLU follows every layer but the last.
    pub fn analysis(&self) -> Vec<ConvSpec> {
        let n = usize::from(self.analysis_channels);
        let m = usize::from(self.latent_channels);
        if self.kind == ArchKind::Shallow {
            return vec![
                ConvSpec::patch("g_a.0", 3, n, SHALLOW_BLOCK),
                ConvSpec::same("g_a.1", n, m, 3),
            ];
        }
        vec![
            ConvSpec::down("g_a.0", 3, n),
            ConvSpec::down("g_a.1", n, n),
            ConvSpec::down("g_a.2", n, n),
            ConvSpec::down("g_a.3", n, m),
        ]
    }

    /// The synthesis transform's layers. Pixel-shuffle kind: each is a 3×3 convolution to 4×
    /// the channels, then a pixel shuffle doubling the resolution; shallow kind: see the
    /// module docs. ReLU follows every layer but the last.
    pub fn synthesis(&self) -> Vec<ConvSpec> {
        let m = usize::from(self.latent_channels);
        let [d1, d2, d3] = self.synthesis_channels.map(usize::from);
        if self.kind == ArchKind::Shallow {
            return vec![
                ConvSpec::same("g_s.0", m, d1, 1).shuffled(SHALLOW_BLOCK / 2),
                ConvSpec::same("g_s.1", d1, 3, 5).shuffled(2),
            ];
        }
        vec![
            ConvSpec::up("g_s.0", m, d1),
            ConvSpec::up("g_s.1", d1, d2),
            ConvSpec::up("g_s.2", d2, d3),
            ConvSpec::up("g_s.3", d3, 3),
        ]
    }

    /// Channels on the latent's side of the hyper transforms: one per latent channel (`|y|`
    /// in, log-scales out), twice that with [`means`](Self::means) (`y` in, means out).
    fn prior_channels(&self) -> usize {
        usize::from(self.latent_channels) * if self.means { 2 } else { 1 }
    }

    /// The hyper-analysis layers (input `|y|`; with [`means`](Self::means), `|y|` and then
    /// `y` itself, since a side latent made from magnitudes alone cannot say which way an
    /// element leans). ReLU follows every layer but the last.
    pub fn hyper_analysis(&self) -> Vec<ConvSpec> {
        let m = self.prior_channels();
        let h = usize::from(self.hyper_channels);
        let s = usize::from(self.side_channels);
        vec![
            ConvSpec::same("h_a.0", m, h, 3),
            ConvSpec::down("h_a.1", h, h),
            ConvSpec::down("h_a.2", h, s),
        ]
    }

    /// The hyper-synthesis layers: two upsampling layers, then a 3×3 convolution to one
    /// log-scale per latent channel (and one mean, with [`means`](Self::means)). ReLU
    /// follows every layer but the last.
    pub fn hyper_synthesis(&self) -> Vec<ConvSpec> {
        let m = self.prior_channels();
        let h = usize::from(self.hyper_channels);
        let s = usize::from(self.side_channels);
        vec![
            ConvSpec::up("h_s.0", s, h),
            ConvSpec::up("h_s.1", h, h),
            ConvSpec::same("h_s.2", h, m, 3),
        ]
    }

    /// Every layer, for loading and saving weights.
    pub fn all_layers(&self) -> Vec<ConvSpec> {
        let mut all = self.analysis();
        all.extend(self.synthesis());
        all.extend(self.hyper_analysis());
        all.extend(self.hyper_synthesis());
        all
    }

    /// Multiply-accumulates per pixel of the frame of the encoder (analysis and
    /// hyper-analysis) and of the decoder (hyper-synthesis and synthesis).
    pub fn macs_per_pixel(&self) -> (f64, f64) {
        let count = |layers: Vec<ConvSpec>, mut scale: f64| {
            let mut macs = 0.0;
            for l in layers {
                // `scale` is the input's pixel count relative to the frame.
                let out_scale = scale / (l.stride * l.stride) as f64;
                macs += out_scale * (l.kernel * l.kernel * l.in_channels * l.conv_out()) as f64;
                scale = out_scale * (l.upsample * l.upsample) as f64;
            }
            macs
        };
        let enc = count(self.analysis(), 1.0) + count(self.hyper_analysis(), 1.0 / 256.0);
        let dec =
            count(self.hyper_synthesis(), 1.0 / 4096.0) + count(self.synthesis(), 1.0 / 256.0);
        (enc, dec)
    }
}

/// One convolution layer: weights `{name}.weight` `[conv_out, in, k, k]` and `{name}.bias`
/// `[conv_out]`, padding `k / 2`, then an optional pixel shuffle by `upsample`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvSpec {
    pub name: String,
    pub in_channels: usize,
    /// Channels after the pixel shuffle.
    pub out_channels: usize,
    pub kernel: usize,
    pub stride: usize,
    /// Pixel-shuffle factor after the convolution (1: none).
    pub upsample: usize,
}

impl ConvSpec {
    /// A 5×5 stride-2 convolution.
    fn down(name: &str, in_channels: usize, out_channels: usize) -> Self {
        Self {
            name: name.into(),
            in_channels,
            out_channels,
            kernel: 5,
            stride: 2,
            upsample: 1,
        }
    }

    /// A 3×3 convolution and a pixel shuffle by 2.
    fn up(name: &str, in_channels: usize, out_channels: usize) -> Self {
        Self {
            name: name.into(),
            in_channels,
            out_channels,
            kernel: 3,
            stride: 1,
            upsample: 2,
        }
    }

    /// A `block`×`block` convolution of stride `block` (no padding): one patch per output.
    fn patch(name: &str, in_channels: usize, out_channels: usize, block: usize) -> Self {
        Self {
            name: name.into(),
            in_channels,
            out_channels,
            kernel: block,
            stride: block,
            upsample: 1,
        }
    }

    /// The same layer followed by a pixel shuffle by `r`.
    fn shuffled(self, r: usize) -> Self {
        Self {
            upsample: r,
            ..self
        }
    }

    fn same(name: &str, in_channels: usize, out_channels: usize, kernel: usize) -> Self {
        Self {
            name: name.into(),
            in_channels,
            out_channels,
            kernel,
            stride: 1,
            upsample: 1,
        }
    }

    /// Output channels of the convolution itself (before any pixel shuffle).
    pub fn conv_out(&self) -> usize {
        self.out_channels * self.upsample * self.upsample
    }

    /// Zeros around the input: half the kernel ("same"), none for a patch convolution
    /// (stride equal to the kernel), whose patches tile the input.
    pub fn padding(&self) -> usize {
        if self.stride == self.kernel {
            0
        } else {
            self.kernel / 2
        }
    }

    pub fn weight_name(&self) -> String {
        format!("{}.weight", self.name)
    }

    pub fn bias_name(&self) -> String {
        format!("{}.bias", self.name)
    }

    pub fn weight_shape(&self) -> Vec<usize> {
        vec![self.conv_out(), self.in_channels, self.kernel, self.kernel]
    }

    /// Output size of the convolution (before any shuffle) for an input of `size`.
    pub fn conv_output_size(&self, size: usize) -> usize {
        (size + 2 * self.padding() - self.kernel) / self.stride + 1
    }
}

/// Name of the stored per-channel log-scale of the side latent `z`: its training-time prior.
/// The codec does not read it: it codes `z` per frame and channel under a bank table whose
/// index it transmits (chosen from that frame's values), which costs a byte per channel and
/// fits each frame at least as well as one fixed scale. Every shipped model stores it, and
/// model ids hash the whole file, so it stays (docs/DESIGN.md, Layout).
pub const Z_LOG_SCALE: &str = "z_log_scale";

/// Pixels across one latent element of the shallow kind (its patch analysis's block).
pub const SHALLOW_BLOCK: usize = 16;

/// Lowest Laplace scale the training likelihood uses (the bank's smallest is 0.15).
pub const MIN_SCALE: f32 = 0.11;

/// Fixed-point fraction bits of hyper-synthesis weights (see [`super::hyper`]).
pub const HYPER_WEIGHT_BITS: u32 = 10;
/// Fixed-point fraction bits of hyper-synthesis activations.
pub const HYPER_ACTIVATION_BITS: u32 = 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latent_grid_is_the_containers_learned_stride() {
        let arch = LearnedArch::DEFAULT;
        assert_eq!(arch.latent_layer().weight_name(), "g_a.3.weight");
        assert_eq!(arch.log_scale_layer().bias_name(), "h_s.2.bias");
        assert_eq!(
            LearnedArch::DEFAULT.downsampling(),
            crate::container::CodingParams::LEARNED_STRIDE
        );
    }

    #[test]
    fn the_default_decoder_fits_the_real_time_budget() {
        let (enc, dec) = LearnedArch::DEFAULT.macs_per_pixel();
        // About 1 GMAC per 640x360 frame or less.
        assert!(dec * 640.0 * 360.0 < 1.0e9, "decoder {dec} MAC/px");
        assert!(enc > dec, "encoder {enc} MAC/px");
    }

    #[test]
    fn the_shallow_kind_codes_on_the_same_grid_within_the_budget() {
        let arch = LearnedArch::SHALLOW;
        arch.check().unwrap();
        assert_eq!(arch.downsampling(), 16);
        assert_eq!(arch.latent_layer().weight_name(), "g_a.1.weight");
        assert_eq!(arch.analysis()[0].conv_output_size(368), 23);
        let (enc, dec) = arch.macs_per_pixel();
        // At most 8k multiply-accumulates per decoded pixel.
        assert!(dec < 8000.0, "decoder {dec} MAC/px");
        assert!(enc > dec, "encoder {enc} MAC/px");
        // Widening never crosses kinds.
        assert!(!LearnedArch::DEFAULT.fits_in(&arch));
        let mut bad = arch;
        bad.synthesis_channels[2] = 8;
        assert!(bad.check().is_err());
    }

    #[test]
    fn means_double_the_last_hyper_layer_and_only_files_with_them_name_them() {
        let arch = LearnedArch {
            means: true,
            ..LearnedArch::SHALLOW
        };
        let last = arch.log_scale_layer();
        assert_eq!(last.out_channels, 2 * usize::from(arch.latent_channels));
        assert_eq!(arch.hyper_analysis()[0].in_channels, last.out_channels);
        assert!(arch.macs_per_pixel().1 < 8000.0);
        assert!(LearnedArch::SHALLOW.fits_in(&arch) && !arch.fits_in(&LearnedArch::SHALLOW));
        let json = serde_json::to_string(&arch).unwrap();
        assert!(json.contains("\"means\":true"), "{json}");
        assert_eq!(serde_json::from_str::<LearnedArch>(&json).unwrap(), arch);
        let json = serde_json::to_string(&LearnedArch::SHALLOW).unwrap();
        assert!(!json.contains("means"), "{json}");
    }

    #[test]
    fn pixel_shuffle_files_do_not_name_their_kind() {
        let json = serde_json::to_string(&LearnedArch::DEFAULT).unwrap();
        assert!(!json.contains("kind"), "{json}");
        let back: LearnedArch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, LearnedArch::DEFAULT);
        let json = serde_json::to_string(&LearnedArch::SHALLOW).unwrap();
        assert!(json.contains("\"kind\":\"shallow\""), "{json}");
    }

    #[test]
    fn layer_shapes_chain() {
        for arch in [LearnedArch::DEFAULT, LearnedArch::SHALLOW] {
            for layers in [
                arch.analysis(),
                arch.synthesis(),
                arch.hyper_analysis(),
                arch.hyper_synthesis(),
            ] {
                for pair in layers.windows(2) {
                    assert_eq!(pair[0].out_channels, pair[1].in_channels);
                }
            }
        }
        let arch = LearnedArch::DEFAULT;
        assert_eq!(arch.analysis()[0].conv_output_size(368), 184);
        assert_eq!(arch.analysis()[0].conv_output_size(23), 12);
    }
}
