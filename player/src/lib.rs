//! aeplay: plays `.aez` streams.
//!
//! Playback is a pipeline of threads joined by bounded channels, so a slow stage slows the
//! ones before it instead of filling memory:
//!
//! * [`source`]: bytes from a file become checked packets;
//! * entropy decoding: packets become latents, and synthesis: latents become RGB frames,
//!   each on its own thread so that frame n+1 is parsed while frame n is synthesized (the
//!   codec's [`FrameDecoder`]);
//! * [`presenter`]: frames are paced at the video's rate (late ones dropped) and handed to an
//!   output: a y4m file or pipe, or nothing (`--null`).
//!
//! [`FrameDecoder`]: aecodec::pipeline::FrameDecoder

pub mod http;
pub mod presenter;
pub mod server;
pub mod source;
#[cfg(feature = "window")]
mod window;

use std::time::{Duration, Instant};

use aecodec::coders::LatentFrame;
use aecodec::container::{ContainerError, Header, Packet};
use aecodec::pipeline::FrameDecoder;
use aecodec::RgbFrame;
use crossbeam_channel::bounded;

pub use presenter::{Control, Output, PlaybackStats, Presenter};
pub use source::open_source;

/// Packets and frames that may wait between stages.
const QUEUE_DEPTH: usize = 8;
/// Times one damaged packet is fetched again before playback stops at it.
const MAX_REFETCHES: u32 = 3;

/// How to play.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    pub output: Output,
    /// Present at the video's frame rate, dropping late frames; otherwise as fast as possible.
    pub paced: bool,
    /// Model files to decode with (the model cache is searched too).
    pub models: Vec<std::path::PathBuf>,
    /// Where fetched models are kept, by id.
    pub model_cache: std::path::PathBuf,
    /// Start at this time (seconds): the last intra frame at or before it.
    pub start: Option<f64>,
}

/// Why playback stopped short.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("decoding frame {frame}: {cause}")]
    Decode {
        frame: u64,
        cause: aecodec::coders::CoderError,
    },
    #[error(transparent)]
    Output(#[from] aecodec::video::VideoError),
}

/// What came out of playback: statistics, and the stream damage if the source ended early
/// (frames before it were all played).
pub struct PlayOutcome {
    pub stats: PlaybackStats,
    pub damage: Option<aecodec::container::ContainerError>,
}

/// Plays a stream from `source` to the chosen output.
pub fn play(source: &str, options: &PlayOptions) -> Result<PlayOutcome, PlayError> {
    let started = Instant::now();
    let opened = open_source(source, options.start)?;
    let header: Header = opened.reader.header().clone();
    let mut models = aecodec::model_file::ModelStore::with_files(&options.models).map_err(|e| {
        PlayError::Decode {
            frame: 0,
            cause: e.into(),
        }
    })?;
    models.search_dir(options.model_cache.clone());
    let model_fetched = source::ensure_model(&opened, &header, &mut models, &options.model_cache)?;
    let mut presenter = Presenter::new(&header, options.output.clone(), options.paced, started)?;
    let (mut bytes, mut decode_busy, mut fetched, mut reconnects) = (0, Duration::ZERO, 0, 0);
    let mut next = Some(opened);
    let mut damage = None;
    // Each segment plays from one position; a seek asked for by the viewer starts another.
    while let Some(opened) = next.take() {
        let segment = play_segment(opened, &header, &models, &mut presenter)?;
        bytes += segment.bytes;
        decode_busy += segment.decode_busy;
        fetched += segment.fetched;
        reconnects += segment.reconnects;
        damage = segment.damage;
        if let Some(seconds) = segment.seek_to {
            presenter.restart_clock();
            next = Some(open_source(source, Some(seconds))?);
        }
    }
    let mut stats = presenter.finish(bytes, decode_busy)?;
    stats.model_bytes_fetched = model_fetched;
    if source::is_url(source) {
        stats.bytes_fetched = fetched;
        stats.reconnects = reconnects;
    }
    Ok(PlayOutcome { stats, damage })
}

/// What one segment of playback did.
struct Segment {
    bytes: u64,
    decode_busy: Duration,
    fetched: u64,
    reconnects: u64,
    damage: Option<aecodec::container::ContainerError>,
    /// The viewer asked to continue from this time.
    seek_to: Option<f64>,
}

/// Runs the reader → decoder → presenter pipeline over one opened source until it ends, fails,
/// or the viewer seeks or quits.
fn play_segment(
    mut opened: source::Source,
    header: &Header,
    models: &aecodec::model_file::ModelStore,
    presenter: &mut Presenter,
) -> Result<Segment, PlayError> {
    let network = (opened.fetched.clone(), opened.reconnects.clone());
    // Entropy decoding keeps the state predicted frames need; synthesis needs only the model,
    // so it gets a decoder of its own and runs beside it on the other core.
    let new_decoder =
        || FrameDecoder::new(header, models).map_err(|e| PlayError::Decode { frame: 0, cause: e });
    let (mut parser, synthesizer) = (new_decoder()?, new_decoder()?);
    let tb = header.time_base;
    let (packet_tx, packet_rx) = bounded::<Packet>(QUEUE_DEPTH);
    let (latent_tx, latent_rx) = bounded::<Result<(LatentFrame, u64, f64), PlayError>>(QUEUE_DEPTH);
    let (frame_tx, frame_rx) = bounded::<Result<DecodedFrame, PlayError>>(QUEUE_DEPTH);
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || {
            let mut bytes = 0u64;
            let mut refetches = 0;
            loop {
                match opened.reader.next_packet() {
                    Ok(Some(p)) => {
                        refetches = 0;
                        bytes += p.stored_len();
                        if packet_tx.send(p).is_err() {
                            return (bytes, None);
                        }
                    }
                    Ok(None) => return (bytes, None),
                    // Damaged on the way: fetch the packet again (a few times at most).
                    Err(e @ ContainerError::PayloadCrc { .. }) if refetches < MAX_REFETCHES => {
                        refetches += 1;
                        match opened.refetch() {
                            Ok(true) => {}
                            Ok(false) => return (bytes, Some(e)),
                            Err(_) => return (bytes, Some(e)),
                        }
                    }
                    Err(e) => return (bytes, Some(e)),
                }
            }
        });
        let parsing = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            for (frame, packet) in packet_rx.into_iter().enumerate() {
                let t = Instant::now();
                let parsed = parser
                    .parse(&packet)
                    .map(|latent| {
                        let seconds = packet.pts as f64 * f64::from(tb.num) / f64::from(tb.den);
                        (latent, packet.stored_len(), seconds)
                    })
                    .map_err(|e| PlayError::Decode {
                        frame: frame as u64,
                        cause: e,
                    });
                busy += t.elapsed();
                let failed = parsed.is_err();
                if latent_tx.send(parsed).is_err() || failed {
                    break;
                }
            }
            busy
        });
        let synthesis = scope.spawn(move || {
            let mut busy = Duration::ZERO;
            for parsed in latent_rx {
                let t = Instant::now();
                let decoded = parsed.map(|(latent, bytes, seconds)| DecodedFrame {
                    rgb: synthesizer.synthesize(&latent),
                    bytes,
                    seconds,
                });
                busy += t.elapsed();
                let failed = decoded.is_err();
                if frame_tx.send(decoded).is_err() || failed {
                    break;
                }
            }
            busy
        });
        let mut seek_to = None;
        let mut result = Ok(());
        while let Ok(decoded) = frame_rx.recv() {
            let control = decoded.and_then(|f| {
                presenter
                    .present(f.rgb, frame_rx.len(), f.bytes, f.seconds)
                    .map_err(PlayError::from)
            });
            match control {
                Ok(Control::Continue) => {}
                Ok(Control::Seek(t)) => {
                    seek_to = Some(t);
                    break;
                }
                Ok(Control::Quit) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        // Closing the channel stops the decoder, which stops the reader.
        drop(frame_rx);
        let (bytes, damage) = reading.join().expect("reader thread panicked");
        // Decoder time: the busier of the two stages bounds the rate.
        let parse_busy = parsing.join().expect("entropy decoding thread panicked");
        let decode_busy = parse_busy.max(synthesis.join().expect("synthesis thread panicked"));
        result?;
        let load = |c: &Option<std::sync::Arc<std::sync::atomic::AtomicU64>>| {
            c.as_ref()
                .map_or(0, |c| c.load(std::sync::atomic::Ordering::Relaxed))
        };
        Ok(Segment {
            bytes,
            decode_busy,
            fetched: load(&network.0),
            reconnects: load(&network.1),
            damage: if seek_to.is_some() { None } else { damage },
            seek_to,
        })
    })
}

/// A decoded frame on its way to the presenter.
struct DecodedFrame {
    rgb: RgbFrame,
    /// Size of its packet.
    bytes: u64,
    /// Its presentation time.
    seconds: f64,
}
