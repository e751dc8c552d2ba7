//! `aetrain`: fits aecodec's models.

use std::path::PathBuf;

use aecodec::output::{check_output, AtomicFile};
use std::sync::Arc;

use aecodec::learned::{LearnedArch, LearnedModel};
use aecodec::registry::Model;
use aetrain::data::FrameSampling;
use aetrain::device::TrainDevice;
use aetrain::train::{OptimizerState, TrainConfig, TrainEvent};
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::{IsTerminal, Write};

#[derive(Parser)]
#[command(name = "aetrain", version, about = "Fit aecodec models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Options shared by `train` and `finetune`.
#[derive(clap::Args)]
struct TrainArgs {
    /// Output model file (also rewritten at every validation, as a checkpoint).
    #[arg(short, long)]
    output: PathBuf,
    /// Training steps.
    #[arg(long, default_value_t = 2000)]
    steps: u64,
    /// Crops per step.
    #[arg(long, default_value_t = 8)]
    batch: usize,
    /// Crop size in pixels (a multiple of 64).
    #[arg(long, default_value_t = 128)]
    crop: usize,
    /// Adam learning rate (cut tenfold for the last tenth of the steps).
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Seed for initialization, noise and crops.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Validate on held-out frames with real bitstreams (and checkpoint) every N steps.
    #[arg(long, default_value_t = 250)]
    validate_every: u64,
    /// Use one frame in this many.
    #[arg(long, default_value_t = 2)]
    every: usize,
    /// At most this many frames per clip.
    #[arg(long, default_value_t = 150)]
    max_frames: usize,
    /// One sampled frame in this many is held out for validation.
    #[arg(long, default_value_t = 10)]
    holdout_every: usize,
    /// Stop after this many minutes of training (validating and checkpointing first), even
    /// before --steps; the learning rate's last-tenth cut then follows the time.
    #[arg(long)]
    minutes: Option<f64>,
    /// Append a JSON line per 50 steps (steps/s, images/s, loss, bpp, PSNR) and per
    /// validation to this file.
    #[arg(long)]
    log_json: Option<PathBuf>,
    /// Where the network trains: cpu (burn's Flex backend), or with a `--features tch` build
    /// libtorch (its CPU), cuda or cuda:N (a GPU).
    #[arg(long, default_value = "cpu")]
    device: TrainDevice,
    /// Replace the output if it exists.
    #[arg(long)]
    force: bool,
    /// Train the hyperprior alone (hyper-analysis, hyper-synthesis): the analysis and
    /// synthesis transforms keep their weights. For means added to a trained model (`--init
    /// … --means`): they learn without a fresh optimizer moving the picture.
    #[arg(long)]
    hyperprior_only: bool,
}

/// `aetrain train --arch`.
#[derive(Clone, Copy, clap::ValueEnum)]
enum ArchChoice {
    Shallow,
    PixelShuffle,
}

#[derive(Subcommand)]
enum Command {
    /// Train a learned model (autoencoder + hyperprior, scale or mean-and-scale) for rate and
    /// distortion: loss = lambda·255²·MSE + bits per pixel, on random crops of the clips'
    /// frames.
    Train {
        /// Video files, or packed corpora (`aetrain pack`), to train on.
        #[arg(required = true)]
        clips: Vec<PathBuf>,
        /// Rate–distortion trade-off: larger means higher quality and larger files
        /// (default 0.01, or the resumed model's).
        #[arg(long)]
        lambda: Option<f64>,
        /// The quality level recorded in the model, 1 = smallest files (default 1, or the
        /// resumed model's).
        #[arg(long)]
        quality: Option<u8>,
        /// Continue training this model (same lambda, steps add up).
        #[arg(long)]
        resume: Option<PathBuf>,
        /// Start from this model's weights (for example to train another quality level).
        #[arg(long, conflicts_with = "resume")]
        init: Option<PathBuf>,
        /// Channels of the latent (default: the --arch's, or the --init model's). Larger than
        /// the --init model's widens it: its trained weights are kept and the added channels
        /// learn.
        #[arg(long, conflicts_with = "resume", value_parser = clap::value_parser!(u16).range(1..=512))]
        latent_channels: Option<u16>,
        /// A mean-and-scale hyperprior: the hyper-synthesis also predicts each latent
        /// element's mean, and elements are coded as their differences from it. With --init
        /// of a model without means, they start at zero (the model codes as it did) and learn.
        #[arg(long, conflicts_with = "resume")]
        means: bool,
        /// Layer layout of a model started afresh: `shallow` (a 320-value latent per 16x16
        /// block and a two-layer synthesis, started as the PCA of the training patches) or
        /// `pixel-shuffle` (the layout of the built-in q1..q4 models).
        #[arg(long, value_enum, default_value_t = ArchChoice::Shallow, conflicts_with_all = ["resume", "init"])]
        arch: ArchChoice,
        /// Latent step in code values of the shallow kind's PCA start (default: the one the
        /// lambda implies at high rate).
        #[arg(long, conflicts_with_all = ["resume", "init"])]
        pca_step: Option<f32>,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Adapt a learned model to one movie (per-title coding): continue training on its frames
    /// only, at the model's own lambda.
    Finetune {
        /// The movie to adapt to.
        movie: PathBuf,
        /// The model to start from.
        #[arg(long)]
        from: PathBuf,
        #[command(flatten)]
        args: TrainArgs,
    },
    /// Pack training pictures from videos (or other packed corpora) into one `.aezc` file of
    /// PNGs, for a trainer built without FFmpeg (the GPU kit): frames sampled, optionally cut
    /// into random crops, and thinned evenly to a byte budget.
    Pack {
        /// Video files or packed corpora to read.
        #[arg(required = true)]
        clips: Vec<PathBuf>,
        /// Output corpus file.
        #[arg(short, long)]
        output: PathBuf,
        /// Use one frame in this many (videos only).
        #[arg(long, default_value_t = 2)]
        every: usize,
        /// At most this many frames per video.
        #[arg(long, default_value_t = 150)]
        max_frames: usize,
        /// Cut random squares of this side (a multiple of 16) instead of keeping whole frames.
        #[arg(long)]
        crop: Option<u32>,
        /// Squares cut from each frame, with --crop.
        #[arg(long, default_value_t = 1)]
        crops_per_frame: usize,
        /// Keep the pictures within this many MiB (dropping them evenly if they are more).
        #[arg(long, default_value_t = 1024.0)]
        max_mib: f64,
        /// Seed for the crop positions.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Decode a learned `.aez` with the synthesis on a device (a GPU with `--features tch`):
    /// entropy decoding stays on the CPU; prints frames per second per stage and how far the
    /// device's pixels are from the CPU decoder's, as JSON.
    BenchDecode {
        /// The file to decode (learned coder).
        file: PathBuf,
        /// Its model, when it is not built in or cached.
        #[arg(long)]
        model: Vec<PathBuf>,
        /// cpu (burn's Flex), libtorch, cuda or cuda:N.
        #[arg(long, default_value = "cpu")]
        device: TrainDevice,
        /// Compare this many frames with the CPU decoder.
        #[arg(long, default_value_t = 4)]
        compare: usize,
    },
    /// Fit a block-PCA model (the linear autoencoder, in closed form) on video frames.
    /// Fit it on one movie for a per-title model.
    Pca {
        /// Video files to fit on.
        #[arg(required = true)]
        clips: Vec<PathBuf>,
        /// Output model file.
        #[arg(short, long)]
        output: PathBuf,
        /// Patch size: 4, 8, 16 or 32.
        #[arg(long, default_value_t = 8)]
        block: u8,
        /// Use one frame in this many.
        #[arg(long, default_value_t = 4)]
        every: usize,
        /// At most this many frames per clip.
        #[arg(long, default_value_t = 60)]
        max_frames: usize,
        /// Replace the output if it exists.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> std::process::ExitCode {
    // Ctrl-C or SIGTERM mid-checkpoint leaves no temporary file (the last checkpoint stays).
    aecodec::output::handle_interrupts(false);
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Train {
            clips,
            lambda,
            quality,
            resume,
            init,
            latent_channels,
            means,
            arch: choice,
            pca_step,
            args,
        } => {
            let (start, resuming) = match (&resume, init) {
                (Some(p), _) => (Some(load_learned(p)?), true),
                (_, Some(p)) => (Some(load_learned(&p)?), false),
                _ => (None, false),
            };
            let optimizer = match &resume {
                Some(p) => load_optimizer_state(p)?,
                None => None,
            };
            let resumed = start.as_ref().filter(|_| resuming);
            let lambda = lambda.or(resumed.map(|m| m.info.lambda)).unwrap_or(0.01);
            let quality = quality.or(resumed.map(|m| m.info.quality)).unwrap_or(1);
            let fresh = match choice {
                ArchChoice::Shallow => LearnedArch::SHALLOW,
                ArchChoice::PixelShuffle => LearnedArch::DEFAULT,
            };
            let mut arch = start.as_ref().map_or(fresh, |m| m.info.arch);
            if let Some(n) = latent_channels {
                arch.latent_channels = n;
                if arch.kind == aecodec::learned::ArchKind::Shallow {
                    arch.analysis_channels = 2 * n;
                }
            }
            arch.means |= means;
            let start = Start {
                model: start,
                resume: resuming,
                optimizer,
                pca_step,
            };
            train(clips, lambda, quality, arch, start, args)
        }
        Command::Finetune { movie, from, args } => {
            let start = load_learned(&from)?;
            let (lambda, quality) = (start.info.lambda, start.info.quality);
            let arch = start.info.arch;
            let start = Start {
                model: Some(start),
                resume: false,
                optimizer: None,
                pca_step: None,
            };
            train(vec![movie], lambda, quality, arch, start, args)
        }
        pca @ Command::Pca { .. } => fit_pca(pca),
        command @ Command::Pack { .. } => pack(command),
        Command::BenchDecode {
            file,
            model,
            device,
            compare,
        } => {
            let models = aecodec::registry::ModelStore::with_files(&model)?;
            let report = aetrain::decode_bench::bench_decode(&file, &models, device, compare)
                .with_context(|| format!("benchmarking {}", file.display()))?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
    }
}

fn load_learned(path: &std::path::Path) -> Result<Arc<LearnedModel>> {
    match Model::load(path).with_context(|| format!("loading {}", path.display()))? {
        Model::Learned(m) => Ok(m),
        Model::Pca(_) => bail!(
            "{} is a PCA model; training needs a learned one",
            path.display()
        ),
    }
}

/// Reads the optimizer state saved beside a checkpoint, if there is one.
fn load_optimizer_state(checkpoint: &std::path::Path) -> Result<Option<OptimizerState>> {
    let path = OptimizerState::path_for(checkpoint);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            OptimizerState::from_bytes(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            eprintln!(
                "note: no optimizer state beside the checkpoint ({}): Adam starts afresh",
                path.display()
            );
            Ok(None)
        }
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// Where a run starts from.
struct Start {
    model: Option<Arc<LearnedModel>>,
    /// `model` is this run's own checkpoint, continued.
    resume: bool,
    optimizer: Option<OptimizerState>,
    pca_step: Option<f32>,
}

fn train(
    clips: Vec<PathBuf>,
    lambda: f64,
    quality: u8,
    arch: LearnedArch,
    start: Start,
    a: TrainArgs,
) -> Result<()> {
    let resume = start.resume;
    if start.pca_step.is_some_and(|s| !(s.is_finite() && s > 0.0)) {
        bail!("--pca-step must be a positive number");
    }
    if a.crop == 0 || !a.crop.is_multiple_of(64) {
        bail!("--crop must be a positive multiple of 64");
    }
    if a.batch == 0 || a.validate_every == 0 {
        bail!("--batch and --validate-every must be positive");
    }
    if !(lambda.is_finite() && lambda > 0.0) {
        bail!("--lambda must be a positive number");
    }
    if a.minutes.is_some_and(|m| !(m.is_finite() && m > 0.0)) {
        bail!("--minutes must be a positive number");
    }
    let inputs: Vec<&std::path::Path> = clips.iter().map(PathBuf::as_path).collect();
    // A resumed checkpoint may be rewritten in place; any other existing output needs --force.
    check_output(&a.output, &inputs, a.force || resume)?;
    let config = TrainConfig {
        clips,
        sampling: FrameSampling {
            every: a.every,
            max_frames: a.max_frames,
        },
        holdout_every: a.holdout_every,
        lambda,
        quality,
        steps: a.steps,
        batch: a.batch,
        crop: a.crop,
        learning_rate: a.lr,
        seed: a.seed,
        validate_every: a.validate_every,
        time_limit: a
            .minutes
            .map(|m| std::time::Duration::from_secs_f64(m * 60.0)),
        arch,
        device: a.device,
        start: start.model,
        resume,
        optimizer_state: start.optimizer,
        pca_step: start.pca_step,
        hyperprior_only: a.hyperprior_only,
        command: std::env::args().collect::<Vec<_>>().join(" "),
    };
    let (enc, dec) = config.arch.macs_per_pixel();
    eprintln!(
        "training on {}: lambda {lambda}, {} steps of {} {}x{} crops; encoder {:.0} MAC/px, decoder {:.0} MAC/px",
        a.device, a.steps, a.batch, a.crop, a.crop, enc, dec
    );
    let bar = indicatif::ProgressBar::new(a.steps);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "training [{elapsed_precise}] {wide_bar} {pos}/{len} steps ({per_sec}, eta {eta}) {msg}",
    )?);
    let interactive = std::io::stderr().is_terminal();
    let output = a.output.clone();
    let mut log = match &a.log_json {
        Some(path) => Some(TrainLog::create(path, &a, lambda)?),
        None => None,
    };
    let mut smooth: Option<(f64, f64, f64)> = None;
    let mut checkpoint_error = None;
    let bytes = aetrain::train::train(&config, |event| match event {
        TrainEvent::Step { step, loss, bpp, psnr } => {
            let s = smooth.get_or_insert((loss, bpp, psnr));
            *s = (0.95 * s.0 + 0.05 * loss, 0.95 * s.1 + 0.05 * bpp, 0.95 * s.2 + 0.05 * psnr);
            bar.set_position(step);
            if let Some(log) = log.as_mut() {
                log.step(step, loss, bpp, psnr);
            }
            bar.set_message(format!("loss {:.3}, {:.3} bpp, {:.2} dB", s.0, s.1, s.2));
            // The bar is hidden when stderr is not a terminal (nohup, CI logs): a line instead.
            if !interactive && step.is_multiple_of(PLAIN_PROGRESS_EVERY) {
                eprintln!(
                    "step {step}/{}: loss {:.3}, {:.3} bpp, {:.2} dB ({:.0} s)",
                    a.steps,
                    s.0,
                    s.1,
                    s.2,
                    bar.elapsed().as_secs_f64()
                );
            }
        }
        TrainEvent::PcaStart { patches, step } => bar.suspend(|| {
            eprintln!("started from the PCA of {patches} training patches, latent step {step:.1}")
        }),
        TrainEvent::Validation {
            step,
            bpp,
            psnr,
            model_bytes,
            optimizer,
        } => {
            if let Some(log) = log.as_mut() {
                log.validation(step, bpp, psnr);
            }
            bar.suspend(|| {
                eprintln!(
                    "step {step}: held-out frames coded at {bpp:.4} bpp, {psnr:.2} dB (real bitstreams)"
                )
            });
            // The optimizer state first: a checkpoint never sits beside an older state
            // (resuming checks that their steps agree).
            let state = write_model(&OptimizerState::path_for(&output), &optimizer.to_bytes());
            if let Err(e) = state.and_then(|()| write_model(&output, model_bytes)) {
                checkpoint_error.get_or_insert(e);
            }
        }
    })
    .context("training")?;
    bar.finish_and_clear();
    if let Some(e) = checkpoint_error {
        return Err(e.context("writing a checkpoint"));
    }
    write_model(&output, &bytes)?;
    let model = LearnedModel::from_bytes(&bytes)?;
    eprintln!(
        "trained {} steps in {:.0} s: {} bytes, id {}",
        model.info.steps,
        model.info.training.seconds,
        bytes.len(),
        model.id.hex()
    );
    println!("{}", output.display());
    Ok(())
}

/// The `--log-json` file: one JSON object per line, appended as training goes.
struct TrainLog {
    file: std::fs::File,
    started: std::time::Instant,
    batch: usize,
    /// Sums since the last line: (steps, loss, bpp, psnr) and when it was written.
    window: (u64, f64, f64, f64),
    window_start: std::time::Instant,
    error: Option<std::io::Error>,
}

/// Steps summed into one line of the `--log-json` file.
const LOG_EVERY: u64 = 50;

impl TrainLog {
    fn create(path: &std::path::Path, a: &TrainArgs, lambda: f64) -> Result<Self> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening the log {}", path.display()))?;
        let mut log = TrainLog {
            file,
            started: std::time::Instant::now(),
            batch: a.batch,
            window: (0, 0.0, 0.0, 0.0),
            window_start: std::time::Instant::now(),
            error: None,
        };
        log.line(serde_json::json!({
            "event": "start", "device": a.device.to_string(), "batch": a.batch, "crop": a.crop,
            "lambda": lambda, "steps": a.steps, "minutes": a.minutes, "lr": a.lr,
            "output": a.output.display().to_string(),
        }));
        Ok(log)
    }

    fn line(&mut self, value: serde_json::Value) {
        if self.error.is_none() {
            if let Err(e) = writeln!(self.file, "{value}") {
                // A full disk must not stop training: say it once, keep going.
                eprintln!("warning: the JSON log stopped: {e}");
                self.error = Some(e);
            }
        }
    }

    fn step(&mut self, step: u64, loss: f64, bpp: f64, psnr: f64) {
        let w = &mut self.window;
        *w = (w.0 + 1, w.1 + loss, w.2 + bpp, w.3 + psnr);
        if !step.is_multiple_of(LOG_EVERY) {
            return;
        }
        let (n, loss, bpp, psnr) = self.window;
        let rate = n as f64 / self.window_start.elapsed().as_secs_f64().max(1e-9);
        let n = n as f64;
        self.line(serde_json::json!({
            "event": "step", "step": step, "seconds": self.started.elapsed().as_secs_f64(),
            "steps_per_s": rate, "images_per_s": rate * self.batch as f64,
            "loss": loss / n, "bpp": bpp / n, "psnr": psnr / n,
        }));
        self.window = (0, 0.0, 0.0, 0.0);
        self.window_start = std::time::Instant::now();
    }

    fn validation(&mut self, step: u64, bpp: f64, psnr: f64) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.line(serde_json::json!({
            "event": "validation", "step": step, "seconds": seconds, "bpp": bpp, "psnr": psnr,
        }));
    }
}

/// Steps between plain progress lines when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: u64 = 100;

fn write_model(path: &std::path::Path, bytes: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.file().write_all(bytes)?;
    file.commit()?;
    Ok(())
}

fn fit_pca(command: Command) -> Result<()> {
    let Command::Pca {
        clips,
        output,
        block,
        every,
        max_frames,
        force,
    } = command
    else {
        unreachable!("called with the pca command");
    };
    if !matches!(block, 4 | 8 | 16 | 32) {
        bail!("--block must be 4, 8, 16 or 32");
    }
    let inputs: Vec<&std::path::Path> = clips.iter().map(PathBuf::as_path).collect();
    check_output(&output, &inputs, force)?;
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let bar = indicatif::ProgressBar::new(clips.len() as u64);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "fitting PCA [{elapsed_precise}] {wide_bar} {pos}/{len} clips {msg}",
    )?);
    let model = aetrain::pca::fit_pca(
        &clips,
        block,
        FrameSampling { every, max_frames },
        command,
        |clip, n| {
            bar.set_message(format!("{clip}: {n} frames"));
            bar.inc(1);
        },
    )
    .context("reading training frames")?;
    bar.finish_and_clear();
    let bytes = model.to_bytes();
    let mut file = AtomicFile::create(&output)?;
    file.file().write_all(&bytes)?;
    file.commit()?;
    eprintln!(
        "fitted {}x{} block PCA on {} frames in {:.1} s: {} components, {} bytes, id {}",
        block,
        block,
        model.training.frames,
        model.training.seconds,
        model.components,
        bytes.len(),
        model.id.hex()
    );
    println!("{}", output.display());
    Ok(())
}

fn pack(command: Command) -> Result<()> {
    let Command::Pack {
        clips,
        output,
        every,
        max_frames,
        crop,
        crops_per_frame,
        max_mib,
        seed,
        force,
    } = command
    else {
        unreachable!("called with the pack command");
    };
    // Packed crops are coded whole by every learned model: a multiple of its latent grid.
    let grid = aecodec::container::CodingParams::LEARNED_STRIDE;
    if crop.is_some_and(|c| c == 0 || !c.is_multiple_of(grid)) {
        bail!("--crop must be a positive multiple of {grid}");
    }
    if !(max_mib.is_finite() && max_mib > 0.0) {
        bail!("--max-mib must be a positive number");
    }
    let inputs: Vec<&std::path::Path> = clips.iter().map(PathBuf::as_path).collect();
    check_output(&output, &inputs, force)?;
    let options = aetrain::pack::PackOptions {
        sampling: FrameSampling { every, max_frames },
        crop,
        crops_per_frame,
        max_bytes: (max_mib * 1024.0 * 1024.0) as u64,
        seed,
    };
    let bar = indicatif::ProgressBar::new(clips.len() as u64);
    bar.set_style(indicatif::ProgressStyle::with_template(
        "packing [{elapsed_precise}] {wide_bar} {pos}/{len} clips {msg}",
    )?);
    let command = std::env::args().collect::<Vec<_>>().join(" ");
    let packed = aetrain::pack::pack(&clips, &options, command, |clip, n| {
        bar.set_message(format!("{clip}: {n} pictures"));
        bar.inc(1);
    })
    .context("reading training pictures")?;
    bar.finish_and_clear();
    if packed.offered == 0 {
        bail!("the inputs gave no frames to pack");
    }
    if packed.header.pictures.is_empty() {
        bail!(
            "none of the {} pictures fits within --max-mib",
            packed.offered
        );
    }
    let mut file = AtomicFile::create(&output)?;
    let mut writer = std::io::BufWriter::new(file.file());
    aetrain::corpus::write(&mut writer, &packed.header, &packed.pngs)?;
    writer.flush()?;
    drop(writer);
    file.commit()?;
    let bytes: u64 = packed.header.pictures.iter().map(|p| p.bytes).sum();
    for s in &packed.header.sources {
        eprintln!("{:>6} pictures from {}", s.pictures, s.path);
    }
    eprintln!(
        "packed {} of {} pictures ({:.1} MiB of PNG){}",
        packed.header.pictures.len(),
        packed.offered,
        bytes as f64 / 1048576.0,
        if packed.kept_whole > 0 {
            format!(
                "; {} frames smaller than the crop kept whole",
                packed.kept_whole
            )
        } else {
            String::new()
        }
    );
    println!("{}", output.display());
    Ok(())
}
