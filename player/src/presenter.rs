//! The presenter: paces frames at the video's rate, drops the ones that arrive too late,
//! hands the rest to the output, and keeps the statistics.

use std::path::Path;
use std::time::{Duration, Instant};

use aecodec::container::{Header, Rational};
use aecodec::video::{open_output, VideoError, VideoSink};
use aecodec::RgbFrame;
use serde::Serialize;

use crate::control::{Control, Output};

/// Playback statistics, as `--stats-json` prints them.
#[derive(Debug, Clone, Serialize)]
pub struct PlaybackStats {
    pub frames: u64,
    pub presented: u64,
    pub dropped: u64,
    /// Frames per second the decoder can sustain: frames over the busy time of its slower
    /// stage (entropy decoding and synthesis run in parallel).
    pub decode_fps: f64,
    /// Frames per second of wall time (the video's rate when paced).
    pub playback_fps: f64,
    pub time_to_first_frame_ms: f64,
    pub wall_s: f64,
    /// Stream bytes read (from the network, for URLs).
    pub bytes_fetched: u64,
    pub bitrate_kbps: f64,
    /// Model bytes downloaded (0 when the model was cached or built in).
    pub model_bytes_fetched: u64,
    /// Connections reopened after a drop.
    pub reconnects: u64,
    /// Times paced playback froze after the first frame: a frame came more than a frame
    /// interval late with none decoded behind it (the network or the decoder fell behind).
    /// Playback resumes from such a frame, as a player resumes after rebuffering.
    pub stalls: u64,
    /// Time frozen in those stalls, milliseconds.
    pub stalled_ms: f64,
}

/// What the presenter shows: the size frames reach it at, and the video's timing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Presentation {
    pub width: u32,
    pub height: u32,
    pub frame_rate: Rational,
    pub frame_count: u64,
}

impl From<&Header> for Presentation {
    fn from(header: &Header) -> Self {
        Self {
            width: header.width,
            height: header.height,
            frame_rate: header.frame_rate,
            frame_count: u64::from(header.frame_count),
        }
    }
}

enum Sink {
    Null,
    /// y4m on standard output, or a video file written atomically.
    Video(VideoSink),
    #[cfg(feature = "window")]
    Window(Box<crate::window::WindowSink>),
}

pub struct Presenter {
    sink: Sink,
    /// Whether frames are watched as they come (late ones may be dropped), not stored.
    live: bool,
    /// Live statistics on the terminal (hidden when stderr is not one).
    status: indicatif::ProgressBar,
    last_status: Instant,
    bytes_per_frame: f64,
    paced: bool,
    frame_interval: Duration,
    started: Instant,
    first_frame_at: Option<Instant>,
    /// When the pacing clock (re)started, and frames shown since then.
    clock: Option<(Instant, u64)>,
    frames: u64,
    dropped: u64,
    stalls: u64,
    stalled: Duration,
}

impl Presenter {
    pub fn new(
        shown: Presentation,
        output: Output,
        paced: bool,
        started: Instant,
    ) -> Result<Self, VideoError> {
        let (w, h, rate) = (shown.width, shown.height, shown.frame_rate);
        // A file keeps every frame; the other outputs are watched live.
        let live = !matches!(output, Output::File(_));
        let sink = match output {
            Output::Null => Sink::Null,
            Output::Stdout => Sink::Video(open_output(Path::new("-"), w, h, rate)?),
            #[cfg(feature = "window")]
            Output::Window => Sink::Window(Box::new(crate::window::WindowSink::open(w, h)?)),
            Output::File(path) => Sink::Video(open_output(&path, w, h, rate)?),
        };
        let status = indicatif::ProgressBar::new(shown.frame_count);
        status.set_style(
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
                .expect("valid template"),
        );
        Ok(Self {
            sink,
            live,
            status,
            last_status: started,
            bytes_per_frame: 0.0,
            paced,
            frame_interval: Duration::from_secs_f64(1.0 / rate.as_f64()),
            started,
            first_frame_at: None,
            clock: None,
            frames: 0,
            dropped: 0,
            stalls: 0,
            stalled: Duration::ZERO,
        })
    }

    /// Shows one frame at its time, or drops it if its time has passed by a whole frame and a
    /// newer frame is waiting.
    /// `buffered` is how many decoded frames wait behind it; `packet_bytes` its coded size.
    /// `seconds` is its presentation time (the window seeks relative to it).
    #[cfg_attr(not(feature = "window"), allow(unused_variables))]
    pub fn present(
        &mut self,
        frame: RgbFrame,
        buffered: usize,
        packet_bytes: u64,
        seconds: f64,
    ) -> Result<Control, VideoError> {
        let now = Instant::now();
        self.bytes_per_frame += packet_bytes as f64;
        if now - self.last_status > Duration::from_millis(500) {
            self.last_status = now;
            let secs = (now - self.started).as_secs_f64().max(1e-9);
            self.status.set_message(format!(
                "{:.1} fps, {} dropped, {buffered} buffered, {:.0} kbit/s",
                self.frames as f64 / secs,
                self.dropped,
                self.bytes_per_frame * 8.0 / secs / 1000.0
            ));
        }
        self.status.inc(1);
        self.first_frame_at.get_or_insert(now);
        let (clock_start, index) = *self.clock.get_or_insert((now, 0));
        self.clock = Some((clock_start, index + 1));
        self.frames += 1;
        if self.paced {
            let due = clock_start + self.frame_interval.mul_f64(index as f64);
            // A live output skips a frame whose moment has passed when a newer decoded frame
            // is already waiting; with none waiting, this late frame is still the freshest
            // picture there is (dropping it would show nothing when decoding is the slow
            // stage). A file keeps every frame.
            if now > due + self.frame_interval {
                if self.live && buffered > 0 {
                    self.dropped += 1;
                    return Ok(Control::Continue);
                }
                if buffered == 0 {
                    // Starved: the viewer has been looking at the last picture. Resume the
                    // clock from this frame, so the ones behind it are not all late too.
                    let late = now - due;
                    self.stalls += 1;
                    self.stalled += late;
                    self.clock = Some((clock_start + late, index + 1));
                }
            }
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        match &mut self.sink {
            Sink::Null => Ok(Control::Continue),
            Sink::Video(sink) => sink.write_frame(&frame).map(|()| Control::Continue),
            #[cfg(feature = "window")]
            Sink::Window(window) => {
                let (control, paused) = window.show(&frame, seconds)?;
                // Time spent paused does not count against the frames still to come.
                if let Some((start, shown)) = self.clock {
                    self.clock = Some((start + paused, shown));
                }
                Ok(control)
            }
        }
    }

    /// Restarts pacing (after a seek): the next frame is shown at once.
    pub fn restart_clock(&mut self) {
        self.clock = None;
    }

    /// Completes the output and returns the statistics.
    pub fn finish(
        self,
        bytes_fetched: u64,
        decode_busy: Duration,
    ) -> Result<PlaybackStats, VideoError> {
        self.status.finish_and_clear();
        let wall = self.started.elapsed().as_secs_f64();
        match self.sink {
            Sink::Null => {}
            Sink::Video(sink) => sink.finish()?,
            #[cfg(feature = "window")]
            Sink::Window(_) => {}
        }
        let ttff = self
            .first_frame_at
            .map_or(0.0, |t| (t - self.started).as_secs_f64() * 1000.0);
        Ok(PlaybackStats {
            frames: self.frames,
            presented: self.frames - self.dropped,
            dropped: self.dropped,
            decode_fps: self.frames as f64 / decode_busy.as_secs_f64().max(1e-9),
            playback_fps: self.frames as f64 / wall.max(1e-9),
            time_to_first_frame_ms: ttff,
            wall_s: wall,
            bytes_fetched,
            bitrate_kbps: bytes_fetched as f64 * 8.0 / wall.max(1e-9) / 1000.0,
            model_bytes_fetched: 0,
            reconnects: 0,
            stalls: self.stalls,
            stalled_ms: self.stalled.as_secs_f64() * 1000.0,
        })
    }
}
