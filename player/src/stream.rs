//! A single stream's playback: reader → entropy decoding → synthesis → presenter, each a
//! thread joined by bounded channels, over one `.aez` file or URL.

use std::time::{Duration, Instant};

use aecodec::container::{ContainerError, Header, Packet, Rational};
use aecodec::pipeline::{FrameDecoder, PacketLatent, StreamDamage};
use aecodec::RgbFrame;
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::control::Control;
use crate::playback::{model_store, run_stage, PlayError, PlayOptions, MAX_REFETCHES, QUEUE_DEPTH};
use crate::presenter::{PlaybackStats, Presenter};
use crate::source::{self, open_source};

/// What a stream's playback did: its statistics, and the damage that ended it early.
pub struct Played {
    pub stats: PlaybackStats,
    pub damage: Option<source::SourceError>,
}

/// Plays the `.aez` file or URL `source` to the chosen output.
pub fn play_stream(source: &str, options: &PlayOptions) -> Result<Played, PlayError> {
    let started = Instant::now();
    let opened = open_source(source, options.start)?;
    let header: Header = opened.reader.header().clone();
    let mut models = model_store(options)?;
    let model_fetched =
        source::ensure_models(opened.server(), &header, &mut models, &options.model_cache)?;
    let mut presenter = Presenter::new(
        (&header).into(),
        options.output.clone(),
        options.paced,
        started,
    )?;
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
    Ok(Played {
        stats,
        damage: damage.map(|d| damage_at(d, source)),
    })
}

/// What one segment of playback did.
struct Segment {
    bytes: u64,
    decode_busy: Duration,
    fetched: u64,
    reconnects: u64,
    damage: Option<StreamDamage>,
    /// The viewer asked to continue from this time.
    seek_to: Option<f64>,
}

/// The source error for `damage` in the stream at `path`.
fn damage_at(damage: StreamDamage, path: &str) -> source::SourceError {
    match damage {
        StreamDamage::Container(cause) => source::SourceError::Container {
            path: path.into(),
            cause,
        },
        StreamDamage::Payload { frame, cause } => source::SourceError::Undecodable {
            path: path.into(),
            frame,
            cause,
        },
    }
}

/// How the presenter stage ended.
enum Presented {
    /// The stream ended, or the viewer quit.
    Ended,
    /// The viewer asked to continue from this time.
    Seek(f64),
    /// A frame did not decode: playback ends there, as at damage in the file.
    Undecodable {
        frame: u64,
        cause: aecodec::coders::CoderError,
    },
}

/// A parsed frame on its way to synthesis: its latent, packet size and time.
type ParsedFrame = Result<(PacketLatent, u64, f64), PlayError>;

/// Runs the reader → decoder → presenter pipeline over one opened source until it ends, fails,
/// or the viewer seeks or quits; frames before the one the source was opened to show, decoded
/// on the way from the intra frame it opened at, are not shown. Each stage is a thread (the
/// presenter the calling one), joined by bounded channels.
fn play_segment(
    opened: source::Source,
    header: &Header,
    models: &aecodec::registry::ModelStore,
    presenter: &mut Presenter,
) -> Result<Segment, PlayError> {
    // Entropy decoding keeps the state predicted frames need; synthesis needs only the model,
    // so it gets a decoder of its own and runs beside it on the other core.
    let new_decoder =
        || FrameDecoder::new(header, models).map_err(|e| PlayError::Decode { frame: 0, cause: e });
    let (parser, synthesizer) = (new_decoder()?, new_decoder()?);
    let (packet_tx, packet_rx) = bounded::<Packet>(QUEUE_DEPTH);
    let (latent_tx, latent_rx) = bounded::<ParsedFrame>(QUEUE_DEPTH);
    let (frame_tx, frame_rx) = bounded::<Result<DecodedFrame, PlayError>>(QUEUE_DEPTH);
    let time_base = header.time_base;
    let first_shown = opened.first_shown;
    std::thread::scope(|scope| {
        let reading = scope.spawn(move || read_packets(opened, packet_tx));
        let parsing = scope.spawn(move || parse_packets(parser, time_base, packet_rx, latent_tx));
        let synthesis = scope.spawn(move || synthesize_frames(synthesizer, latent_rx, frame_tx));
        let presented = present_frames(presenter, &frame_rx, first_shown);
        // Closing the channel stops the decoder, which stops the reader.
        drop(frame_rx);
        let read = reading.join().expect("reader thread panicked");
        // Decoder time: the busier of the two stages bounds the rate.
        let parse_busy = parsing.join().expect("entropy decoding thread panicked");
        let decode_busy = parse_busy.max(synthesis.join().expect("synthesis thread panicked"));
        let (seek_to, damage) = match presented? {
            Presented::Seek(t) => (Some(t), None),
            Presented::Ended => (None, read.damage.map(StreamDamage::Container)),
            Presented::Undecodable { frame, cause } => {
                (None, Some(StreamDamage::Payload { frame, cause }))
            }
        };
        Ok(Segment {
            bytes: read.bytes,
            decode_busy,
            fetched: read.network.0,
            reconnects: read.network.1,
            damage,
            seek_to,
        })
    })
}

/// What the reader stage got through.
struct ReadOutcome {
    /// Stream bytes read.
    bytes: u64,
    /// The damage that ended the stream early.
    damage: Option<ContainerError>,
    /// Network bytes fetched and reconnections (zero for files).
    network: (u64, u64),
}

/// Reader stage: packets from the source, a damaged one fetched again (a few times at most)
/// where the source is a URL.
fn read_packets(mut opened: source::Source, packets: Sender<Packet>) -> ReadOutcome {
    let mut bytes = 0u64;
    let mut refetches = 0;
    let damage = loop {
        match opened.reader.next_packet() {
            Ok(Some(p)) => {
                refetches = 0;
                bytes += p.stored_len();
                if packets.send(p).is_err() {
                    break None;
                }
            }
            Ok(None) => break None,
            Err(e @ ContainerError::PayloadCrc { .. }) if refetches < MAX_REFETCHES => {
                refetches += 1;
                if !matches!(opened.refetch(), Ok(true)) {
                    break Some(e);
                }
            }
            Err(e) => break Some(e),
        }
    };
    ReadOutcome {
        bytes,
        damage,
        network: opened.network_counts(),
    }
}

/// Entropy decoding stage: packets to latents, in order. Returns its busy time.
fn parse_packets(
    mut parser: FrameDecoder,
    time_base: Rational,
    packets: Receiver<Packet>,
    latents: Sender<ParsedFrame>,
) -> Duration {
    run_stage(
        packets.into_iter().enumerate(),
        latents,
        |(frame, packet)| {
            let latent = parser.parse(&packet).map_err(|e| PlayError::Decode {
                frame: frame as u64,
                cause: e,
            })?;
            let seconds = time_base.seconds(packet.pts);
            Ok((latent, packet.stored_len(), seconds))
        },
    )
}

/// Synthesis stage: latents to RGB frames. Returns its busy time.
fn synthesize_frames(
    mut synthesizer: FrameDecoder,
    latents: Receiver<ParsedFrame>,
    frames: Sender<Result<DecodedFrame, PlayError>>,
) -> Duration {
    run_stage(latents, frames, |parsed| {
        let (latent, bytes, seconds) = parsed?;
        Ok(DecodedFrame {
            rgb: synthesizer.synthesize(&latent),
            bytes,
            seconds,
        })
    })
}

/// Presenter stage, on the calling thread: frames to the output until the stream ends, a
/// frame does not decode, or the viewer seeks or quits. With `first_shown` (a time stamp in
/// seconds), the frames before that one are passed over.
fn present_frames(
    presenter: &mut Presenter,
    frames: &Receiver<Result<DecodedFrame, PlayError>>,
    first_shown: Option<f64>,
) -> Result<Presented, PlayError> {
    while let Ok(decoded) = frames.recv() {
        let f = match decoded {
            Ok(f) => f,
            Err(PlayError::Decode { frame, cause }) => {
                return Ok(Presented::Undecodable { frame, cause })
            }
            Err(e) => return Err(e),
        };
        if first_shown.is_some_and(|t| f.seconds < t - 1e-9) {
            continue;
        }
        match presenter.present(f.rgb, frames.len(), f.bytes, f.seconds)? {
            Control::Continue => {}
            Control::Seek(t) => return Ok(Presented::Seek(t)),
            Control::Quit => break,
        }
    }
    Ok(Presented::Ended)
}

/// A decoded frame on its way to the presenter.
struct DecodedFrame {
    rgb: RgbFrame,
    /// Size of its packet.
    bytes: u64,
    /// Its presentation time.
    seconds: f64,
}
