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

use crate::coders::pca::{patches, PcaModel};
use crate::coders::CoderSpec;
use crate::container::{ContainerReader, ContainerWriter, Rational};
use crate::learned::LearnedModel;
use crate::metrics::{ms_ssim, PsnrAccumulator};
use crate::model_file::{Model, ModelStore, TrainingInfo};
use crate::pipeline::{FrameDecoder, FrameEncoder};
use crate::video::{create_writer, OutputFormat, VideoReader};
use crate::RgbFrame;

/// Why an evaluation could not run.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("unknown codec {0:?}; choose from {CODECS}")]
    UnknownCodec(String),
    #[error("{0} needs a model of its kind (--model)")]
    NeedsModel(String),
    #[error("{clip}: {cause}")]
    Clip { clip: String, cause: String },
    #[error("ffmpeg {codec} at {setting}: {cause}")]
    Ffmpeg {
        codec: String,
        setting: String,
        cause: String,
    },
    #[error(transparent)]
    Io(#[from] std::io::Error),
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
}

/// A codec and the settings it is run at.
enum Codec {
    Pixel,
    /// `gop` 1 is intra-only; larger codes predicted frames between intra frames.
    Pca {
        name: String,
        model: Arc<PcaModel>,
        gop: u32,
    },
    PcaTitle {
        block: u8,
    },
    /// Learned models, one per setting (ordered by quality); `gop` as for PCA.
    Learned {
        name: String,
        models: Vec<Arc<LearnedModel>>,
        gop: u32,
    },
    Classic(classic::Classic),
}

impl Codec {
    fn name(&self) -> String {
        match self {
            Codec::Pixel => "pixel".into(),
            Codec::Pca { name, .. } => name.clone(),
            Codec::PcaTitle { block } => format!("pca{block}-title"),
            Codec::Learned { name, .. } => name.clone(),
            Codec::Classic(c) => c.name().into(),
        }
    }

    fn settings(&self) -> Vec<String> {
        let list: &[&str] = match self {
            Codec::Pixel => &["2", "4", "8", "16"],
            Codec::Pca { .. } | Codec::PcaTitle { .. } => {
                &["2", "4", "8", "16", "32", "64", "128", "256", "512"]
            }
            Codec::Classic(c) => c.settings(),
            Codec::Learned { models, .. } => {
                // Named by quality; two models of one quality (an A/B run) also by their ids,
                // so that neither their rows nor their work files run together.
                let shared = |q: u8| models.iter().filter(|m| m.info.quality == q).count() > 1;
                return models
                    .iter()
                    .map(|m| match m.info.quality {
                        q if shared(q) => format!("q{q}-{}", &hex::encode(m.id)[..8]),
                        q => format!("q{q}"),
                    })
                    .collect();
            }
        };
        list.iter().map(|s| s.to_string()).collect()
    }
}

fn parse_codecs(config: &EvalConfig) -> Result<Vec<Codec>, EvalError> {
    let mut models = Vec::new();
    let mut learned = Vec::new();
    for p in &config.models {
        match Model::load(p).map_err(|e| EvalError::Clip {
            clip: p.display().to_string(),
            cause: e.to_string(),
        })? {
            Model::Pca(m) => models.push(m),
            Model::Learned(m) => learned.push(m),
        }
    }
    learned.sort_by_key(|m| m.info.quality);
    config
        .codecs
        .iter()
        .map(|name| {
            Ok(match name.as_str() {
                "pixel" => Codec::Pixel,
                "pca8" | "pca16" | "pca8-p" | "pca16-p" => {
                    let predicted = name.ends_with("-p");
                    let block: u8 = name[3..].trim_end_matches("-p").parse().expect("digits");
                    let model = models
                        .iter()
                        .find(|m| m.block == block)
                        .ok_or_else(|| EvalError::NeedsModel(name.clone()))?;
                    Codec::Pca {
                        name: name.clone(),
                        // Predicted: the container's default GOP (about 2 s).
                        gop: if predicted { 0 } else { 1 },
                        model: model.clone(),
                    }
                }
                "pca8-title" => Codec::PcaTitle { block: 8 },
                "learned" | "learned-p" => {
                    if learned.is_empty() {
                        return Err(EvalError::NeedsModel(name.clone()));
                    }
                    Codec::Learned {
                        name: name.clone(),
                        models: learned.clone(),
                        gop: if name.ends_with("-p") { 0 } else { 1 },
                    }
                }
                other => Codec::Classic(
                    classic::Classic::parse(other)
                        .ok_or_else(|| EvalError::UnknownCodec(other.into()))?,
                ),
            })
        })
        .collect()
}

/// The reference frames of a clip, and its frame rate.
pub fn reference_frames(clip: &Path, max: usize) -> Result<(Vec<RgbFrame>, Rational), EvalError> {
    let err = |e: crate::video::VideoError| EvalError::Clip {
        clip: clip.display().to_string(),
        cause: e.to_string(),
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
        return Err(EvalError::Clip {
            clip: clip.display().to_string(),
            cause: "no frames".into(),
        });
    }
    Ok((frames, rate))
}

/// Measures decoded frames against the reference.
fn quality(reference: &[RgbFrame], decoded: &[RgbFrame]) -> Result<(f64, f64), String> {
    if decoded.len() != reference.len() {
        return Err(format!(
            "decoded {} frames of {}",
            decoded.len(),
            reference.len()
        ));
    }
    let mut acc = PsnrAccumulator::default();
    let mut ssim = 0.0;
    for (r, d) in reference.iter().zip(decoded) {
        if (r.width, r.height) != (d.width, d.height) {
            return Err(format!(
                "decoded size {}x{} differs from {}x{}",
                d.width, d.height, r.width, r.height
            ));
        }
        acc.add(r, d);
        ssim += ms_ssim(r, d);
    }
    Ok((acc.psnr(), ssim / reference.len() as f64))
}

/// Encodes frames to an `.aez` file with our coder, then decodes that file.
pub fn code_with(
    spec: &CoderSpec,
    frames: &[RgbFrame],
    rate: Rational,
    gop: u32,
    path: &Path,
    models: &ModelStore,
) -> Result<(u64, Vec<RgbFrame>, f64, f64), String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    let start = Instant::now();
    let (w, h) = (frames[0].width, frames[0].height);
    let mut encoder = FrameEncoder::new(spec, w, h, rate, gop);
    let file = File::create(path).map_err(|e| s(&e))?;
    let mut writer =
        ContainerWriter::new(BufWriter::new(file), encoder.header().clone()).map_err(|e| s(&e))?;
    for (i, f) in frames.iter().enumerate() {
        let coded = encoder.encode(f).map_err(|e| s(&e))?;
        writer
            .write_packet(coded.frame_type, i as i64, &coded.payload)
            .map_err(|e| s(&e))?;
    }
    writer.finish().map_err(|e| s(&e))?;
    let encode_s = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(path).map_err(|e| s(&e))?.len();
    let start = Instant::now();
    let mut reader = ContainerReader::new(BufReader::new(File::open(path).map_err(|e| s(&e))?))
        .map_err(|e| s(&e))?;
    let mut decoder = FrameDecoder::new(reader.header(), models).map_err(|e| s(&e))?;
    let mut decoded = Vec::with_capacity(frames.len());
    while let Some(p) = reader.next_packet().map_err(|e| s(&e))? {
        decoded.push(decoder.decode(&p).map_err(|e| s(&e))?);
    }
    Ok((bytes, decoded, encode_s, start.elapsed().as_secs_f64()))
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
        // A lossless copy of the reference for ffmpeg to read.
        let reference_path = config.work_dir.join(format!("{clip_name}-reference.mkv"));
        {
            let mut sink = create_writer(
                OutputFormat::Ffv1Mkv,
                &reference_path,
                frames[0].width,
                frames[0].height,
                rate,
            )
            .map_err(|e| EvalError::Clip {
                clip: clip_name.clone(),
                cause: e.to_string(),
            })?;
            for f in &frames {
                sink.write_frame(f).map_err(|e| EvalError::Clip {
                    clip: clip_name.clone(),
                    cause: e.to_string(),
                })?;
            }
            sink.finish().map_err(|e| EvalError::Clip {
                clip: clip_name.clone(),
                cause: e.to_string(),
            })?;
        }
        for codec in &codecs {
            let name = codec.name();
            let (spec_model, model_bytes) = match codec {
                Codec::PcaTitle { block } => {
                    let all: Vec<f32> = frames.iter().flat_map(|f| patches(f, *block)).collect();
                    let info = TrainingInfo {
                        clips: vec![clip.display().to_string()],
                        frames: frames.len() as u64,
                        ..Default::default()
                    };
                    let m = Arc::new(PcaModel::fit(*block, &all, info));
                    let bytes = m.file_bytes;
                    (Some(m), bytes)
                }
                Codec::Pca { model, .. } => (Some(model.clone()), model.file_bytes),
                // Learned models are one per setting, each with its own size (below).
                _ => (None, 0),
            };
            let mut models = ModelStore::new();
            if let Some(m) = &spec_model {
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
            for (setting_index, setting) in codec.settings().into_iter().enumerate() {
                let out = config
                    .work_dir
                    .join(format!("{clip_name}-{name}-{setting}"));
                let fail = |cause: String| EvalError::Clip {
                    clip: clip_name.clone(),
                    cause: format!("{name} at {setting}: {cause}"),
                };
                let (bytes, decoded, encode_s, decode_s) = match codec {
                    Codec::Classic(c) => c.run(&reference_path, &setting, &out)?,
                    _ => {
                        let spec = match (codec, &spec_model) {
                            (Codec::Learned { models, .. }, _) => CoderSpec::Learned {
                                model: models[setting_index].clone(),
                            },
                            (_, Some(m)) => CoderSpec::Pca {
                                model: m.clone(),
                                components: m.components,
                                step: setting.parse().expect("numeric setting"),
                            },
                            (_, None) => CoderSpec::Pixel {
                                step: setting.parse().expect("numeric setting"),
                            },
                        };
                        let gop = match codec {
                            Codec::Pca { gop: 0, .. } | Codec::Learned { gop: 0, .. } => {
                                crate::pipeline::default_gop(rate)
                            }
                            Codec::Pca { gop, .. } | Codec::Learned { gop, .. } => *gop,
                            _ => 1,
                        };
                        code_with(
                            &spec,
                            &frames,
                            rate,
                            gop,
                            &out.with_extension("aez"),
                            &models,
                        )
                        .map_err(fail)?
                    }
                };
                let (psnr_rgb, ms_ssim) = quality(&frames, &decoded).map_err(fail)?;
                let model_bytes = match codec {
                    Codec::Learned { models, .. } => models[setting_index].file_bytes,
                    _ => model_bytes,
                };
                let row = EvalRow {
                    clip: clip_name.clone(),
                    codec: name.clone(),
                    setting,
                    bpp: bytes as f64 * 8.0 / pixels,
                    psnr_rgb,
                    ms_ssim,
                    encode_s,
                    decode_s,
                    bytes,
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
    use crate::learned::{defaults, LearnedModel};

    #[test]
    fn learned_settings_are_named_by_quality_and_by_id_where_qualities_repeat() {
        let (q1, q3) = (defaults::model(1).unwrap(), defaults::model(3).unwrap());
        let learned = |models: Vec<Arc<LearnedModel>>| Codec::Learned {
            name: "learned".into(),
            models,
            gop: 1,
        };
        assert_eq!(
            learned(vec![q1.clone(), q3.clone()]).settings(),
            ["q1", "q3"]
        );
        // Another model of quality 3 (the same weights, another lambda: another id).
        let mut info = q3.info.clone();
        info.lambda *= 2.0;
        let other = Arc::new(
            LearnedModel::from_bytes(&LearnedModel::file_bytes_for(&info, &q3.weights)).unwrap(),
        );
        let short = |m: &LearnedModel| hex::encode(m.id)[..8].to_string();
        assert_eq!(
            learned(vec![q1, q3.clone(), other.clone()]).settings(),
            [
                "q1".to_string(),
                format!("q3-{}", short(&q3)),
                format!("q3-{}", short(&other))
            ]
        );
    }
}
