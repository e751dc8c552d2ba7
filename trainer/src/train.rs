//! Rate–distortion training of the learned model on random crops of video frames.
//!
//! Loss = λ·255²·MSE + bits per pixel, with uniform noise standing in for rounding in the
//! likelihoods and straight-through rounding for the synthesis. Adam, with the learning rate
//! cut tenfold for the last tenth of the steps. Validation codes held-out frames into real
//! bitstreams with the codec's own coder, so the bpp and PSNR it reports are real.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use aecodec::coders::pca::{self, patch_dims, PcaModel};
use aecodec::coders::FrameCoder;
use aecodec::container::FrameType;
use aecodec::learned::{
    ArchKind, LearnedArch, LearnedCoder, LearnedInfo, LearnedModel, LearnedWeights, SHALLOW_BLOCK,
};
use aecodec::metrics::PsnrAccumulator;
use aecodec::model_file::{TrainingInfo, Validation};
use aecodec::RgbFrame;
use burn::optim::{AdamConfig, GradientsParams, OptimizerRecord};
use burn::tensor::{Device, Tensor, TensorData};

use crate::data::Rng;
use crate::data::{sample_frames, FrameSampling};
use crate::device::TrainDevice;
use crate::model::LearnedNet;

/// Why training could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("reading {clip}")]
    Clip {
        clip: String,
        #[source]
        cause: crate::data::DataError,
    },
    #[error("no training frames at least {0}x{0} pixels")]
    NoFrames(usize),
    #[error("model: {0}")]
    Model(#[from] aecodec::model_file::ModelError),
    #[error("architecture: {0}")]
    Arch(String),
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
    #[error("optimizer state: {0}")]
    OptimizerState(String),
}

/// Everything a training run needs.
#[derive(Clone)]
pub struct TrainConfig {
    pub clips: Vec<PathBuf>,
    pub sampling: FrameSampling,
    /// Every this-many sampled frames, one is held out for validation.
    pub holdout_every: usize,
    pub lambda: f64,
    pub quality: u8,
    pub steps: u64,
    pub batch: usize,
    pub crop: usize,
    pub learning_rate: f64,
    pub seed: u64,
    /// Validate (and checkpoint) every this many steps.
    pub validate_every: u64,
    /// Stop (validating and checkpointing) once this much wall time has passed, even before
    /// `steps`; the learning rate's last-tenth cut then follows the time.
    pub time_limit: Option<std::time::Duration>,
    /// The network's architecture. A `start` model of a narrower one is widened to it
    /// ([`LearnedNet::widened_from`]).
    pub arch: LearnedArch,
    /// Where the network runs (validation codes with the codec's own CPU kernels).
    pub device: TrainDevice,
    /// Start from these weights (resume or fine-tune).
    pub start: Option<Arc<LearnedModel>>,
    /// Whether `start` is the same run continued (`--resume`) or a parent (`finetune`).
    pub resume: bool,
    /// The optimizer's state saved beside the resumed checkpoint
    /// ([`OptimizerState`]), so that Adam continues instead of restarting.
    pub optimizer_state: Option<OptimizerState>,
    /// A shallow-kind model started afresh begins as the PCA of its training patches, with
    /// this latent step in code values (default: [`pca_step_for`] the lambda).
    pub pca_step: Option<f32>,
    /// Train the hyperprior alone; the analysis and synthesis transforms keep their weights.
    pub hyperprior_only: bool,
    pub command: String,
}

/// Progress reports.
pub enum TrainEvent<'a> {
    Step {
        step: u64,
        loss: f64,
        bpp: f64,
        psnr: f64,
    },
    Validation {
        step: u64,
        bpp: f64,
        psnr: f64,
        /// The model as of this step, to checkpoint.
        model_bytes: &'a [u8],
        /// The optimizer's state as of this step, to save beside it.
        optimizer: &'a OptimizerState,
    },
    /// A fresh shallow model was started from the PCA of the training patches.
    PcaStart { patches: usize, step: f32 },
}

/// Adam's state at a checkpoint: the total steps of the model it belongs to, then burn's
/// optimizer record (burnpack bytes). Saved beside the model file, never inside it: a model's
/// id is the hash of its file, and a decoder needs no optimizer.
#[derive(Clone)]
pub struct OptimizerState {
    pub steps: u64,
    pub record: Vec<u8>,
}

impl OptimizerState {
    const MAGIC: &'static [u8; 8] = b"AEADAM01";

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Self::MAGIC.to_vec();
        out.extend_from_slice(&self.steps.to_le_bytes());
        out.extend_from_slice(&self.record);
        out
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, TrainError> {
        let bad = || TrainError::OptimizerState("not an optimizer state file".into());
        if bytes.len() < 16 || &bytes[..8] != Self::MAGIC {
            return Err(bad());
        }
        let steps = u64::from_le_bytes(bytes[8..16].try_into().map_err(|_| bad())?);
        Ok(Self {
            steps,
            record: bytes[16..].to_vec(),
        })
    }

    /// The record with every f32 tensor (Adam's moments) stored in bfloat16: half the bytes,
    /// and 8 significant bits are plenty for running averages of gradients. The checkpoints
    /// committed to the repository stay small enough to travel with it to a GPU.
    pub fn compact(record: &[u8]) -> Result<Vec<u8>, TrainError> {
        convert_record(record, burn_pack::DType::F32, burn_pack::DType::BF16, |b| {
            let v = f32::from_le_bytes(b.try_into().expect("4 bytes"));
            half::bf16::from_f32(v).to_le_bytes().to_vec()
        })
    }

    /// A [`compact`](Self::compact)ed record back in f32, as the optimizer takes it (an f32
    /// record passes unchanged).
    pub fn expand(record: &[u8]) -> Result<Vec<u8>, TrainError> {
        convert_record(record, burn_pack::DType::BF16, burn_pack::DType::F32, |b| {
            let v = half::bf16::from_le_bytes(b.try_into().expect("2 bytes"));
            v.to_f32().to_le_bytes().to_vec()
        })
    }

    /// Where the state of checkpoint `model` is kept: beside it, `.adam` appended.
    pub fn path_for(model: &std::path::Path) -> PathBuf {
        let mut name = model.as_os_str().to_owned();
        name.push(".adam");
        PathBuf::from(name)
    }
}

/// Rewrites a burnpack record with every tensor of dtype `from` converted element by
/// element to `to` (`convert` maps one element's little-endian bytes); the rest is kept.
fn convert_record(
    record: &[u8],
    from: burn_pack::DType,
    to: burn_pack::DType,
    convert: impl Fn(&[u8]) -> Vec<u8>,
) -> Result<Vec<u8>, TrainError> {
    let bad = |e: burn_pack::Error| TrainError::OptimizerState(e.to_string());
    let reader = burn_pack::Reader::from_bytes(burn_pack::Bytes::from_bytes_vec(record.to_vec()))
        .map_err(bad)?;
    let (scalars, metadata) = (reader.scalars().clone(), reader.metadata().clone());
    let mut tensors = Vec::new();
    for tensor in reader.into_tensors().map_err(bad)? {
        let (name, dtype, shape, id, bytes) = tensor.into_parts().map_err(bad)?;
        let (dtype, bytes) = if dtype == from {
            let converted: Vec<u8> = bytes.chunks_exact(from.size()).flat_map(&convert).collect();
            (to, burn_pack::Bytes::from_bytes_vec(converted))
        } else {
            (dtype, bytes)
        };
        tensors.push(burn_pack::Tensor::new(name, dtype, shape, id, bytes));
    }
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    Ok(writer.into_bytes().map_err(bad)?.to_vec())
}

/// The latent step (code values) a PCA start takes for `lambda`: where a uniform quantizer's
/// distortion (step²/12 per sample) meets the lambda's slope at high rate, with the three
/// samples per pixel a complete transform codes (D = 3 / (2 ln 2 · lambda)).
pub fn pca_step_for(lambda: f64) -> f32 {
    (12.0 * 3.0 / (2.0 * std::f64::consts::LN_2 * lambda)).sqrt() as f32
}

/// Training frames held in memory.
struct FrameSet {
    train: Vec<RgbFrame>,
    holdout: Vec<RgbFrame>,
}

fn load_frames(config: &TrainConfig) -> Result<FrameSet, TrainError> {
    let mut set = FrameSet {
        train: Vec::new(),
        holdout: Vec::new(),
    };
    let mut n = 0usize;
    for clip in &config.clips {
        sample_frames(clip, config.sampling, |f| {
            if f.width as usize >= config.crop && f.height as usize >= config.crop {
                if config.holdout_every > 0 && n % config.holdout_every == config.holdout_every - 1
                {
                    set.holdout.push(f.clone());
                } else {
                    set.train.push(f.clone());
                }
                n += 1;
            }
        })
        .map_err(|cause| TrainError::Clip {
            clip: clip.display().to_string(),
            cause,
        })?;
    }
    if set.train.is_empty() {
        return Err(TrainError::NoFrames(config.crop));
    }
    Ok(set)
}

/// A batch of random crops (random flips too) as a [B, 3, crop, crop] tensor in 0..=1.
fn batch(frames: &[RgbFrame], config: &TrainConfig, rng: &mut Rng, device: &Device) -> Tensor<4> {
    let c = config.crop;
    let mut data = vec![0f32; config.batch * 3 * c * c];
    for b in 0..config.batch {
        let f = &frames[rng.below(frames.len())];
        let (w, h) = (f.width as usize, f.height as usize);
        let (x0, y0) = (rng.below(w - c + 1), rng.below(h - c + 1));
        let flip = rng.next() & 1 == 1;
        for y in 0..c {
            for x in 0..c {
                let sx = if flip { x0 + c - 1 - x } else { x0 + x };
                let p = 3 * ((y0 + y) * w + sx);
                for ch in 0..3 {
                    data[((b * 3 + ch) * c + y) * c + x] = f32::from(f.data[p + ch]) / 255.0;
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [config.batch, 3, c, c]), device)
}

/// Real bitstreams for the held-out frames (cropped to a multiple of the latent grid): bits per pixel of
/// the payloads and RGB PSNR of the decoded frames.
pub fn validate(model: Arc<LearnedModel>, frames: &[RgbFrame]) -> (f64, f64) {
    let mut bits = 0u64;
    let mut pixels = 0u64;
    let mut acc = PsnrAccumulator::default();
    let factor = model.info.arch.downsampling();
    for f in frames {
        let (w, h) = (f.width / factor * factor, f.height / factor * factor);
        let crop = f.cropped(w, h);
        let mut coder = LearnedCoder::new(model.clone(), w, h);
        let coded = coder
            .encode(&crop, FrameType::Intra)
            .expect("coding a frame of the coder's size");
        let mut decoder = LearnedCoder::new(model.clone(), w, h);
        let decoded = decoder
            .decode(FrameType::Intra, &coded.payload)
            .expect("decoding what was just coded");
        bits += 8 * coded.payload.len() as u64;
        pixels += u64::from(w) * u64::from(h);
        acc.add(&crop, &decoded);
    }
    (bits as f64 / pixels.max(1) as f64, acc.psnr())
}

/// The model file bytes for a network's current weights.
fn model_bytes(net: &LearnedNet, info: &LearnedInfo) -> Vec<u8> {
    LearnedModel::file_bytes_for(info, &net.weights(&info.arch))
}

/// Runs training; returns the final model file bytes.
pub fn train(
    config: &TrainConfig,
    mut on_event: impl FnMut(TrainEvent<'_>),
) -> Result<Vec<u8>, TrainError> {
    let started = Instant::now();
    let device = config.device.burn()?.autodiff();
    let frames = load_frames(config)?;
    device.seed(config.seed);
    let mut rng = Rng(config.seed ^ 0x9e37_79b9_7f4a_7c15);
    let (arch, net, previous_steps, parent, previous_seconds) = match &config.start {
        Some(m) if m.info.arch == config.arch => (
            m.info.arch,
            LearnedNet::from_weights(&m.info.arch, &m.weights, &device),
            if config.resume { m.info.steps } else { 0 },
            if config.resume {
                m.info.parent.clone()
            } else {
                Some(m.id.hex())
            },
            if config.resume {
                m.info.training.seconds
            } else {
                0.0
            },
        ),
        Some(m) if config.resume => {
            return Err(TrainError::Arch(format!(
                "a resumed run keeps its architecture ({:?}); use --init to start a wider one",
                m.info.arch
            )))
        }
        Some(m) => (
            config.arch,
            LearnedNet::widened_from(&config.arch, &m.info.arch, &m.weights, &device)
                .map_err(TrainError::Arch)?,
            0,
            Some(m.id.hex()),
            0.0,
        ),
        None if config.arch.kind == ArchKind::Shallow => {
            let step = config.pca_step.unwrap_or(pca_step_for(config.lambda));
            let (pca, variances, patches) = fit_pca(&frames.train);
            on_event(TrainEvent::PcaStart { patches, step });
            let net = LearnedNet::from_pca(&config.arch, &pca, &variances, step, &device)
                .map_err(TrainError::Arch)?;
            (config.arch, net, 0, None, 0.0)
        }
        None => (
            config.arch,
            LearnedNet::new(&config.arch, &device),
            0,
            None,
            0.0,
        ),
    };
    // Parameters numbered as every resumed run numbers them (`LearnedNet::from_weights`).
    let mut net = LearnedNet::from_weights(&arch, &net.weights(&arch), &device);
    if config.hyperprior_only {
        net = net.hyperprior_only();
    }
    let mut optimizer = AdamConfig::new().init();
    if let (true, Some(state)) = (config.resume, &config.optimizer_state) {
        if state.steps != previous_steps {
            return Err(TrainError::OptimizerState(format!(
                "saved at step {}, the checkpoint is at step {previous_steps}",
                state.steps
            )));
        }
        let record = OptimizerState::expand(&state.record)?;
        let record = OptimizerRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(record))
            .map_err(|e| TrainError::OptimizerState(e.to_string()))?;
        optimizer = optimizer.load_record(record);
    }
    let optimizer_state = |optimizer: &burn::optim::ModuleOptimizer, steps: u64| {
        let record = optimizer
            .to_record()
            .into_bytes()
            .map(|b| b.to_vec())
            .map_err(|e| TrainError::OptimizerState(e.to_string()))?;
        let record = OptimizerState::compact(&record)?;
        Ok::<_, TrainError>(OptimizerState { steps, record })
    };
    let info = |steps: u64, seconds: f64, validation: Option<Validation>| LearnedInfo {
        arch,
        lambda: config.lambda,
        quality: config.quality,
        steps,
        parent: parent.clone(),
        training: TrainingInfo {
            clips: config
                .clips
                .iter()
                .map(|c| c.display().to_string())
                .collect(),
            frames: frames.train.len() as u64,
            command: config.command.clone(),
            seconds,
            validation,
        },
    };
    let pixels = (config.batch * config.crop * config.crop) as f64;
    let distortion_weight = config.lambda * 255.0 * 255.0;
    let training = Instant::now();
    for step in 1..=config.steps {
        let x = batch(&frames.train, config, &mut rng, &device);
        let out = net.forward(x.clone());
        let mse = (out.x_hat - x).square().mean();
        let bpp = out.bits.div_scalar(pixels);
        let loss = mse.clone().mul_scalar(distortion_weight) + bpp.clone();
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        // The share of the time limit used so far.
        let spent = config
            .time_limit
            .map(|t| training.elapsed().as_secs_f64() / t.as_secs_f64());
        let out_of_time = spent.is_some_and(|s| s >= 1.0);
        let last_tenth = spent.is_some_and(|s| s > 0.9);
        let lr = if step > config.steps * 9 / 10 || last_tenth {
            config.learning_rate / 10.0
        } else {
            config.learning_rate
        };
        net = optimizer.step(lr, net, grads);
        let mse: f64 = mse.into_scalar::<f32>().into();
        on_event(TrainEvent::Step {
            step,
            loss: f64::from(loss.into_scalar::<f32>()),
            bpp: f64::from(bpp.into_scalar::<f32>()),
            psnr: 10.0 * (1.0 / mse.max(1e-10)).log10(),
        });
        let last = step == config.steps || out_of_time;
        if step % config.validate_every == 0 || last {
            let seconds = previous_seconds + started.elapsed().as_secs_f64();
            let steps = previous_steps + step;
            let bytes = model_bytes(&net, &info(steps, seconds, None));
            let model = Arc::new(LearnedModel::from_bytes(&bytes)?);
            let held = if frames.holdout.is_empty() {
                &frames.train[..1]
            } else {
                &frames.holdout[..]
            };
            let (bpp, psnr) = validate(model, held);
            // The checkpoint carries its validation (the weights, and so what was measured,
            // are the same).
            let validation = Validation {
                bpp,
                psnr,
                frames: held.len() as u64,
            };
            let bytes = model_bytes(&net, &info(steps, seconds, Some(validation)));
            on_event(TrainEvent::Validation {
                step,
                bpp,
                psnr,
                model_bytes: &bytes,
                optimizer: &optimizer_state(&optimizer, previous_steps + step)?,
            });
            if last {
                return Ok(bytes);
            }
        }
    }
    // Zero steps: the starting point itself.
    Ok(model_bytes(
        &net,
        &info(previous_steps, previous_seconds, None),
    ))
}

/// Patches of 16×16 taken from the training frames for the PCA start: at most this many.
const PCA_PATCHES: usize = 60_000;

/// The closed-form PCA of 16×16 patches of `frames` (spread evenly over them), the variance
/// of every coefficient, and how many patches it saw.
fn fit_pca(frames: &[RgbFrame]) -> (PcaModel, Vec<f64>, usize) {
    let block = SHALLOW_BLOCK as u8;
    let d = patch_dims(block);
    let mut all = Vec::new();
    for f in frames {
        all.extend(pca::patches(f, block));
    }
    let n = all.len() / d;
    let keep = n.min(PCA_PATCHES);
    let mut patches = Vec::with_capacity(keep * d);
    for i in 0..keep {
        let k = i * n / keep;
        patches.extend_from_slice(&all[k * d..(k + 1) * d]);
    }
    let model = PcaModel::fit(block, &patches, TrainingInfo::default());
    // The variance of each coefficient, on a sample of the patches.
    let components = usize::from(model.components);
    let sample = keep.min(4000);
    let mut variances = vec![0f64; components];
    for i in 0..sample {
        let p = &patches[(i * keep / sample) * d..][..d];
        for (k, var) in variances.iter_mut().enumerate() {
            let u = &model.basis[k * d..(k + 1) * d];
            let c: f32 = u
                .iter()
                .zip(p)
                .zip(&model.mean)
                .map(|((u, v), m)| u * (v - m))
                .sum();
            *var += f64::from(c * c);
        }
    }
    variances
        .iter_mut()
        .for_each(|v| *v /= sample.max(1) as f64);
    (model, variances, keep)
}

/// The weights of a model, to check a trained network round-trips through its file.
pub fn weights_of(model: &LearnedModel) -> &LearnedWeights {
    &model.weights
}
