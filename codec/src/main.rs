//! `aecodec`: encode any video to `.aez`, decode it back, and inspect files.

// The synthesis allocates large feature maps for every frame; mimalloc reuses that memory
// where glibc hands it back to the kernel and faults it in again (measured: +18-40 % synthesis
// frames/s with `aecodec bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// `println!` that reports a closed standard output as an error (which `main` treats as a
/// quiet exit: `aecodec bench | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

use aecodec::container::{ContainerReader, ContainerWriter, FileStats, SeekableReader};
use aecodec::ladder::{default_ladder, Manifest, RenditionFile, RenditionSpec};
use aecodec::learned::LatentStep;
use aecodec::output::{check_output, AtomicFile, StagedDir};
use aecodec::pipeline::{decode_stream, encode_stream, FrameDecoder, FrameEncoder, StreamError};
use aecodec::ratecontrol::{encode_stream_at_rate, RateTarget};
use aecodec::registry::{CoderSpec, Model, ModelStore};
use aecodec::video::{open_output, VideoReader};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use serde::Serialize;

#[derive(Parser)]
#[command(
    name = "aecodec",
    version,
    about = "A learned video codec: encode videos to .aez, decode them, inspect them"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Encode a video (anything FFmpeg reads) to an .aez file.
    Encode {
        /// Input video: mp4, mkv, mov, avi, y4m, ...
        input: PathBuf,
        /// Output .aez file (written atomically: it appears only when complete).
        #[arg(short, long)]
        output: PathBuf,
        /// Model file to code with: a learned model (`aetrain train`/`finetune`) or a PCA
        /// model (`aetrain pca`). Without one, the built-in learned model of --quality is used.
        #[arg(long, conflicts_with = "pixel")]
        model: Option<PathBuf>,
        /// Quality level of the built-in coder: 1 (smallest files, the learned codec alone) to
        /// 7 (best looking); levels 2 and up add a detail layer over the learned picture.
        #[arg(short, long, default_value_t = aecodec::registry::builtin::DEFAULT_QUALITY,
              value_parser = clap::value_parser!(u8).range(1..=aecodec::registry::builtin::LEVELS as i64),
              conflicts_with = "model")]
        quality: u8,
        /// Add a detail layer at this quantizer step (1 to 255; smaller is better looking and
        /// larger) to a learned --model, or, without one, to the levels' built-in model: the
        /// levels' steps are 64 (level 2) to 10 (level 7); 90 and 128 go below level 2.
        #[arg(long, conflicts_with_all = ["quality", "pixel"])]
        detail_step: Option<f32>,
        /// Use the built-in pixel coder (quantized pixels, no model; --step 1 is lossless).
        #[arg(long)]
        pixel: bool,
        /// Quantizer step: larger is smaller and coarser. Pixel coder: an integer 1..=64
        /// (1 is lossless, default 4). PCA: any positive number (default 8). A learned model
        /// of the shallow kind: its latent's step, 0.02 to 50 (1, the default, codes at the
        /// rate it was trained for).
        #[arg(long)]
        step: Option<f32>,
        /// PCA components to keep (default: all the model has).
        #[arg(long)]
        components: Option<u16>,
        /// Encode at most this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// An intra frame (where playback and seeking can start) at least every N frames;
        /// frames between are predicted from the one before. Default: about 2 seconds.
        /// The pixel coder writes intra frames only.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        gop: Option<u32>,
        /// Code every frame as an intra frame (the same as --gop 1).
        #[arg(long, conflicts_with = "gop")]
        intra_only: bool,
        /// Average bitrate to hold over the file (its real size), such as 600k or 1.5M bits/s.
        /// Each group of pictures gets one of the quality levels (the built-in learned models,
        /// or 16 steps of a PCA --model): it is coded at the level of the group before, then
        /// one level up or down at a time while that comes nearer the target, and the nearest
        /// is written. Encoding takes 2 to 3 passes.
        #[arg(long, value_parser = aecodec::ratecontrol::parse_rate,
              conflicts_with_all = ["quality", "step", "pixel"])]
        bitrate: Option<f64>,
        /// With --bitrate: a peak rate (bits/s) that a player's buffer of --bufsize is filled
        /// at; no group of pictures may need more (x264's --vbv-maxrate).
        #[arg(long, value_parser = aecodec::ratecontrol::parse_rate, requires = "bitrate")]
        maxrate: Option<f64>,
        /// With --maxrate: the player's buffer in bits (default: one second at --maxrate).
        #[arg(long, value_parser = aecodec::ratecontrol::parse_rate, requires = "maxrate")]
        bufsize: Option<f64>,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Encode a ladder of renditions for adaptive streaming: one .aez per size and bitrate
    /// (rate-controlled, intra frames at the same times in all) and DIR/manifest.json with
    /// every segment's byte range (docs/FORMAT.md). Any static HTTP server can serve DIR.
    Ladder {
        /// Input video.
        input: PathBuf,
        /// Output directory (created if missing).
        #[arg(short, long)]
        output: PathBuf,
        /// Renditions as WIDTHxHEIGHT@BITRATE, comma-separated. Default: 640x360@400k,
        /// 960x540@900k and 1280x720@1800k, those not taller than the source (widths keep
        /// its aspect ratio); a smaller source gets one rendition at its own size.
        #[arg(long)]
        renditions: Option<String>,
        /// Frames per segment (group of pictures). Default: about 2 seconds.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        gop: Option<u32>,
        /// Encode at most this many frames.
        #[arg(long)]
        frames: Option<u64>,
        /// Replace existing renditions and manifest.
        #[arg(long)]
        force: bool,
    },
    /// Decode an .aez file to video: .y4m, .mkv (lossless FFV1), .mp4 (x264), or - for y4m on stdout.
    Decode {
        /// Input .aez file.
        input: PathBuf,
        /// Output video; the extension picks the format. `-` writes y4m to stdout.
        #[arg(short, long)]
        output: PathBuf,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
        /// Exit non-zero when the file is damaged or truncated (frames before the damage are
        /// still written).
        #[arg(long)]
        strict: bool,
        /// A model file to decode with (repeatable); the model cache
        /// ($AECODEC_MODELS or ~/.cache/aecodec/models) is searched too.
        #[arg(long)]
        model: Vec<PathBuf>,
    },
    /// Measure rate–distortion: every codec at several settings on each clip; rates are real
    /// file sizes, quality is RGB PSNR and MS-SSIM of frames decoded from those files.
    /// Writes results.csv, summary.md (BD-rate, bpp at 32/36/40 dB) and rd.svg.
    Eval {
        /// Clips to evaluate on.
        #[arg(required = true)]
        clips: Vec<PathBuf>,
        /// Directory for the report (created if missing).
        #[arg(long, default_value = "report")]
        out: PathBuf,
        /// Frames per clip, from the start.
        #[arg(long, default_value_t = 30)]
        frames: usize,
        /// Codecs to run, comma-separated: learned (the learned models, intra only),
        /// learned-p (with predicted frames, 2 s GOP), pixel, pca8, pca16 (intra only), pca8-p,
        /// pca16-p (predicted frames), pca8-title (fitted on the clip), jpeg, x264, x264-intra,
        /// x265.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "learned,learned-p,pca8,pca8-p,pca16,pca16-p,pca8-title,jpeg,x264-intra,x264,x265"
        )]
        codecs: Vec<String>,
        /// Generic PCA model files for pca8/pca16 (repeatable).
        #[arg(long, default_values = ["samples/models/pca8.model", "samples/models/pca16.model"])]
        pca_model: Vec<PathBuf>,
        /// Learned model files for learned/learned-p, one setting each (repeatable). The default,
        /// with the default --detail-steps, runs every built-in quality level and two more.
        #[arg(long, default_value = aecodec::registry::builtin::LADDER_PATH)]
        learned_model: Vec<PathBuf>,
        /// Also run every learned model with a detail layer at each of these quantizer steps
        /// (comma-separated, 1 to 255; labelled q<N>+d<step>; 0 for none). The default is the
        /// levels' steps (64 to 10) and two coarser ones that `encode --detail-step` reaches.
        #[arg(long, value_delimiter = ',',
              default_values_t = aecodec::registry::builtin::EVAL_DETAIL_STEPS)]
        detail_steps: Vec<f32>,
        /// Latent steps a learned model of the shallow kind runs at, one setting each
        /// (comma-separated, 0.02 to 50; its `--step`), labelled q<N>@<step>.
        #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_EVAL_LATENT_STEPS)]
        latent_steps: Vec<f32>,
        /// The codec BD-rates are measured against.
        #[arg(long, default_value = "jpeg")]
        reference: String,
    },
    /// Measure decode speed: frames/s of container reading, entropy decoding and synthesis
    /// (medians over runs), peak memory, and FFmpeg's x264 decoding the same content.
    Bench {
        /// The .aez file (default: samples/bikes.mp4 encoded with the default learned model).
        input: Option<PathBuf>,
        /// A model file to decode with (repeatable).
        #[arg(long)]
        model: Vec<PathBuf>,
        /// Runs to take the median of.
        #[arg(long, default_value_t = 5)]
        runs: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show an .aez file's header, frame count, sizes and bitrate.
    Info {
        /// The .aez file.
        input: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A second signal while the first is being handled ends the process at once.
    aecodec::output::handle_interrupts(true);
    let result = match cli.command {
        Command::Encode {
            input,
            output,
            model,
            quality,
            detail_step,
            pixel,
            step,
            components,
            frames,
            force,
            gop,
            intra_only,
            bitrate,
            maxrate,
            bufsize,
        } => match bitrate {
            None => coder_spec(
                model.as_deref(),
                pixel,
                quality,
                step,
                components,
                detail_step,
            )
            .map(|spec| EncodePlan::Fixed(Box::new(spec))),
            Some(bitrate) => {
                rate_tools(model.as_deref(), components).map(|tools| EncodePlan::AtRate {
                    tools,
                    target: RateTarget {
                        bitrate,
                        maxrate,
                        bufsize,
                    },
                })
            }
        }
        .and_then(|plan| {
            let options = EncodeOptions {
                frames,
                gop: if intra_only { Some(1) } else { gop },
                size: None,
                force,
            };
            encode(&input, &output, &plan, &options)
        })
        .and_then(|()| {
            outln!("{}", output.display());
            Ok(ExitCode::SUCCESS)
        }),
        Command::Decode {
            input,
            output,
            force,
            strict,
            model,
        } => decode(&input, &output, &model, force, strict),
        Command::Ladder {
            input,
            output,
            renditions,
            gop,
            frames,
            force,
        } => renditions
            .as_deref()
            .map(aecodec::ladder::parse_renditions)
            .transpose()
            .map_err(|e| anyhow::anyhow!("--renditions: {e}"))
            .and_then(|renditions| {
                ladder(
                    &input,
                    &output,
                    renditions,
                    &EncodeOptions {
                        frames,
                        gop,
                        size: None,
                        force,
                    },
                )
            })
            .map(|()| ExitCode::SUCCESS),
        Command::Info { input, json } => info(&input, json).map(|()| ExitCode::SUCCESS),
        Command::Bench {
            input,
            model,
            runs,
            json,
        } => bench(input, &model, runs, json).map(|()| ExitCode::SUCCESS),
        Command::Eval {
            clips,
            out,
            frames,
            codecs,
            pca_model,
            learned_model,
            detail_steps,
            latent_steps,
            reference,
        } => eval(
            clips,
            &out,
            frames,
            codecs,
            [pca_model, learned_model],
            [detail_steps, latent_steps],
            &reference,
        )
        .map(|()| ExitCode::SUCCESS),
    };
    result.unwrap_or_else(|e| {
        // The reader of our standard output went away (`| head`): nothing to report.
        if aecodec::video::is_broken_pipe(e.as_ref()) {
            return ExitCode::SUCCESS;
        }
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

/// The latent steps `eval` runs a shallow learned model at by default: half to four times the
/// trained step, about 1.4x apart.
const DEFAULT_EVAL_LATENT_STEPS: [f32; 7] = [0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0];

/// The latent steps `encode --step` takes for a learned model (the grid's ends, e^±4, are
/// just beyond).
const LATENT_STEPS: std::ops::RangeInclusive<f32> = 0.02..=50.0;

/// The coder `encode` uses: the model given, the pixel coder, or the built-in learned model.
fn coder_spec(
    model: Option<&Path>,
    pixel: bool,
    quality: u8,
    step: Option<f32>,
    components: Option<u16>,
    detail_step: Option<f32>,
) -> Result<CoderSpec> {
    if let Some(s) = detail_step {
        let (min, max) = (
            aecodec::coders::detail::MIN_STEP,
            aecodec::coders::detail::MAX_STEP,
        );
        if !(min..=max).contains(&s) {
            bail!("--detail-step must be from {min} to {max}, got {s}");
        }
    }
    if let Some(s) = step {
        if !(s.is_finite() && s > 0.0) {
            bail!("--step must be a positive number, got {s}");
        }
    }
    if model.is_none() && !pixel {
        if step.is_some() || components.is_some() {
            bail!("--step and --components need --pixel or a PCA --model; the built-in learned models take --quality");
        }
        let spec = match detail_step {
            Some(_) => aecodec::registry::builtin::ladder(detail_step),
            None => aecodec::registry::builtin::level(quality),
        };
        return spec.context("loading the built-in model");
    }
    let Some(path) = model else {
        let step = step.unwrap_or(4.0);
        if step.fract() != 0.0 || !(1.0..=64.0).contains(&step) {
            bail!("the pixel coder's --step is an integer from 1 to 64, got {step}");
        }
        if components.is_some() {
            bail!("--components needs a PCA --model");
        }
        return Ok(CoderSpec::Pixel { step: step as u8 });
    };
    let model = Model::load(path).with_context(|| format!("loading model {}", path.display()))?;
    match &model {
        Model::Pca(m) => {
            if detail_step.is_some() {
                bail!("--detail-step adds a detail layer to a learned model, not to a PCA one");
            }
            let params = aecodec::container::CodingParams::Pca {
                block: m.block,
                components: components.unwrap_or(m.components),
                step: step.unwrap_or(8.0),
            };
            Ok(model.coder(params)?)
        }
        Model::Learned(m) => {
            if components.is_some() || (step.is_some() && !m.has_latent_step()) {
                bail!("--step and --components are for PCA models and learned models of the shallow kind; this learned model's quality is fixed by its training (add a detail layer with --detail-step)");
            }
            let latent_step = match step {
                Some(s) if !(LATENT_STEPS.contains(&s)) => bail!(
                    "a learned model's --step is from {} to {}, got {s}",
                    LATENT_STEPS.start(),
                    LATENT_STEPS.end()
                ),
                Some(s) => LatentStep::nearest(f64::from(s)).expect("a positive step"),
                None => LatentStep::UNIT,
            };
            Ok(CoderSpec::Learned {
                model: m.clone(),
                detail_step,
                latent_step,
            })
        }
    }
}

fn progress_bar(len: Option<u64>, what: &str) -> ProgressBar {
    let bar = match len {
        Some(n) => ProgressBar::new(n),
        None => ProgressBar::no_length(),
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{elapsed_precise}] {wide_bar} {pos}/{len} frames ({per_sec}, eta {eta})",
        )
        .expect("valid template"),
    );
    bar.set_message(what.to_string());
    bar
}

/// A stream the user stopped (Ctrl-C, SIGTERM) is not an error worth a cause chain.
fn stream_error<E: std::error::Error + Send + Sync + 'static>(e: StreamError<E>) -> anyhow::Error {
    match e {
        StreamError::Stopped(_) => anyhow::anyhow!("interrupted; no output was written"),
        e => anyhow::Error::new(e),
    }
}

/// Stops a stream at Ctrl-C or SIGTERM; the unfinished output's temporary file is removed
/// ([`aecodec::output::handle_interrupts`]).
fn until_interrupted(bar: &ProgressBar) -> ControlFlow<()> {
    bar.inc(1);
    if aecodec::output::interrupted() {
        ControlFlow::Break(())
    } else {
        ControlFlow::Continue(())
    }
}

/// How `encode` codes: with one coder, or at a bitrate, choosing among several per group of
/// pictures.
enum EncodePlan {
    Fixed(Box<CoderSpec>),
    AtRate {
        tools: Vec<CoderSpec>,
        target: RateTarget,
    },
}

/// The tools rate control chooses among: the built-in learned models, lowest quality first,
/// or a ladder of quantizer steps of a PCA model.
fn rate_tools(model: Option<&Path>, components: Option<u16>) -> Result<Vec<CoderSpec>> {
    let Some(path) = model else {
        if components.is_some() {
            bail!("--components needs a PCA --model");
        }
        return (1..=aecodec::registry::builtin::LEVELS)
            .map(|q| aecodec::registry::builtin::level(q).context("loading the built-in models"))
            .collect();
    };
    let model = Model::load(path).with_context(|| format!("loading model {}", path.display()))?;
    let Model::Pca(m) = &model else {
        bail!("--bitrate switches between models or steps: it takes the built-in learned models or a PCA --model, not one learned model");
    };
    // Steps from 4 to 724, a factor of sqrt(2) apart: coarsest (smallest files) first.
    (0..aecodec::container::MAX_TOOLS as i32)
        .rev()
        .map(|k| {
            let params = aecodec::container::CodingParams::Pca {
                block: m.block,
                components: components.unwrap_or(m.components),
                step: 2f32.powf(2.0 + k as f32 / 2.0),
            };
            Ok(model.coder(params)?)
        })
        .collect()
}

/// What `encode` does beside choosing coders.
#[derive(Default)]
struct EncodeOptions {
    /// Encode at most this many frames.
    frames: Option<u64>,
    /// Frames per group of pictures (default about 2 s).
    gop: Option<u32>,
    /// Scale frames to this size first.
    size: Option<(u32, u32)>,
    /// Replace an existing output.
    force: bool,
}

/// Encodes `input` to `output`.
fn encode(input: &Path, output: &Path, plan: &EncodePlan, options: &EncodeOptions) -> Result<()> {
    let max_frames = options.frames;
    check_output(output, &[input], options.force)?;
    if let EncodePlan::AtRate { target, .. } = plan {
        target.validate()?;
    }
    let mut reader = VideoReader::open(input)?;
    if let Some((w, h)) = options.size {
        reader.scale_to(w, h);
    }
    let info = *reader.info();
    let gop = options
        .gop
        .unwrap_or_else(|| aecodec::pipeline::default_gop(info.frame_rate));
    let tools = match plan {
        EncodePlan::Fixed(spec) => std::slice::from_ref(spec.as_ref()),
        EncodePlan::AtRate { tools, .. } => tools.as_slice(),
    };
    let mut encoder =
        FrameEncoder::with_tools(tools, info.width, info.height, info.frame_rate, gop)?;
    let mut file = AtomicFile::create(output)?;
    let mut writer = ContainerWriter::new(BufWriter::new(file.file()), encoder.header().clone())?;
    let total = match (info.frame_count_hint, max_frames) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let bar = progress_bar(total, "encoding");
    let start = Instant::now();
    let (frames, report) = match plan {
        EncodePlan::Fixed(_) => {
            let frames = encode_stream(
                &mut reader,
                &mut encoder,
                &mut writer,
                max_frames,
                |_, _| until_interrupted(&bar),
            )
            .map_err(stream_error)?;
            (frames, None)
        }
        EncodePlan::AtRate { target, .. } => {
            let report = encode_stream_at_rate(
                &mut reader,
                &mut encoder,
                &mut writer,
                max_frames,
                *target,
                |_, _| until_interrupted(&bar),
            )
            .map_err(stream_error)?;
            (report.frames, Some(report))
        }
    };
    bar.finish_and_clear();
    if frames == 0 {
        bail!("{} has no frames to encode", input.display());
    }
    let (_, header) = writer.finish()?;
    file.commit()?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(output)?.len();
    let bpp = bytes as f64 * 8.0 / (frames as f64 * f64::from(header.width * header.height));
    let kbps = bytes as f64 * 8.0 / header.duration_s() / 1000.0;
    eprintln!(
        "encoded {frames} frames of {}x{} in {secs:.1} s ({:.1} fps): {bytes} bytes, {bpp:.3} bits/pixel, {kbps:.0} kbit/s",
        header.width,
        header.height,
        frames as f64 / secs,
    );
    if let (Some(report), EncodePlan::AtRate { target, .. }) = (report, plan) {
        report_rate(&report, target, kbps, &header);
    }
    Ok(())
}

/// Encodes every rendition of a ladder at its bitrate and writes the manifest.
fn ladder(
    input: &Path,
    dir: &Path,
    renditions: Option<Vec<RenditionSpec>>,
    options: &EncodeOptions,
) -> Result<()> {
    let info = *VideoReader::open(input)?.info();
    let specs = renditions.unwrap_or_else(|| default_ladder(info.width, info.height));
    let manifest_path = dir.join("manifest.json");
    check_output(&manifest_path, &[input], options.force)?;
    aecodec::ladder::check_replaceable(dir)?;
    // The whole ladder is written beside `dir` and put in its place at the end: a reader
    // sees the old ladder or the new one, and an interruption leaves the old one as it was.
    let staged = StagedDir::create(dir)?;
    let options = EncodeOptions {
        gop: Some(
            options
                .gop
                .unwrap_or_else(|| aecodec::pipeline::default_gop(info.frame_rate)),
        ),
        ..*options
    };
    let tools = rate_tools(None, None)?;
    let mut files = Vec::with_capacity(specs.len());
    for spec in &specs {
        let file = spec.file_name();
        eprintln!(
            "rendition {file}: {}x{} at {:.0} kbit/s",
            spec.width,
            spec.height,
            spec.bitrate / 1000.0
        );
        let plan = EncodePlan::AtRate {
            tools: tools.clone(),
            target: RateTarget {
                bitrate: spec.bitrate,
                maxrate: None,
                bufsize: None,
            },
        };
        let options = EncodeOptions {
            size: Some((spec.width, spec.height)),
            ..options
        };
        encode(input, &staged.path().join(&file), &plan, &options)?;
        files.push(RenditionFile::read(staged.path(), spec)?);
    }
    let manifest = Manifest::new(files)?;
    let mut out = AtomicFile::create(&staged.path().join("manifest.json"))?;
    {
        let mut w = BufWriter::new(out.file());
        serde_json::to_writer_pretty(&mut w, &manifest)?;
        w.flush()?;
    }
    out.commit()?;
    staged.commit()?;
    outln!("{}", manifest_path.display());
    Ok(())
}

/// Tells how close rate control came and which tools it used.
fn report_rate(
    report: &aecodec::ratecontrol::RateReport,
    target: &RateTarget,
    kbps: f64,
    header: &aecodec::container::Header,
) {
    let asked = target.bitrate / 1000.0;
    eprintln!(
        "rate control: asked {asked:.0} kbit/s, got {kbps:.0} ({:+.1} %); {} trial encodes of {} groups of pictures; groups per tool:",
        (kbps / asked - 1.0) * 100.0,
        report.trials,
        report.group_tools.len()
    );
    for (tool, n) in report
        .groups_per_tool(header.tools.len())
        .iter()
        .enumerate()
    {
        if *n > 0 {
            eprintln!("  {n:>5}  {:?}", header.tools[tool].coding);
        }
    }
    if report.overflows > 0 {
        eprintln!(
            "warning: {} groups of pictures needed more than --maxrate/--bufsize allow even at the lowest quality",
            report.overflows
        );
    }
}

fn decode(
    input: &Path,
    output: &Path,
    models: &[PathBuf],
    force: bool,
    strict: bool,
) -> Result<ExitCode> {
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut reader = ContainerReader::new(BufReader::new(file))
        .with_context(|| format!("reading {}", input.display()))?;
    let header = reader.header().clone();
    let models = ModelStore::with_files(models)?;
    let mut decoder = FrameDecoder::new(&header, &models)?;
    let to_stdout = output.as_os_str() == "-";
    if !to_stdout {
        check_output(output, &[input], force)?;
    }
    let mut sink = open_output(output, header.width, header.height, header.frame_rate)?;
    let bar = progress_bar(Some(u64::from(header.frame_count)), "decoding");
    let start = Instant::now();
    let decoded = decode_stream(&mut reader, &mut decoder, sink.as_mut(), |_| {
        until_interrupted(&bar)
    })
    .map_err(stream_error)?;
    bar.finish_and_clear();
    if let (0, Some(damage)) = (decoded.frames, &decoded.damage) {
        // Nothing to keep: the output is not written.
        bail!("{}: no frame decodes: {damage}", input.display());
    }
    sink.finish()?;
    let (frames, secs) = (decoded.frames, start.elapsed().as_secs_f64());
    eprintln!(
        "decoded {frames} frames in {secs:.1} s ({:.1} fps)",
        frames as f64 / secs
    );
    if let Some(e) = decoded.damage {
        eprintln!(
            "warning: {}: {e}; stopped after {frames} good frames",
            input.display()
        );
        if strict {
            return Ok(ExitCode::from(2));
        }
    }
    if !to_stdout {
        outln!("{}", output.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn eval(
    clips: Vec<PathBuf>,
    out: &Path,
    frames: usize,
    codecs: Vec<String>,
    [pca_models, learned_models]: [Vec<PathBuf>; 2],
    [detail_steps, latent_steps]: [Vec<f32>; 2],
    reference: &str,
) -> Result<()> {
    if let Some(s) = latent_steps.iter().find(|s| !LATENT_STEPS.contains(*s)) {
        bail!(
            "--latent-steps takes steps from {} to {}, got {s}",
            LATENT_STEPS.start(),
            LATENT_STEPS.end()
        );
    }
    let mut latent_steps: Vec<LatentStep> = latent_steps
        .iter()
        .filter_map(|&s| LatentStep::nearest(f64::from(s)))
        .collect();
    latent_steps.dedup();
    use aecodec::eval::{report, run, EvalConfig};
    let detail_steps: Vec<f32> = detail_steps.into_iter().filter(|&s| s != 0.0).collect();
    if let Some(s) = detail_steps.iter().find(|s| {
        !(aecodec::coders::detail::MIN_STEP..=aecodec::coders::detail::MAX_STEP).contains(*s)
    }) {
        bail!(
            "--detail-steps takes steps from {} to {}, got {s}",
            aecodec::coders::detail::MIN_STEP,
            aecodec::coders::detail::MAX_STEP
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let work = tempfile::Builder::new()
        .prefix(".aecodec-eval-")
        .tempdir_in(out)?;
    // Only the models the chosen codecs need must exist.
    let wants_pca = codecs
        .iter()
        .any(|c| c.starts_with("pca") && !c.ends_with("-title"));
    let wants_learned = codecs.iter().any(|c| c.starts_with("learned"));
    let models = pca_models
        .into_iter()
        .filter(|p| wants_pca && p.exists())
        .chain(
            learned_models
                .into_iter()
                .filter(|p| wants_learned && p.exists()),
        )
        .collect();
    let config = EvalConfig {
        clips,
        frames,
        codecs,
        models,
        work_dir: work.path().to_path_buf(),
        detail_steps,
        latent_steps,
    };
    let bar = ProgressBar::no_length();
    bar.set_style(ProgressStyle::with_template(
        "evaluating [{elapsed_precise}] {pos} points {msg}",
    )?);
    let rows = run(&config, |r| {
        bar.set_message(format!(
            "{} {} {}: {:.3} bpp, {:.2} dB",
            r.clip, r.codec, r.setting, r.bpp, r.psnr_rgb
        ));
        bar.inc(1);
    })?;
    bar.finish_and_clear();
    report::write_csv(&rows, &out.join("results.csv"))?;
    let summary = report::summary_markdown(&rows, reference);
    std::fs::write(out.join("summary.md"), &summary)?;
    report::write_plot(&rows, &out.join("rd.svg"))
        .map_err(|e| anyhow::anyhow!("writing the plot: {e}"))?;
    outln!("{summary}");
    eprintln!(
        "wrote {0}/results.csv, {0}/summary.md and {0}/rd.svg",
        out.display()
    );
    Ok(())
}

fn bench(input: Option<PathBuf>, models: &[PathBuf], runs: usize, json: bool) -> Result<()> {
    let work = tempfile::tempdir()?;
    let input = match input {
        Some(p) => p,
        None => {
            let sample = Path::new("samples/bikes.mp4");
            if !sample.exists() {
                bail!("no file given and samples/bikes.mp4 is not here; run from the repository or pass an .aez");
            }
            let out = work.path().join("sample.aez");
            let spec =
                aecodec::registry::builtin::level(aecodec::registry::builtin::DEFAULT_QUALITY)?;
            encode(
                sample,
                &out,
                &EncodePlan::Fixed(Box::new(spec)),
                &EncodeOptions::default(),
            )?;
            out
        }
    };
    let store = ModelStore::with_files(models)?;
    let r = aecodec::bench::bench_file(&input, &store, runs, work.path())?;
    if json {
        outln!("{}", serde_json::to_string_pretty(&r)?);
        return Ok(());
    }
    let opt =
        |v: Option<f64>, unit: &str| v.map_or("n/a".to_string(), |v| format!("{v:.1} {unit}"));
    outln!(
        "file            {} ({} bytes, {}x{}, {} frames)",
        r.file,
        r.file_bytes,
        r.width,
        r.height,
        r.frames
    );
    outln!("runs, threads   {} (median), {}", r.runs, r.threads);
    outln!("container       {:.1} frames/s", r.container_fps);
    outln!("entropy decode  {:.1} frames/s", r.entropy_fps);
    outln!("synthesis       {:.1} frames/s", r.synthesis_fps);
    outln!("total           {:.1} frames/s", r.total_fps);
    outln!(
        "x264 (FFmpeg)   {} on the same frames",
        opt(r.x264_decode_fps, "frames/s")
    );
    outln!("peak memory     {}", opt(r.peak_memory_mib, "MiB"));
    Ok(())
}

/// What `aecodec info` reports: the file's name beside its statistics.
#[derive(Serialize)]
struct InfoReport {
    file: String,
    #[serde(flatten)]
    stats: FileStats,
}

fn info_report(input: &Path) -> Result<InfoReport> {
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let file_bytes = file.metadata()?.len();
    let reader = SeekableReader::new(BufReader::new(file))
        .with_context(|| format!("reading {}", input.display()))?;
    let mut stats = FileStats::of(&reader, file_bytes);
    // Which bytes are whose layer: the packets themselves, front to back.
    let mut packets = ContainerReader::new(BufReader::new(File::open(input)?))
        .with_context(|| format!("reading {}", input.display()))?;
    let header = packets.header().clone();
    while let Ok(Some(packet)) = packets.next_packet() {
        let coding = header
            .tools
            .get(usize::from(packet.tool))
            .map(|t| &t.coding);
        stats.add_packet(aecodec::coders::packet_layers(coding, &packet.payload));
    }
    Ok(InfoReport {
        file: input.display().to_string(),
        stats,
    })
}

fn info(input: &Path, json: bool) -> Result<()> {
    let report = info_report(input)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let r = &report.stats;
    writeln!(out, "file         {} ({} bytes)", report.file, r.file_bytes)?;
    writeln!(
        out,
        "size         {}x{} (coded {}x{})",
        r.width, r.height, r.coded_width, r.coded_height
    )?;
    writeln!(
        out,
        "frames       {} at {} fps ({:.3} fps), {:.2} s, {} intra",
        r.frame_count, r.frame_rate, r.frame_rate_fps, r.duration_s, r.intra_frames
    )?;
    writeln!(out, "color        {}", r.color)?;
    for (i, t) in r.tools.iter().enumerate() {
        let name = if r.tools.len() == 1 {
            String::new()
        } else {
            format!(" {i}")
        };
        writeln!(out, "coding{name:<7}{}", t.coding)?;
        writeln!(
            out,
            "model{name:<8}{} ({} bytes, fetched once)",
            t.model_id, t.model_bytes
        )?;
    }
    writeln!(
        out,
        "latents      {} bytes; container overhead {} bytes",
        r.latent_bytes, r.container_bytes
    )?;
    writeln!(
        out,
        "layers       learned {} bytes ({} of {} frames), detail {} bytes, other {} bytes",
        r.layer_bytes.learned,
        r.learned_frames,
        r.frame_count,
        r.layer_bytes.detail,
        r.layer_bytes.other
    )?;
    writeln!(
        out,
        "per frame    mean {:.0} bytes, min {}, max {}",
        r.bytes_per_frame_mean, r.bytes_per_frame_min, r.bytes_per_frame_max
    )?;
    writeln!(
        out,
        "bitrate      {:.1} kbit/s, {:.4} bits/pixel",
        r.bitrate_kbps, r.bits_per_pixel
    )?;
    Ok(())
}
