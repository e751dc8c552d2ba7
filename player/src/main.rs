//! `aeplay`: play `.aez` streams.

use std::path::PathBuf;
use std::process::ExitCode;

use aeplay::{play, Output, PlayOptions};
use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aeplay", version, about = "Play .aez video streams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play an .aez file. Without a display, choose a headless output: --output FILE.y4m,
    /// --output - (y4m on stdout, e.g. `| ffplay -`), or --null.
    Play {
        /// The .aez file to play.
        source: String,
        /// Write the presented frames as y4m to this file, or `-` for stdout.
        #[arg(short, long, conflicts_with = "null")]
        output: Option<PathBuf>,
        /// Decode and pace without presenting anything.
        #[arg(long)]
        null: bool,
        /// Decode as fast as possible instead of at the video's frame rate (no frame drops).
        #[arg(long)]
        no_pace: bool,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
        /// Print the final statistics as JSON on stdout.
        #[arg(long)]
        stats_json: bool,
        /// Exit non-zero when the stream is damaged or truncated.
        #[arg(long)]
        strict: bool,
        /// A model file to decode with (repeatable); the model cache is searched too.
        #[arg(long)]
        model: Vec<PathBuf>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) if aecodec::output::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let Command::Play {
        source,
        output,
        null,
        no_pace,
        force,
        stats_json,
        strict,
        model,
    } = cli.command;
    let output = match output {
        None if null => Output::Null,
        None => anyhow::bail!(
            "no display output is built into this aeplay; choose --output FILE.y4m, --output - or --null"
        ),
        Some(p) if p.as_os_str() == "-" => Output::Stdout,
        Some(p) => {
            aecodec::output::check_output(&p, &[std::path::Path::new(&source)], force)?;
            Output::File(p)
        }
    };
    // Writing to a file is a transcode: every frame, as fast as possible.
    let paced = !no_pace && !matches!(output, Output::File(_));
    let outcome = play(
        &source,
        &PlayOptions {
            output: output.clone(),
            paced,
            models: model,
        },
    )?;
    let s = &outcome.stats;
    eprintln!(
        "played {} frames ({} dropped) in {:.2} s ({:.1} fps; decoder alone {:.1} fps), first frame after {:.0} ms, {:.0} kbit/s",
        s.frames, s.dropped, s.wall_s, s.playback_fps, s.decode_fps, s.time_to_first_frame_ms, s.bitrate_kbps
    );
    if stats_json {
        let json = serde_json::to_string_pretty(s)?;
        // Standard output may be carrying the video.
        if matches!(output, Output::Stdout) {
            eprintln!("{json}");
        } else {
            println!("{json}");
        }
    }
    if let Output::File(p) = &output {
        eprintln!("wrote {}", p.display());
    }
    if let Some(e) = outcome.damage {
        eprintln!(
            "warning: {source}: {e}; stopped after {} good frames",
            s.frames
        );
        if strict {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
