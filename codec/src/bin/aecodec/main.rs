//! `aecodec`: encode any video to `.aez`, decode it back, and inspect files.

// The synthesis allocates large feature maps for every frame; mimalloc reuses that memory
// where glibc hands it back to the kernel and faults it in again (measured: +18-40 % synthesis
// frames/s with `aecodec bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

/// `println!` that reports a closed standard output as an error (which `main` treats as a
/// quiet exit: `aecodec bench | head`) instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        writeln!(std::io::stdout().lock(), $($arg)*)?
    };
}

mod coder;
mod decode;
mod encode;
mod info;
mod measure;
mod progress;

use coder::*;
use decode::*;
use encode::*;
use info::*;
use measure::*;
use progress::*;

use aecodec::ratecontrol::RateTarget;
use aecodec::registry::CoderRequest;
use clap::{Parser, Subcommand};

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
        /// Quality of the built-in coder: level 1 (smallest files, the learned codec alone) to
        /// 7 (best looking); levels 2 and up add a detail layer over the learned picture. Any
        /// number between two levels, such as 3.5, codes between them.
        #[arg(short, long, default_value_t = f32::from(aecodec::registry::builtin::DEFAULT_QUALITY),
              value_parser = parse_quality, conflicts_with = "model")]
        quality: f32,
        /// Add a detail layer at this quantizer step (1 to 255; smaller is better looking and
        /// larger) to a learned --model, or, without one, to the levels' built-in model: the
        /// levels' steps are 64 (level 2) to 10 (level 7); 90 and 128 go below level 2.
        #[arg(long, conflicts_with_all = ["quality", "pixel"])]
        detail_step: Option<f32>,
        /// Use the built-in pixel coder (quantized pixels, no model; --step 1 is lossless).
        #[arg(long)]
        pixel: bool,
        /// Let the detail layer code a group of pictures alone where that costs less than the
        /// learned picture under it (the block-transform codec; by default every frame
        /// carries the learned picture).
        #[arg(long, conflicts_with = "pixel")]
        detail_alone: bool,
        /// Code the built-in level's learned picture alone, without the detail layer that
        /// refines it (levels 1 to 7 span the learned model's whole range).
        #[arg(long, conflicts_with_all = ["pixel", "model", "detail_step", "detail_alone"])]
        learned_only: bool,
        /// Encoder effort: refine each intra frame's learned latent with this many gradient
        /// steps against its own rate and distortion (0, the default, keeps the analysis
        /// transform's latent). Decoders need nothing new; encoding an intra frame takes about
        /// one synthesis and its gradient per step.
        #[arg(long, default_value_t = 0, conflicts_with = "pixel",
              value_parser = clap::value_parser!(u16).range(0..=MAX_EFFORT))]
        effort: u16,
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
        /// frames between are predicted. Groups also start where the scene changes.
        /// Default: about 10 seconds (at most 250 frames), 2 seconds with --bitrate.
        /// The pixel coder writes intra frames only.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1000))]
        gop: Option<u32>,
        /// Code every frame as an intra frame (the same as --gop 1).
        #[arg(long, conflicts_with = "gop")]
        intra_only: bool,
        /// Predict every frame from the frames before it only. By default every other
        /// predicted frame is bidirectional (predicted from the frames either side, which
        /// takes fewer bits), so a packet waits for the frame after it: one frame of delay.
        #[arg(long, conflicts_with = "intra_only")]
        low_delay: bool,
        /// Average bitrate to hold over the file (its real size), such as 600k or 1.5M bits/s.
        /// Each group of pictures gets one of the quality levels (with the detail layer, also
        /// four finer steps above level 7, up to near-lossless; or 16 steps of a PCA --model): it is coded at the level of the group before, then
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
        /// Codecs to run, comma-separated: levels (the built-in quality levels, intra only),
        /// levels-p (with predicted frames, as `encode` codes them), detail-alone, detail-alone-p (the levels
        /// with `encode --detail-alone`), learned (the learned models of --learned-model,
        /// intra only), learned-p, pixel, pca8, pca16 (intra only), pca8-p,
        /// pca16-p (predicted frames), pca8-title (fitted on the clip), jpeg, x264, x264-intra,
        /// x265.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "levels,levels-p,pca8,pca8-p,pca16,pca16-p,pca8-title,jpeg,x264-intra,x264,x265"
        )]
        codecs: Vec<String>,
        /// Generic PCA model files for pca8/pca16 (repeatable).
        #[arg(long, default_values = ["samples/models/pca8.model", "samples/models/pca16.model"])]
        pca_model: Vec<PathBuf>,
        /// Learned model files for learned/learned-p, one setting each (repeatable). The default,
        /// with the default --detail-steps, runs every built-in quality level and two more.
        #[arg(long, default_value = aecodec::registry::builtin::LEVELS_PATH)]
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
        /// The codec BD-rates are measured against. Two --learned-model files of one quality
        /// (an A/B run) are codecs of their own, `learned q<N>-<first 8 hex digits of the
        /// id>`, and may be the reference.
        #[arg(long, default_value = "jpeg")]
        reference: String,
        /// Let the detail layer of the learned codecs' models code frames alone where that is
        /// cheaper, as `encode --detail-alone` does.
        #[arg(long)]
        detail_alone: bool,
        /// Refine every learned coder's intra latents with this many gradient steps, as
        /// `encode --effort` does.
        #[arg(long, default_value_t = 0,
              value_parser = clap::value_parser!(u16).range(0..=MAX_EFFORT))]
        effort: u16,
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

/// `--quality`: a number from 1 to the top level.
fn parse_quality(text: &str) -> Result<f32, String> {
    let top = aecodec::registry::builtin::LEVELS;
    text.parse::<f32>()
        .ok()
        .filter(|q| (1.0..=f32::from(top)).contains(q))
        .ok_or_else(|| format!("a quality is a number from 1 to {top}, such as 4 or 3.5"))
}

/// Most gradient steps `--effort` takes.
const MAX_EFFORT: i64 = 1000;

/// Where the encoder puts the learned picture: `--detail-alone` lets it leave it out.
fn policy(detail_alone: bool) -> aecodec::coders::BasePolicy {
    match detail_alone {
        true => aecodec::coders::BasePolicy::Cheapest,
        false => aecodec::coders::BasePolicy::Learned,
    }
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
            detail_alone,
            learned_only,
            effort,
            step,
            components,
            frames,
            force,
            gop,
            intra_only,
            low_delay,
            bitrate,
            maxrate,
            bufsize,
        } => {
            let request = CoderRequest {
                model,
                pixel,
                quality,
                step,
                components,
                detail_step,
                policy: policy(detail_alone),
                learned_only,
                effort,
            };
            let target = bitrate.map(|bitrate| RateTarget {
                bitrate,
                maxrate,
                bufsize,
            });
            // Rate control switches levels: no one level to record.
            let level = if target.is_some() { 0 } else { request.level() };
            EncodePlan::new(&request, target).map(|plan| (plan, level))
        }
        .and_then(|(plan, level)| {
            let options = EncodeOptions {
                frames,
                gop: if intra_only { Some(1) } else { gop },
                size: None,
                force,
                level,
                low_delay,
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
                        level: 0,
                        low_delay: false,
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
            detail_alone,
            effort,
        } => eval(
            clips,
            &out,
            frames,
            measure::EvalSettings {
                codecs,
                pca_models: pca_model,
                learned_models: learned_model,
                detail_steps,
                latent_steps,
                policy: policy(detail_alone),
                effort,
            },
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
        if let Some(hint) = hint(&e) {
            eprintln!("hint: {hint}");
        }
        ExitCode::FAILURE
    })
}

/// What a user does about an error the library reports in its own terms.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    aecodec::coders::missing_model(e.as_ref()).map(|_| "pass the model file with --model FILE")
}
