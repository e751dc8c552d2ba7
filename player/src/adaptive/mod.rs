//! Adaptive playback of a ladder (`aecodec ladder`'s `manifest.json`, docs/FORMAT.md): the
//! rendition of each segment is chosen as it is fetched (the rule of [`aecodec::ladder::abr`],
//! which the browser player shares), and every frame reaches the
//! presenter at one presentation size, the largest rendition's.
//!
//! The pipeline is the single-file one with a fetcher in front:
//!
//! * fetcher: chooses a rendition, fetches the segment by byte range and times the download,
//!   while the video buffered ahead of the playhead is under the buffer target;
//! * entropy decoding, with one decoder per rendition (a segment starts with an intra frame,
//!   so a switch needs nothing from the rendition before); its time per frame is measured
//!   per rendition, for the rule's decoder check;
//! * synthesis, timed the same way, then scaling to the presentation size;
//! * the presenter, which advances the playhead the fetcher reads.

mod fetch;
mod stats;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use aecodec::container::Packet;
use aecodec::pipeline::{FrameDecoder, PacketLatent};
use aecodec::registry::ModelStore;
use aecodec::video::RgbScaler;
use aecodec::RgbFrame;
use crossbeam_channel::{bounded, Receiver, Sender};

use crate::control::Control;
pub use crate::playback::AdaptiveOptions;
use crate::playback::{model_store, run_stage, PlayError, PlayOptions, MAX_REFETCHES, QUEUE_DEPTH};
use crate::presenter::{Presentation, Presenter};
use crate::source::{ensure_models, SourceError};
use aecodec::ladder::abr::{Abr, Reason, RenditionLoad};
pub use fetch::{FetchedSegment, Ladder};
pub use stats::{AdaptiveStats, RenditionPlayed, SegmentFetch, Switch};

/// True when `source` names a ladder manifest (a `.json` path or URL) rather than an `.aez`.
pub fn is_manifest(source: &str) -> bool {
    let path = source.split(['?', '#']).next().unwrap_or(source);
    path.to_ascii_lowercase().ends_with(".json")
}

/// Per rendition, the smoothed seconds per frame of the two decoding stages.
#[derive(Debug, Default, Clone, Copy)]
struct StageClock {
    parse: Option<f64>,
    synthesis: Option<f64>,
    /// Frames timed by each stage.
    parsed: u64,
    synthesized: u64,
    /// When its last frame was synthesized.
    last: Option<Instant>,
    /// Times its speed was forgotten (each doubles the wait before the next).
    forgotten: u32,
    /// The speed measured before it was last forgotten, for the statistics.
    earlier_fps: Option<f64>,
}

impl StageClock {
    fn fps(&self, min_frames: u64) -> Option<f64> {
        match (self.parse, self.synthesis) {
            (Some(p), Some(s)) if self.synthesized >= min_frames => Some(1.0 / p.max(s).max(1e-9)),
            _ => None,
        }
    }
}

/// Decoding speed per rendition, written by the decoding stages and read by the fetcher.
struct DecodeMeter {
    stages: Mutex<Vec<StageClock>>,
}

impl DecodeMeter {
    /// Weight of the newest frame in the smoothed time: about the last ten frames count.
    const SMOOTHING: f64 = 0.1;
    /// Frames of a rendition decoded before its speed is trusted.
    const MIN_FRAMES: u64 = 4;
    /// A rendition not decoded for this long has its speed forgotten, so that the rule
    /// predicts it again from the renditions playing now and may try it again: a machine
    /// that was busy when it was measured too slow may not be any more. If it still is, it is
    /// measured too slow again within a few frames, and the wait doubles (up to 16×).
    const RETRY_AFTER: Duration = Duration::from_secs(20);

    fn new(renditions: usize) -> Self {
        Self {
            stages: Mutex::new(vec![StageClock::default(); renditions]),
        }
    }

    fn record(&self, rendition: usize, synthesis: bool, took: Duration) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        let clock = &mut stages[rendition];
        let (slot, count) = if synthesis {
            (&mut clock.synthesis, &mut clock.synthesized)
        } else {
            (&mut clock.parse, &mut clock.parsed)
        };
        *count += 1;
        if synthesis {
            clock.last = Some(Instant::now());
        }
        // A rendition's first frame also pays for its decoder's first allocations: it says
        // little of the speed to come.
        if *count == 1 {
            return;
        }
        let t = took.as_secs_f64();
        *slot = Some(slot.map_or(t, |s| s + Self::SMOOTHING * (t - s)));
    }

    /// Frames per second each rendition decodes at, where enough of it was decoded since
    /// its speed was last forgotten: what the rule decides on.
    fn fps(&self) -> Vec<Option<f64>> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages.iter().map(|c| c.fps(Self::MIN_FRAMES)).collect()
    }

    /// [`fps`](Self::fps), or the speed measured before it was forgotten: what the
    /// statistics report.
    fn reported_fps(&self) -> Vec<Option<f64>> {
        let stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        stages
            .iter()
            .map(|c| c.fps(Self::MIN_FRAMES).or(c.earlier_fps))
            .collect()
    }

    /// Forgets the speed of every rendition whose last frame was decoded longer ago than
    /// [`RETRY_AFTER`](Self::RETRY_AFTER) (doubled for each earlier time it was forgotten).
    fn forget_stale(&self, now: Instant) {
        let mut stages = self.stages.lock().unwrap_or_else(|e| e.into_inner());
        for clock in stages.iter_mut() {
            let Some(last) = clock.last else { continue };
            let Some(fps) = clock.fps(Self::MIN_FRAMES) else {
                continue;
            };
            let wait = Self::RETRY_AFTER * (1u32 << clock.forgotten.min(4));
            if now.saturating_duration_since(last) >= wait {
                *clock = StageClock {
                    forgotten: clock.forgotten + 1,
                    earlier_fps: Some(fps),
                    ..StageClock::default()
                };
            }
        }
    }
}

/// Test hook: `AEPLAY_TEST_DECODE_NS_PER_PIXEL=N` makes synthesis of a ladder's frames take
/// N ns per pixel longer, as on a slower processor, so that tests can watch the rule step
/// down for the decoder on any machine.
fn decode_slowdown() -> Option<f64> {
    std::env::var("AEPLAY_TEST_DECODE_NS_PER_PIXEL")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|ns| ns.is_finite() && *ns > 0.0)
}

/// A frame on its way out of a decoding stage, with the rendition and segment it is from.
struct Tagged<T> {
    item: T,
    frame: u64,
    rendition: usize,
    segment: usize,
    bytes: u64,
    seconds: f64,
}

/// What a ladder's playback did: its statistics, the damage that ended it early, and the
/// renditions played and the switches between them.
pub struct LadderPlayed {
    pub stats: crate::presenter::PlaybackStats,
    pub damage: Option<SourceError>,
    pub adaptive: AdaptiveStats,
}

/// Plays the ladder whose manifest is `source` (a path or URL).
pub fn play_ladder(source: &str, options: &PlayOptions) -> Result<LadderPlayed, PlayError> {
    let adaptive = &options.adaptive;
    let started = Instant::now();
    let ladder = Ladder::open(source)?;
    let count = ladder.manifest.renditions.len();
    for r in adaptive
        .rendition
        .into_iter()
        .chain([adaptive.start_rendition])
    {
        if r >= count {
            return Err(PlayError::Source(SourceError::Manifest {
                path: source.into(),
                what: format!(
                    "rendition {r}: the ladder has renditions 0 to {}",
                    count - 1
                ),
            }));
        }
    }
    let mut models = model_store(options)?;
    let mut model_bytes = 0;
    for header in &ladder.headers {
        model_bytes += ensure_models(ladder.server(), header, &mut models, &options.model_cache)?;
    }
    let shown = presentation(&ladder);
    let mut presenter = Presenter::new(shown, options.output.clone(), options.paced, started)?;
    let fps = ladder.headers[0].frame_rate.as_f64();
    let loads = ladder
        .manifest
        .renditions
        .iter()
        .map(RenditionLoad::from)
        .collect();
    let mut session = Session {
        ladder: &ladder,
        models: &models,
        abr: Abr::new(loads, fps, adaptive.rendition)
            .starting_at(adaptive.start_rendition)
            .with_buffer_target(adaptive.max_buffer_s),
        meter: DecodeMeter::new(count),
        max_buffer_s: adaptive.max_buffer_s,
        started,
        shown: (shown.width, shown.height),
        trace: Vec::new(),
        played: Vec::new(),
        frames_by_rendition: vec![0; count],
        decode_busy: [Duration::ZERO; 2],
    };
    let mut from = segment_at(&ladder, options.start.unwrap_or(0.0));
    let damage = loop {
        let run = session.play_from(from, &mut presenter)?;
        match run.seek_to {
            Some(t) => {
                presenter.restart_clock();
                from = segment_at(&ladder, t);
            }
            None => break run.damage,
        }
    };
    let bytes: u64 = session.trace.iter().map(|s| s.bytes).sum();
    let busy = session.decode_busy[0].max(session.decode_busy[1]);
    let mut stats = presenter.finish(bytes, busy)?;
    stats.model_bytes_fetched = model_bytes;
    if ladder.server().is_some() {
        stats.bytes_fetched = ladder.fetched.load(Ordering::Relaxed);
        stats.reconnects = ladder.reconnects.load(Ordering::Relaxed);
    }
    Ok(LadderPlayed {
        stats,
        damage,
        adaptive: session.stats(),
    })
}

/// The largest rendition's size: every frame is shown at it.
fn presentation(ladder: &Ladder) -> Presentation {
    let top = ladder
        .headers
        .iter()
        .max_by_key(|h| u64::from(h.width) * u64::from(h.height))
        .expect("a checked ladder has a rendition");
    Presentation::from(top)
}

/// The segment holding time `seconds` (the last that starts at or before it).
fn segment_at(ladder: &Ladder, seconds: f64) -> usize {
    let segments = &ladder.manifest.segments;
    segments
        .iter()
        .rposition(|s| s.start_s <= seconds)
        .unwrap_or(0)
}

/// What one run of the pipeline (from a start segment to the end, a seek or a quit) did.
struct Run {
    damage: Option<SourceError>,
    seek_to: Option<f64>,
}

/// The state of one adaptive playback, kept across seeks.
struct Session<'a> {
    ladder: &'a Ladder,
    models: &'a ModelStore,
    abr: Abr,
    meter: DecodeMeter,
    max_buffer_s: f64,
    started: Instant,
    shown: (u32, u32),
    trace: Vec<SegmentFetch>,
    /// Segments whose first frame was presented: (segment, rendition, presentation time).
    played: Vec<(usize, usize, f64)>,
    frames_by_rendition: Vec<u64>,
    /// Busy time of entropy decoding and of synthesis.
    decode_busy: [Duration; 2],
}

type Fetched = Result<FetchedSegment, SourceError>;
type Parsed = Result<Tagged<PacketLatent>, PlayError>;
type Decoded = Result<Tagged<RgbFrame>, PlayError>;

impl Session<'_> {
    /// Runs fetcher → entropy decoding → synthesis → presenter from segment `from`.
    fn play_from(&mut self, from: usize, presenter: &mut Presenter) -> Result<Run, PlayError> {
        let first_frame = self.ladder.manifest.segments[from].first_frame;
        // Frames presented in this run: the playhead is `first_frame` plus these.
        let presented = AtomicU64::new(0);
        let stop = AtomicBool::new(false);
        let (segment_tx, segment_rx) = bounded::<Fetched>(64);
        let (latent_tx, latent_rx) = bounded::<Parsed>(QUEUE_DEPTH);
        let (frame_tx, frame_rx) = bounded::<Decoded>(QUEUE_DEPTH);
        let ladder = self.ladder;
        let models = self.models;
        let meter = &self.meter;
        let shown = self.shown;
        let mut fetcher = Fetcher {
            ladder,
            abr: &mut self.abr,
            meter,
            max_buffer_s: self.max_buffer_s,
            started: self.started,
            presented: &presented,
            first_frame,
            stop: &stop,
            trace: &mut self.trace,
        };
        let played = &mut self.played;
        let frames_by_rendition = &mut self.frames_by_rendition;
        let (run, parse_busy, synthesis_busy) = std::thread::scope(|scope| {
            let fetching = scope.spawn(move || fetcher.run(from, segment_tx));
            let parsing = scope.spawn(move || parse(ladder, models, meter, segment_rx, latent_tx));
            let synthesis =
                scope.spawn(move || synthesize(ladder, models, meter, shown, latent_rx, frame_tx));
            let result = present(
                presenter,
                &frame_rx,
                &presented,
                played,
                frames_by_rendition,
            );
            stop.store(true, Ordering::Relaxed);
            drop(frame_rx);
            fetching.join().expect("fetcher thread panicked");
            let parse_busy = parsing.join().expect("entropy decoding thread panicked");
            let synthesis_busy = synthesis.join().expect("synthesis thread panicked");
            (result, parse_busy, synthesis_busy)
        });
        self.decode_busy[0] += parse_busy;
        self.decode_busy[1] += synthesis_busy;
        match run {
            Ok(seek_to) => Ok(Run {
                damage: None,
                seek_to,
            }),
            // A segment that cannot be had ends playback after every frame before it, as a
            // damaged file does; so does any failure once the first frame is out.
            Err(PlayError::Source(e)) if !self.played.is_empty() => Ok(Run {
                damage: Some(e),
                seek_to: None,
            }),
            // An intact packet that does not decode, likewise.
            Err(PlayError::Decode { frame, cause }) if !self.played.is_empty() => Ok(Run {
                damage: Some(SourceError::Undecodable {
                    path: self.ladder.name.clone(),
                    frame,
                    cause,
                }),
                seek_to: None,
            }),
            Err(e) => Err(e),
        }
    }

    fn stats(&self) -> AdaptiveStats {
        let manifest = &self.ladder.manifest;
        let fps = self.ladder.headers[0].frame_rate.as_f64();
        let measured = self.meter.reported_fps();
        let renditions = manifest
            .renditions
            .iter()
            .enumerate()
            .map(|(r, m)| RenditionPlayed {
                file: m.file.clone(),
                width: m.width,
                height: m.height,
                bitrate: m.bitrate,
                frames_played: self.frames_by_rendition[r],
                seconds_played: self.frames_by_rendition[r] as f64 / fps,
                decode_fps: measured[r],
            })
            .collect();
        let reasons: HashMap<(usize, usize), Reason> = self
            .trace
            .iter()
            .map(|s| ((s.segment, s.rendition), s.reason))
            .collect();
        let switches = self
            .played
            .windows(2)
            .filter(|w| w[0].1 != w[1].1)
            .map(|w| Switch {
                at_s: w[1].2,
                segment: w[1].0,
                from: w[0].1,
                to: w[1].1,
                reason: reasons
                    .get(&(w[1].0, w[1].1))
                    .copied()
                    .unwrap_or(Reason::Hold),
            })
            .collect();
        AdaptiveStats {
            presentation_width: self.shown.0,
            presentation_height: self.shown.1,
            renditions,
            switches,
            segments: self.trace.clone(),
        }
    }
}

/// The fetcher stage's state.
struct Fetcher<'a> {
    ladder: &'a Ladder,
    abr: &'a mut Abr,
    meter: &'a DecodeMeter,
    max_buffer_s: f64,
    started: Instant,
    presented: &'a AtomicU64,
    first_frame: u64,
    stop: &'a AtomicBool,
    trace: &'a mut Vec<SegmentFetch>,
}

impl Fetcher<'_> {
    /// Seconds of video fetched but not yet presented, when the next fetch starts at
    /// `next_frame`.
    fn buffered_s(&self, next_frame: u64) -> f64 {
        let playhead = self.first_frame + self.presented.load(Ordering::Relaxed);
        next_frame.saturating_sub(playhead) as f64 / self.ladder.headers[0].frame_rate.as_f64()
    }

    /// Fetches the segments from `from` to the end (or until told to stop), each in the
    /// rendition the rule chooses, keeping at most the buffer target ahead of the playhead.
    fn run(&mut self, from: usize, segments: Sender<Fetched>) {
        let times = &self.ladder.manifest.segments;
        for (k, time) in times.iter().enumerate().skip(from) {
            while self.buffered_s(time.first_frame) >= self.max_buffer_s {
                if self.stop.load(Ordering::Relaxed) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            if self.stop.load(Ordering::Relaxed) {
                return;
            }
            let buffer_s = self.buffered_s(time.first_frame);
            let estimate_kbps = self.abr.throughput().map(|t| t / 1000.0);
            self.meter.forget_stale(Instant::now());
            let choice = self.abr.choose(buffer_s, &self.meter.fps());
            let at_s = self.started.elapsed().as_secs_f64();
            let fetched = self.fetch(choice.rendition, k);
            if let Ok(s) = &fetched {
                self.abr.record_download(s.bytes, s.seconds);
                self.trace.push(SegmentFetch {
                    segment: k,
                    rendition: s.rendition,
                    reason: choice.reason,
                    at_s,
                    buffer_s,
                    estimate_kbps,
                    bytes: s.bytes,
                    fetch_ms: s.seconds * 1000.0,
                });
            }
            let failed = fetched.is_err();
            if segments.send(fetched).is_err() || failed {
                return;
            }
        }
    }

    /// One segment, fetched again (a few times at most) when its bytes fail their checks:
    /// damage on the way is fetched anew, never shown. A segment that stays bad in rendition
    /// `r` (or that its file does not hold) is taken from another rendition, the nearest
    /// below first: every segment starts with an intra frame, so any rendition can play it.
    /// Only when every rendition fails is the first failure reported. A pinned rendition
    /// (`--rendition`) is the only one tried.
    fn fetch(&self, r: usize, k: usize) -> Fetched {
        let count = self.ladder.manifest.renditions.len();
        let others: Vec<usize> = match self.abr.pinned() {
            Some(_) => Vec::new(),
            None => (0..r).rev().chain(r + 1..count).collect(),
        };
        let order = std::iter::once(r).chain(others);
        let mut first_failure = None;
        for candidate in order {
            let mut tries = 0;
            let failure = loop {
                match self.ladder.fetch(candidate, k) {
                    Err(SourceError::Container { .. }) if tries < MAX_REFETCHES => tries += 1,
                    Err(e @ (SourceError::Container { .. } | SourceError::Manifest { .. })) => {
                        break e
                    }
                    other => return other,
                }
            };
            first_failure.get_or_insert(failure);
        }
        Err(first_failure.expect("a ladder has renditions"))
    }
}

/// Entropy decoding stage: segments to latents, with one decoder per rendition.
fn parse(
    ladder: &Ladder,
    models: &ModelStore,
    meter: &DecodeMeter,
    segments: Receiver<Fetched>,
    latents: Sender<Parsed>,
) -> Duration {
    let mut decoders: HashMap<usize, FrameDecoder> = HashMap::new();
    let packets = segments.into_iter().flat_map(|fetched| {
        let items: Vec<Result<(usize, usize, u64, Packet), SourceError>> = match fetched {
            Ok(s) => {
                let first = ladder.manifest.segments[s.segment].first_frame;
                (first..)
                    .zip(s.packets)
                    .map(|(frame, p)| Ok((s.rendition, s.segment, frame, p)))
                    .collect()
            }
            Err(e) => vec![Err(e)],
        };
        items
    });
    let time_base = ladder.headers[0].time_base;
    run_stage(packets, latents, |item| {
        let (r, k, frame, packet) = item?;
        let decoder = made_once(&mut decoders, r, || {
            FrameDecoder::new(&ladder.headers[r], models)
                .map_err(|cause| PlayError::Decode { frame, cause })
        })?;
        let t = Instant::now();
        let latent = decoder
            .parse(&packet)
            .map_err(|cause| PlayError::Decode { frame, cause })?;
        meter.record(r, false, t.elapsed());
        Ok(Tagged {
            item: latent,
            frame,
            rendition: r,
            segment: k,
            bytes: packet.stored_len(),
            seconds: time_base.seconds(packet.pts),
        })
    })
}

/// Synthesis stage: latents to frames at the presentation size.
fn synthesize(
    ladder: &Ladder,
    models: &ModelStore,
    meter: &DecodeMeter,
    shown: (u32, u32),
    latents: Receiver<Parsed>,
    frames: Sender<Decoded>,
) -> Duration {
    let mut decoders: HashMap<usize, FrameDecoder> = HashMap::new();
    // swscale contexts stay on this thread.
    let mut scalers: HashMap<usize, RgbScaler> = HashMap::new();
    let slowdown = decode_slowdown();
    run_stage(latents, frames, |parsed| {
        let parsed = parsed?;
        let r = parsed.rendition;
        let header = &ladder.headers[r];
        let decoder = made_once(&mut decoders, r, || {
            FrameDecoder::new(header, models).map_err(|cause| PlayError::Decode {
                frame: parsed.frame,
                cause,
            })
        })?;
        let t = Instant::now();
        let rgb = decoder.synthesize(&parsed.item);
        if let Some(ns) = slowdown {
            let pixels = f64::from(header.width) * f64::from(header.height);
            std::thread::sleep(Duration::from_secs_f64(pixels * ns * 1e-9));
        }
        meter.record(r, true, t.elapsed());
        let rgb = if (header.width, header.height) == shown {
            rgb
        } else {
            let scaler = made_once(&mut scalers, r, || {
                RgbScaler::new((header.width, header.height), shown)
            })?;
            scaler.scale(&rgb)?
        };
        Ok(Tagged {
            item: rgb,
            frame: parsed.frame,
            rendition: r,
            segment: parsed.segment,
            bytes: parsed.bytes,
            seconds: parsed.seconds,
        })
    })
}

/// The entry of rendition `r`, made by `make` the first time it is needed (a rendition that
/// never plays costs nothing).
fn made_once<V, E>(
    map: &mut HashMap<usize, V>,
    r: usize,
    make: impl FnOnce() -> Result<V, E>,
) -> Result<&mut V, E> {
    Ok(match map.entry(r) {
        std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
        std::collections::hash_map::Entry::Vacant(e) => e.insert(make()?),
    })
}

/// Presenter stage, on the calling thread: frames out, the playhead moved on, and which
/// rendition each segment was played in. Returns the time the viewer asked to seek to.
fn present(
    presenter: &mut Presenter,
    frames: &Receiver<Decoded>,
    presented: &AtomicU64,
    played: &mut Vec<(usize, usize, f64)>,
    frames_by_rendition: &mut [u64],
) -> Result<Option<f64>, PlayError> {
    while let Ok(decoded) = frames.recv() {
        let f = decoded?;
        if played.last().is_none_or(|&(k, _, _)| k != f.segment) {
            played.push((f.segment, f.rendition, f.seconds));
        }
        frames_by_rendition[f.rendition] += 1;
        let control = presenter.present(f.item, frames.len(), f.bytes, f.seconds)?;
        presented.fetch_add(1, Ordering::Relaxed);
        match control {
            Control::Continue => {}
            Control::Seek(t) => return Ok(Some(t)),
            Control::Quit => break,
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Six frames of rendition `r` through both stages, `seconds` each.
    fn decode_frames(meter: &DecodeMeter, r: usize, seconds: f64) {
        for _ in 0..6 {
            meter.record(r, false, Duration::from_secs_f64(seconds / 2.0));
            meter.record(r, true, Duration::from_secs_f64(seconds));
        }
    }

    #[test]
    fn a_speed_not_measured_for_a_while_is_forgotten_and_the_wait_doubles() {
        let meter = DecodeMeter::new(2);
        decode_frames(&meter, 1, 0.1);
        let measured = meter.fps()[1].expect("six frames are enough");
        assert!((measured - 10.0).abs() < 1e-6, "{measured}");
        let retry = DecodeMeter::RETRY_AFTER;
        let now = Instant::now();
        meter.forget_stale(now + retry - Duration::from_secs(1));
        assert_eq!(meter.fps()[1], Some(measured), "forgotten too early");
        meter.forget_stale(now + retry + Duration::from_secs(1));
        assert_eq!(meter.fps()[1], None);
        assert_eq!(meter.reported_fps()[1], Some(measured));
        assert_eq!(meter.fps()[0], None, "never measured, nothing to forget");

        // Tried again and measured again: now it is kept twice as long.
        decode_frames(&meter, 1, 0.05);
        assert!(meter.fps()[1].is_some_and(|f| f > measured));
        let now = Instant::now();
        meter.forget_stale(now + retry + Duration::from_secs(1));
        assert!(meter.fps()[1].is_some(), "the second wait is doubled");
        meter.forget_stale(now + 2 * retry + Duration::from_secs(1));
        assert_eq!(meter.fps()[1], None);
    }
}
