//! `aetrain`: fits aecodec's models.

use std::path::PathBuf;

use aecodec::output::{check_output, AtomicFile};
use aetrain::data::FrameSampling;
use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use std::io::Write;

#[derive(Parser)]
#[command(name = "aetrain", version, about = "Fit aecodec models")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
    match run(Cli::parse()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let Command::Pca {
        clips,
        output,
        block,
        every,
        max_frames,
        force,
    } = cli.command;
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
        hex(&model.id)
    );
    println!("{}", output.display());
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
