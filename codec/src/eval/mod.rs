//! Rate–distortion evaluation: every codec at several settings on the same reference frames,
//! with rates from real file sizes and quality from frames decoded from those files.
//!
//! * our coders (`pixel`, `pca8`, `pca16`, `pca8-title`) write real `.aez` files through the
//!   container and read them back;
//! * classic codecs (`jpeg`, `x264`, `x264-intra`, `x265`) run through the `ffmpeg` command
//!   and are decoded by the same FFmpeg reader as our inputs;
//! * [`report`] writes the CSV, the markdown summary (BD-rate, bpp at fixed PSNRs) and the
//!   R–D plot.

pub mod bdrate;
mod classic;
pub mod report;

use std::fs::File;
use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use std::convert::Infallible;
use std::ops::ControlFlow;

use crate::coders::pca::{patches, PcaModel};
use crate::coders::{BasePolicy, CoderError};
use crate::container::{ContainerError, ContainerReader, ContainerWriter, Rational};
use crate::learned::{LatentStep, LearnedModel};
use crate::metrics::{ms_ssim, PsnrAccumulator};
use crate::model_file::{ModelError, TrainingInfo};
use crate::pipeline::{
    decode_stream, encode_stream, FrameDecoder, FrameEncoder, FrameSlice, StreamError,
};
use crate::registry::{builtin, CoderSpec, Model, ModelStore};
use crate::video::{create_writer, OutputFormat, VideoError, VideoReader};
use crate::RgbFrame;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("unknown codec {0:?}; choose from {CODECS}")]
    UnknownCodec(String),
    #[error("{0} needs a model of its kind")]
    NeedsModel(String),
    #[error("model {path}")]
    Model {
        path: PathBuf,
        #[source]
        cause: ModelError,
    },
    #[error("{clip}")]
    Video {
        clip: String,
        #[source]
        cause: VideoError,
    },
    #[error("{clip} has no frames")]
    NoFrames { clip: String },
    #[error("{clip}: {codec} at {setting}")]
    Point {
        clip: String,
        codec: String,
        setting: String,
        #[source]
        cause: Box<PointError>,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why one codec at one setting could not be measured.
#[derive(Debug, thiserror::Error)]
pub enum PointError {
    #[error(transparent)]
    Code(#[from] CodeError),
    #[error("decoded {decoded} frames of {reference}")]
    FrameCount { decoded: usize, reference: usize },
    #[error("decoded size {decoded:?} differs from {reference:?}")]
    FrameSize {
        decoded: (u32, u32),
        reference: (u32, u32),
    },
    #[error("cannot run ffmpeg; install it (scripts/setup)")]
    FfmpegMissing(#[source] std::io::Error),
    /// FFmpeg's own report (its standard error).
    #[error("ffmpeg failed: {0}")]
    Ffmpeg(String),
    #[error("loading the built-in models")]
    BuiltIn(#[source] ModelError),
    #[error(transparent)]
    Video(#[from] VideoError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Why [`code_with`] could not code frames to a file and back.
#[derive(Debug, thiserror::Error)]
pub enum CodeError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Coder(#[from] CoderError),
    #[error(transparent)]
    Stream(#[from] StreamError<Infallible>),
    #[error("the file just written is damaged")]
    Damaged(#[source] crate::pipeline::StreamDamage),
}

/// Codec names `eval` understands.
pub const CODECS: &str =
    "learned, learned-p (predicted frames), pixel, pca8, pca16, pca8-p, pca16-p, \
     pca8-title, jpeg, x264, x264-intra, x265";

/// One measured point.
#[derive(Debug, Clone, Serialize)]
pub struct EvalRow {
    pub clip: String,
    pub codec: String,
    pub setting: String,
    pub bpp: f64,
    pub psnr_rgb: f64,
    pub ms_ssim: f64,
    pub encode_s: f64,
    pub decode_s: f64,
    /// Size of the coded file.
    pub bytes: u64,
    /// Size of the model a decoder needs (paid once per model, not per file).
    pub model_bytes: u64,
}

/// What to evaluate.
pub struct EvalConfig {
    pub clips: Vec<PathBuf>,
    /// Frames per clip (from the start).
    pub frames: usize,
    pub codecs: Vec<String>,
    /// Model files: PCA models for `pca8`/`pca16` (block size decides which) and learned
    /// models for `learned` (one setting per model, by quality).
    pub models: Vec<PathBuf>,
    /// Scratch directory for coded files.
    pub work_dir: PathBuf,
    /// Detail layer steps: `learned` also runs each learned model with a detail layer at each.
    pub detail_steps: Vec<f32>,
    /// Latent steps a learned model of the shallow kind is run at, each a setting (one model
    /// for every rate); models of the pixel-shuffle kind have one.
    pub latent_steps: Vec<LatentStep>,
    /// Where the encoder puts the learned picture under the detail layer of the `learned`
    /// codecs' models.
    pub policy: BasePolicy,
    /// Gradient steps of latent refinement per intra frame, for every learned coder
    /// (`encode --effort`).
    pub effort: u16,
}

/// How our coders are run: every frame intra, or predicted frames between intra frames at
/// `encode`'s default groups of pictures (about 10 s, and scene cuts).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prediction {
    IntraOnly,
    DefaultGop,
}

impl Prediction {
    fn of_name(name: &str) -> Self {
        if name.ends_with("-p") {
            Prediction::DefaultGop
        } else {
            Prediction::IntraOnly
        }
    }

    fn gop(self, rate: Rational) -> u32 {
        match self {
            Prediction::IntraOnly => 1,
            Prediction::DefaultGop => crate::pipeline::default_gop(rate),
        }
    }
}

/// A codec and the settings it is run at.
enum Codec {
    Pixel,
    Pca {
        name: String,
        model: Arc<PcaModel>,
        prediction: Prediction,
    },
    PcaTitle {
        block: u8,
    },
    /// Learned models, one per setting (ordered by quality).
    Learned {
        name: String,
        models: Vec<Arc<LearnedModel>>,
        /// Each model is also run with a detail layer at each of these steps.
        detail_steps: Vec<f32>,
        /// Each model with a latent step runs at each of these.
        latent_steps: Vec<LatentStep>,
        prediction: Prediction,
    },
    /// The built-in quality levels, as `aecodec encode --quality` codes them (with
    /// `--detail-alone` for the policy [`BasePolicy::Cheapest`]).
    Levels {
        name: String,
        prediction: Prediction,
        policy: BasePolicy,
    },
    Classic(classic::Classic),
}

/// One setting of a codec: what it is run with.
#[derive(Debug, Clone, Copy)]
enum Setting {
    /// The pixel coder's quantizer step.
    PixelStep(u8),
    /// A PCA quantizer step.
    PcaStep(f32),
    /// The learned model at this index of the codec's list, with a detail layer at this step
    /// or none, its latent quantized at this step.
    LearnedModel(usize, Option<f32>, LatentStep),
    /// A built-in quality level.
    Level(u8),
    /// A classic codec's quality argument, as FFmpeg takes it.
    Classic(&'static str),
}

impl Codec {
    fn name(&self) -> String {
        match self {
            Codec::Pixel => "pixel".into(),
            Codec::Pca { name, .. } => name.clone(),
            Codec::PcaTitle { block } => format!("pca{block}-title"),
            Codec::Learned { name, .. } | Codec::Levels { name, .. } => name.clone(),
            Codec::Classic(c) => c.name().into(),
        }
    }

    /// The codec a row of setting `label` is counted under: the codec's name, except for two
    /// learned models of one quality (an A/B run), each of which is a codec of its own,
    /// `learned q4-<id>`, with its own curve and BD-rate (`--reference` may name it).
    fn row_codec(&self, label: &str) -> String {
        let model = label.split(['@', '+']).next().unwrap_or(label);
        match self {
            Codec::Learned { name, .. } if model.contains('-') => format!("{name} {model}"),
            _ => self.name(),
        }
    }

    /// Every setting with the label its rows carry.
    fn settings(&self) -> Vec<(String, Setting)> {
        const PCA_STEPS: [u16; 9] = [2, 4, 8, 16, 32, 64, 128, 256, 512];
        match self {
            Codec::Pixel => [2u8, 4, 8, 16]
                .map(|s| (s.to_string(), Setting::PixelStep(s)))
                .to_vec(),
            Codec::Pca { .. } | Codec::PcaTitle { .. } => PCA_STEPS
                .map(|s| (s.to_string(), Setting::PcaStep(f32::from(s))))
                .to_vec(),
            Codec::Levels { .. } => (1..=builtin::LEVELS)
                .map(|q| (format!("level{q}"), Setting::Level(q)))
                .collect(),
            Codec::Classic(c) => c
                .settings()
                .iter()
                .map(|&s| (s.to_string(), Setting::Classic(s)))
                .collect(),
            Codec::Learned {
                models,
                detail_steps,
                latent_steps,
                ..
            } => {
                // Named by quality; two models of one quality (an A/B run) also by their ids,
                // so that neither their rows nor their work files run together. A detail
                // layer adds `+d<step>`.
                let shared = |q: u8| models.iter().filter(|m| m.info.quality == q).count() > 1;
                let mut settings = Vec::new();
                for (i, m) in models.iter().enumerate() {
                    let label = match m.info.quality {
                        q if shared(q) => format!("q{q}-{}", &m.id.hex()[..8]),
                        q => format!("q{q}"),
                    };
                    let steps = match m.has_latent_step() {
                        true if !latent_steps.is_empty() => latent_steps.clone(),
                        _ => vec![LatentStep::UNIT],
                    };
                    for latent_step in steps {
                        // A latent step other than 1 adds `@<step>`.
                        let label = match latent_step {
                            LatentStep::UNIT => label.clone(),
                            s => format!("{label}@{s}"),
                        };
                        settings.push((label.clone(), Setting::LearnedModel(i, None, latent_step)));
                        for &step in detail_steps {
                            settings.push((
                                format!("{label}+d{step}"),
                                Setting::LearnedModel(i, Some(step), latent_step),
                            ));
                        }
                    }
                }
                settings
            }
        }
    }
}

fn parse_codecs(config: &EvalConfig) -> Result<Vec<Codec>, EvalError> {
    let mut models = Vec::new();
    let mut learned = Vec::new();
    for p in &config.models {
        match Model::load(p).map_err(|cause| EvalError::Model {
            path: p.clone(),
            cause,
        })? {
            Model::Pca(m) => models.push(m),
            Model::Learned(m) => learned.push(m),
        }
    }
    learned.sort_by_key(|m| m.info.quality);
    let pca = |block: u8, name: &str| {
        let model = models
            .iter()
            .find(|m| m.block == block)
            .ok_or_else(|| EvalError::NeedsModel(name.into()))?;
        Ok(Codec::Pca {
            name: name.into(),
            model: model.clone(),
            prediction: Prediction::of_name(name),
        })
    };
    config
        .codecs
        .iter()
        .map(|name| match name.as_str() {
            "pixel" => Ok(Codec::Pixel),
            "pca8" | "pca8-p" => pca(8, name),
            "pca16" | "pca16-p" => pca(16, name),
            "pca8-title" => Ok(Codec::PcaTitle { block: 8 }),
            "learned" | "learned-p" if learned.is_empty() => {
                Err(EvalError::NeedsModel(name.clone()))
            }
            "levels" | "levels-p" => Ok(Codec::Levels {
                name: name.clone(),
                prediction: Prediction::of_name(name),
                policy: BasePolicy::Learned,
            }),
            "detail-alone" | "detail-alone-p" => Ok(Codec::Levels {
                name: name.clone(),
                prediction: Prediction::of_name(name),
                policy: BasePolicy::Cheapest,
            }),
            "learned" | "learned-p" => Ok(Codec::Learned {
                name: name.clone(),
                models: learned.clone(),
                detail_steps: config.detail_steps.clone(),
                latent_steps: config.latent_steps.clone(),
                prediction: Prediction::of_name(name),
            }),
            other => classic::Classic::parse(other)
                .map(Codec::Classic)
                .ok_or_else(|| EvalError::UnknownCodec(other.into())),
        })
        .collect()
}

/// The reference frames of a clip, and its frame rate.
pub fn reference_frames(clip: &Path, max: usize) -> Result<(Vec<RgbFrame>, Rational), EvalError> {
    let err = |cause: VideoError| EvalError::Video {
        clip: clip.display().to_string(),
        cause,
    };
    let mut reader = VideoReader::open(clip).map_err(err)?;
    let rate = reader.info().frame_rate;
    let mut frames = Vec::new();
    while frames.len() < max {
        match reader.next_frame().map_err(err)? {
            Some(f) => frames.push(f),
            None => break,
        }
    }
    if frames.is_empty() {
        return Err(EvalError::NoFrames {
            clip: clip.display().to_string(),
        });
    }
    Ok((frames, rate))
}

/// Measures decoded frames against the reference: RGB PSNR and mean MS-SSIM.
fn quality(reference: &[RgbFrame], decoded: &[RgbFrame]) -> Result<(f64, f64), PointError> {
    if decoded.len() != reference.len() {
        return Err(PointError::FrameCount {
            decoded: decoded.len(),
            reference: reference.len(),
        });
    }
    let mut acc = PsnrAccumulator::default();
    let mut ssim = 0.0;
    for (r, d) in reference.iter().zip(decoded) {
        if (r.width, r.height) != (d.width, d.height) {
            return Err(PointError::FrameSize {
                decoded: (d.width, d.height),
                reference: (r.width, r.height),
            });
        }
        acc.add(r, d);
        ssim += ms_ssim(r, d);
    }
    Ok((acc.psnr(), ssim / reference.len() as f64))
}

/// What coding frames to a file and back gave.
#[derive(Debug)]
pub struct CodedClip {
    /// The real size of the file written.
    pub bytes: u64,
    /// The frames decoded from that file.
    pub decoded: Vec<RgbFrame>,
    pub encode_s: f64,
    pub decode_s: f64,
}

/// Encodes frames to an `.aez` file with our coder, then decodes that file.
pub fn code_with(
    spec: &CoderSpec,
    frames: &[RgbFrame],
    rate: Rational,
    gop: u32,
    path: &Path,
    models: &ModelStore,
) -> Result<CodedClip, CodeError> {
    let start = Instant::now();
    let (w, h) = (frames[0].width, frames[0].height);
    let mut encoder = FrameEncoder::new(spec, w, h, rate, gop).with_scene_cuts();
    let file = BufWriter::new(File::create(path)?);
    let mut writer = ContainerWriter::new(file, encoder.header().clone())?;
    let mut source = FrameSlice::new(frames);
    let go_on = |_, _: &_| ControlFlow::Continue(());
    encode_stream(&mut source, &mut encoder, &mut writer, None, go_on)?;
    writer.finish()?;
    let encode_s = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(path)?.len();
    let start = Instant::now();
    let mut reader = ContainerReader::new(BufReader::new(File::open(path)?))?;
    let mut decoder = FrameDecoder::new(reader.header(), models)?;
    let mut decoded = Vec::with_capacity(frames.len());
    let stream = decode_stream(&mut reader, &mut decoder, &mut decoded, |_| {
        ControlFlow::Continue(())
    })?;
    if let Some(damage) = stream.damage {
        return Err(CodeError::Damaged(damage));
    }
    Ok(CodedClip {
        bytes,
        decoded,
        encode_s,
        decode_s: start.elapsed().as_secs_f64(),
    })
}

/// Writes a lossless copy of the reference for ffmpeg to read.
fn write_reference(frames: &[RgbFrame], rate: Rational, path: &Path) -> Result<(), VideoError> {
    let mut sink = create_writer(
        OutputFormat::Ffv1Mkv,
        path,
        frames[0].width,
        frames[0].height,
        rate,
    )?;
    for f in frames {
        sink.write_frame(f)?;
    }
    sink.finish()
}

/// The models a codec's files need to decode.
fn decoder_models(codec: &Codec, pca: Option<&Arc<PcaModel>>) -> ModelStore {
    let mut models = ModelStore::new();
    if let Some(m) = pca {
        models.add(Model::Pca(m.clone()));
    }
    if let Codec::Learned {
        models: learned, ..
    } = codec
    {
        for m in learned {
            models.add(Model::Learned(m.clone()));
        }
    }
    models
}

/// Runs every codec at every setting on every clip. `progress` hears about each point.
pub fn run(
    config: &EvalConfig,
    mut progress: impl FnMut(&EvalRow),
) -> Result<Vec<EvalRow>, EvalError> {
    let codecs = parse_codecs(config)?;
    std::fs::create_dir_all(&config.work_dir)?;
    let mut rows = Vec::new();
    for clip in &config.clips {
        let clip_name = clip
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (frames, rate) = reference_frames(clip, config.frames)?;
        let pixels = frames.len() as f64 * f64::from(frames[0].width) * f64::from(frames[0].height);
        let reference_path = config.work_dir.join(format!("{clip_name}-reference.mkv"));
        write_reference(&frames, rate, &reference_path).map_err(|cause| EvalError::Video {
            clip: clip_name.clone(),
            cause,
        })?;
        for codec in &codecs {
            let name = codec.name();
            // A per-title PCA is fitted here, on the clip's own frames.
            let pca = match codec {
                Codec::PcaTitle { block } => {
                    let all: Vec<f32> = frames.iter().flat_map(|f| patches(f, *block)).collect();
                    let info = TrainingInfo {
                        clips: vec![clip.display().to_string()],
                        frames: frames.len() as u64,
                        ..Default::default()
                    };
                    Some(Arc::new(PcaModel::fit(*block, &all, info)))
                }
                Codec::Pca { model, .. } => Some(model.clone()),
                _ => None,
            };
            let models = decoder_models(codec, pca.as_ref());
            for (label, setting) in codec.settings() {
                let out = config.work_dir.join(format!("{clip_name}-{name}-{label}"));
                let point = |cause: PointError| EvalError::Point {
                    clip: clip_name.clone(),
                    codec: name.clone(),
                    setting: label.clone(),
                    cause: Box::new(cause),
                };
                let (coded, model_bytes) = match (codec, setting, &pca) {
                    (Codec::Classic(c), Setting::Classic(arg), _) => {
                        (c.run(&reference_path, arg, &out).map_err(point)?, 0)
                    }
                    (_, setting, pca) => {
                        let (spec, prediction) = match (codec, setting, pca) {
                            (
                                Codec::Learned {
                                    models, prediction, ..
                                },
                                Setting::LearnedModel(i, detail_step, latent_step),
                                _,
                            ) => (
                                CoderSpec::Learned {
                                    model: models[i].clone(),
                                    detail_step,
                                    latent_step,
                                    policy: config.policy,
                                    effort: config.effort,
                                },
                                *prediction,
                            ),
                            (_, Setting::PcaStep(step), Some(m)) => (
                                CoderSpec::Pca {
                                    model: m.clone(),
                                    components: m.components,
                                    step,
                                },
                                match codec {
                                    Codec::Pca { prediction, .. } => *prediction,
                                    _ => Prediction::IntraOnly,
                                },
                            ),
                            (_, Setting::PixelStep(step), _) => {
                                (CoderSpec::Pixel { step }, Prediction::IntraOnly)
                            }
                            (
                                Codec::Levels {
                                    prediction, policy, ..
                                },
                                Setting::Level(q),
                                _,
                            ) => (
                                builtin::level(q)
                                    .map_err(|e| point(PointError::BuiltIn(e)))?
                                    .with_policy(*policy)
                                    .with_effort(config.effort),
                                *prediction,
                            ),
                            _ => unreachable!("settings come from their codec"),
                        };
                        let path = out.with_extension("aez");
                        let coded =
                            code_with(&spec, &frames, rate, prediction.gop(rate), &path, &models)
                                .map_err(|e| point(e.into()))?;
                        (coded, spec.model_bytes())
                    }
                };
                let (psnr_rgb, ms_ssim) = quality(&frames, &coded.decoded).map_err(point)?;
                let row = EvalRow {
                    clip: clip_name.clone(),
                    codec: codec.row_codec(&label),
                    setting: label,
                    bpp: coded.bytes as f64 * 8.0 / pixels,
                    psnr_rgb,
                    ms_ssim,
                    encode_s: coded.encode_s,
                    decode_s: coded.decode_s,
                    bytes: coded.bytes,
                    model_bytes,
                };
                progress(&row);
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::learned::LearnedModel;
    use crate::registry::builtin;

    #[test]
    fn learned_settings_are_named_by_quality_and_by_id_where_qualities_repeat() {
        let (q1, q3) = (builtin::model(1).unwrap(), builtin::model(3).unwrap());
        let learned = |models: Vec<Arc<LearnedModel>>| Codec::Learned {
            name: "learned".into(),
            detail_steps: Vec::new(),
            latent_steps: vec![LatentStep::UNIT, LatentStep::from_index(150)],
            models,
            prediction: Prediction::IntraOnly,
        };
        let labels = |codec: &Codec| -> Vec<String> {
            codec
                .settings()
                .into_iter()
                .map(|(label, _)| label)
                .collect()
        };
        assert_eq!(labels(&learned(vec![q1.clone(), q3.clone()])), ["q1", "q3"]);
        // Another model of quality 3 (the same weights, another lambda: another id).
        let mut info = q3.info.clone();
        info.lambda *= 2.0;
        let other = Arc::new(
            LearnedModel::from_bytes(&LearnedModel::file_bytes_for(&info, &q3.weights)).unwrap(),
        );
        let short = |m: &LearnedModel| m.id.hex()[..8].to_string();
        let ab = learned(vec![q1, q3.clone(), other.clone()]);
        assert_eq!(
            labels(&ab),
            [
                "q1".to_string(),
                format!("q3-{}", short(&q3)),
                format!("q3-{}", short(&other))
            ]
        );
        // Each model of an A/B run is a codec of its own, whatever its step or detail layer.
        assert_eq!(ab.row_codec("q1@1.989"), "learned");
        let a = format!("learned q3-{}", short(&q3));
        assert_eq!(ab.row_codec(&format!("q3-{}", short(&q3))), a);
        assert_eq!(ab.row_codec(&format!("q3-{}@1.989+d64", short(&q3))), a);
    }
}
