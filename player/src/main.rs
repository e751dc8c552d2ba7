//! `aeplay`: serve and play `.aez` streams.

// The synthesis allocates large feature maps for every frame; mimalloc reuses that memory
// where glibc hands it back to the kernel and faults it in again (measured: +18-40 % synthesis
// frames/s with `aecodec bench`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use aeplay::{play, Output, PlayOptions};
use anyhow::{Context, Result};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "aeplay", version, about = "Serve and play .aez video streams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Play an .aez file or URL, or a ladder's manifest.json (from `aecodec ladder`), which
    /// plays adaptively: it starts on the lowest rendition and switches at segment boundaries
    /// to the best one the network and this machine's decoding speed sustain. Without a
    /// display, choose a headless output: --output FILE.y4m, --output - (y4m on stdout, e.g.
    /// `| ffplay -`), or --null.
    Play {
        /// A local .aez file or manifest.json, or an http:// URL of either (any HTTP server
        /// with byte ranges serves a ladder; `aeplay serve` also serves models).
        source: String,
        /// Write the presented frames to this file (.y4m, .mkv lossless FFV1 or .mp4 x264, by
        /// the extension), or `-` for y4m on stdout.
        #[arg(short, long, conflicts_with = "null")]
        output: Option<PathBuf>,
        /// Decode and pace without presenting anything.
        #[arg(long)]
        null: bool,
        /// Decode as fast as possible instead of at the video's frame rate (no frame drops).
        #[arg(long, conflicts_with = "realtime")]
        no_pace: bool,
        /// Pace at the video's frame rate even when writing a file (every frame is still
        /// written). Live outputs (--null, stdout) are always paced unless --no-pace.
        #[arg(long)]
        realtime: bool,
        /// Replace the output file if it exists.
        #[arg(long)]
        force: bool,
        /// Print the final statistics as JSON on stdout.
        #[arg(long)]
        stats_json: bool,
        /// Exit non-zero when the stream is damaged or truncated.
        #[arg(long)]
        strict: bool,
        /// A model file to decode with (repeatable).
        #[arg(long)]
        model: Vec<PathBuf>,
        /// Where models fetched from a server are kept (default: $AECODEC_MODELS or
        /// ~/.cache/aecodec/models).
        #[arg(long)]
        cache: Option<PathBuf>,
        /// Start at this time in seconds: the frame on screen then is the first shown (the
        /// frames from the intra frame before it are decoded on the way).
        #[arg(long)]
        start: Option<f64>,
        /// Seconds a server may send nothing before the connection counts as dropped (and
        /// is resumed from where it broke).
        #[arg(long, default_value_t = 10.0)]
        stall_timeout: f64,
        /// Reconnections in a row that bring no data before playback gives up.
        #[arg(long, default_value_t = 12, value_parser = clap::value_parser!(u32).range(1..))]
        retries: u32,
        /// Ladders: play only this rendition (0 is the lowest bitrate, as the manifest lists
        /// them) instead of adapting.
        #[arg(long, value_name = "N", conflicts_with = "start_rendition")]
        rendition: Option<usize>,
        /// Ladders: start on this rendition (0 is the lowest), then adapt.
        #[arg(long, value_name = "N", default_value_t = 0)]
        start_rendition: usize,
        /// Ladders: seconds of video fetched ahead of what is shown, at most.
        #[arg(long, value_name = "SECONDS", default_value_t = 6.0)]
        max_buffer: f64,
    },
    /// Serve the .aez and model files of a directory over HTTP: /catalog.json,
    /// /media/<file>.aez (byte ranges, ETag), /models/<sha256>; a ladder made by `aecodec
    /// ladder` inside it plays from /media/<ladder dir>/manifest.json. Open / in a web
    /// browser to play them there (/?src=/media/<file>.aez&autoplay=1).
    Serve {
        /// The directory to serve; nothing outside it is served.
        dir: PathBuf,
        /// Address to listen on (port 0 picks a free port; the address is printed).
        #[arg(long, default_value = "127.0.0.1:8080")]
        addr: SocketAddr,
        /// Connections held open at once (and requests served at once); more wait.
        #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// Connections one client address may hold open (default: half of
        /// --max-connections); its further connections are answered 503 and closed.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
        max_per_address: Option<u32>,
        /// Seconds a client has to send a request's whole header before it is disconnected.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        header_timeout: u64,
        /// Seconds a connection may pass with no byte moving either way before it is closed.
        #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
        idle_timeout: u64,
        /// Bytes per second each connection may send, like a slow network (default: no
        /// limit).
        #[arg(long, value_name = "BYTES_PER_S", value_parser = clap::value_parser!(u64).range(1..))]
        limit_rate: Option<u64>,
        /// From SECONDS after the server starts, each connection may send BYTES_PER_S
        /// instead (repeatable: a network that slows down or recovers, e.g. for testing
        /// adaptive playback).
        #[arg(long, value_name = "SECONDS:BYTES_PER_S", value_parser = parse_rate_change)]
        limit_rate_at: Vec<(f64, u64)>,
    },
}

/// `SECONDS:BYTES_PER_S`, as `--limit-rate-at` takes it.
fn parse_rate_change(text: &str) -> Result<(f64, u64), String> {
    let bad = || format!("{text:?}: write SECONDS:BYTES_PER_S, such as 5:20000");
    let (t, r) = text.split_once(':').ok_or_else(bad)?;
    let t: f64 = t.trim().parse().map_err(|_| bad())?;
    let r: u64 = r.trim().parse().map_err(|_| bad())?;
    if !(t.is_finite() && t >= 0.0) || r == 0 {
        return Err(bad());
    }
    Ok((t, r))
}

/// What a user does about an error the library reports in its own terms.
fn hint(e: &anyhow::Error) -> Option<&'static str> {
    aecodec::coders::missing_model(e.as_ref())
        .map(|_| "pass the model file with --model FILE, or play it from a server that has it")
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) if aecodec::video::is_broken_pipe(e.as_ref()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            if let Some(hint) = hint(&e) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Serve {
            dir,
            addr,
            max_connections,
            max_per_address,
            header_timeout,
            idle_timeout,
            limit_rate,
            limit_rate_at,
        } => {
            let mut options = aeplay::server::ServeOptions::new(max_connections as usize);
            if let Some(n) = max_per_address {
                options.max_per_address = n as usize;
            }
            options.header_timeout = std::time::Duration::from_secs(header_timeout);
            options.idle_timeout = std::time::Duration::from_secs(idle_timeout);
            options.limit_rate = match (limit_rate, limit_rate_at.is_empty()) {
                (None, true) => None,
                (Some(rate), true) => Some(aeplay::server::RateLimit::constant(rate)),
                (initial, false) => {
                    Some(aeplay::server::RateLimit::changing(initial, &limit_rate_at))
                }
            };
            aeplay::server::serve(&dir, addr, options, |bound| {
                use std::io::Write;
                println!("listening on http://{bound}");
                let _ = std::io::stdout().flush();
                eprintln!(
                    "serving {} (catalog: http://{bound}/catalog.json); Ctrl-C stops",
                    dir.display()
                );
                if aeplay::web::HAS_DECODER {
                    eprintln!("watch in a web browser: http://{bound}/");
                } else {
                    eprintln!(
                        "this aeplay was built without the browser player's decoder \
                         (scripts/web, then build again): http://{bound}/ will say so"
                    );
                }
            })
            .with_context(|| format!("serving {} on {addr}", dir.display()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Play {
            source,
            output,
            null,
            no_pace,
            realtime,
            force,
            stats_json,
            strict,
            model,
            cache,
            start,
            stall_timeout,
            retries,
            rendition,
            start_rendition,
            max_buffer,
        } => {
            let ladder = aeplay::adaptive::is_manifest(&source);
            if (rendition.is_some() || start_rendition > 0) && !ladder {
                anyhow::bail!("--rendition and --start-rendition pick renditions of a ladder: give a manifest.json");
            }
            if !(max_buffer.is_finite() && (0.5..=600.0).contains(&max_buffer)) {
                anyhow::bail!("--max-buffer must be 0.5 to 600 seconds");
            }
            if !(stall_timeout.is_finite() && stall_timeout > 0.0 && stall_timeout <= 3600.0) {
                anyhow::bail!("--stall-timeout must be a number of seconds above 0 (at most 3600)");
            }
            aeplay::http::Patience::set_process_default(aeplay::http::Patience {
                stall: std::time::Duration::from_secs_f64(stall_timeout),
                attempts: retries,
            });
            // Ctrl-C or SIGTERM: a --output file being written is removed, not left behind.
            aecodec::output::handle_interrupts(false);
            if start.is_some_and(|s| !(s.is_finite() && s >= 0.0)) {
                anyhow::bail!("--start must be a number of seconds, 0 or more");
            }
            let output = match output {
                None if null => Output::Null,
                #[cfg(feature = "window")]
                None if std::env::var_os("DISPLAY").is_some() => Output::Window,
                None if cfg!(feature = "window") => anyhow::bail!(
                    "no display (DISPLAY is not set); choose --output FILE.y4m, --output - or --null"
                ),
                None => anyhow::bail!(
                    "this aeplay has no window output (build with --features window); choose --output FILE.y4m, --output - or --null"
                ),
                Some(p) if p.as_os_str() == "-" => Output::Stdout,
                Some(p) => {
                    aecodec::video::OutputFormat::from_path(&p)?;
                    aecodec::output::check_output(&p, &[std::path::Path::new(&source)], force)?;
                    Output::File(p)
                }
            };
            // Writing to a file is a transcode (every frame, as fast as possible) unless
            // --realtime asks to consume the stream at the video's rate.
            let paced = !no_pace && (realtime || !matches!(output, Output::File(_)));
            let options = PlayOptions {
                output: output.clone(),
                paced,
                models: model,
                model_cache: cache.unwrap_or_else(aecodec::registry::cache_dir),
                start,
                adaptive: aeplay::adaptive::AdaptiveOptions {
                    rendition,
                    start_rendition,
                    max_buffer_s: max_buffer,
                },
            };
            let outcome = play(&source, &options)?;
            report(&output, &outcome, stats_json, strict)
        }
    }
}

fn report(
    output: &Output,
    outcome: &aeplay::PlayOutcome,
    stats_json: bool,
    strict: bool,
) -> Result<ExitCode> {
    let s = &outcome.stats;
    eprintln!(
        "played {} frames ({} dropped) in {:.2} s ({:.1} fps; decoder alone {:.1} fps), first frame after {:.0} ms, {:.0} kbit/s, {} reconnects",
        s.frames, s.dropped, s.wall_s, s.playback_fps, s.decode_fps, s.time_to_first_frame_ms, s.bitrate_kbps, s.reconnects
    );
    if let Some(a) = &outcome.adaptive {
        let seconds: Vec<String> = a
            .renditions
            .iter()
            .map(|r| format!("{}x{} {:.1} s", r.width, r.height, r.seconds_played))
            .collect();
        eprintln!(
            "renditions played: {}; {} switches, {} stalls",
            seconds.join(", "),
            a.switches.len(),
            s.stalls
        );
    }
    if stats_json {
        #[derive(serde::Serialize)]
        struct Report<'a> {
            #[serde(flatten)]
            playback: &'a aeplay::PlaybackStats,
            #[serde(skip_serializing_if = "Option::is_none")]
            adaptive: Option<&'a aeplay::adaptive::AdaptiveStats>,
        }
        let json = serde_json::to_string_pretty(&Report {
            playback: s,
            adaptive: outcome.adaptive.as_ref(),
        })?;
        // Standard output may be carrying the video.
        if matches!(output, Output::Stdout) {
            eprintln!("{json}");
        } else {
            println!("{json}");
        }
    }
    if let Output::File(p) = output {
        eprintln!("wrote {}", p.display());
    }
    if let Some(e) = &outcome.damage {
        eprintln!("warning: {e}; stopped after {} good frames", s.frames);
        if strict {
            return Ok(ExitCode::from(2));
        }
    }
    Ok(ExitCode::SUCCESS)
}
