//! Choosing the rendition of the next segment: what the network has been delivering, how fast
//! this machine decodes each rendition, and how much video is buffered. Both players follow
//! it: `aeplay` (`player/src/adaptive`) and the browser player (`player/web`).
//!
//! The rule, applied before each segment is fetched:
//!
//! * **Network.** The throughput estimate is the harmonic mean of the last
//!   [`THROUGHPUT_WINDOW`] segment downloads (bytes over the time from request to last byte),
//!   which a single fast download cannot lift much but one slow download pulls down at once.
//!   A rendition fits the network when its average bitrate is at most [`Abr::SAFETY`] of it.
//! * **Processor.** A rendition fits the decoder when this machine decodes it at least
//!   [`Abr::DECODE_MARGIN`] times faster than the video's frame rate: measured on the frames
//!   of that rendition decoded so far, or, before any, predicted from the nearest measured
//!   rendition in proportion to the pixel count (decoding time grows with the pixels). A
//!   prediction only holds back a step up: the player leaves a rendition for the decoder
//!   only once that rendition's own frames were measured too slow (early predictions, made
//!   while the pipeline fills, are the noisiest). A rendition not decoded for a while has its
//!   speed forgotten (the player's decode meter), so it is predicted again and may be tried
//!   again.
//! * **Buffer.** The player steps down as far as it must at once, and up one rendition at a
//!   time, only while at least [`Abr::UP_BUFFER_S`] seconds (or half the buffer target, if
//!   that is less) are buffered, so a short burst of speed at start-up or after a stall does
//!   not overreach.
//!
//! Pinning one rendition (`aeplay play --rendition N`) turns the rule off.

use std::collections::VecDeque;

use serde::Serialize;

/// Segment downloads the throughput estimate looks back on.
pub const THROUGHPUT_WINDOW: usize = 3;

/// What the rule knows of one rendition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenditionLoad {
    /// Average bits per second.
    pub bitrate: f64,
    /// Pixels per frame.
    pub pixels: u64,
}

impl From<&super::Rendition> for RenditionLoad {
    fn from(r: &super::Rendition) -> Self {
        Self {
            bitrate: r.bitrate,
            pixels: u64::from(r.width) * u64::from(r.height),
        }
    }
}

/// Why the rendition of a segment was chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The first segment: the lowest rendition, or the one asked to start on.
    Start,
    /// Pinned by the viewer (`aeplay play --rendition`).
    Pinned,
    /// As before: nothing asks for a change.
    Hold,
    /// One step up: the network and the decoder can both take more.
    Up,
    /// Down because the network no longer carries the rendition.
    Network,
    /// Down because this machine does not decode it fast enough.
    Decoder,
}

/// The decision for one segment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Choice {
    pub rendition: usize,
    pub reason: Reason,
}

/// The adaptive bitrate rule (see the module's documentation).
#[derive(Debug, Clone)]
pub struct Abr {
    renditions: Vec<RenditionLoad>,
    frame_rate: f64,
    pinned: Option<usize>,
    start: usize,
    /// Seconds buffered before stepping up.
    up_buffer_s: f64,
    current: Option<usize>,
    /// Recent downloads: bits per second each.
    throughput: VecDeque<f64>,
}

impl Abr {
    /// Share of the throughput estimate a rendition's bitrate may use.
    pub const SAFETY: f64 = 0.8;
    /// How much faster than real time a rendition must decode.
    pub const DECODE_MARGIN: f64 = 1.2;
    /// Seconds of buffered video needed before stepping up.
    pub const UP_BUFFER_S: f64 = 1.0;

    /// The rendition pinned, if any.
    pub fn pinned(&self) -> Option<usize> {
        self.pinned
    }

    /// The rule for `renditions` (lowest bitrate first) of a video at `frame_rate`, with one
    /// rendition `pinned` if asked. Playback starts on the lowest rendition; see
    /// [`starting_at`](Self::starting_at).
    pub fn new(renditions: Vec<RenditionLoad>, frame_rate: f64, pinned: Option<usize>) -> Self {
        Self {
            renditions,
            frame_rate,
            pinned,
            start: 0,
            up_buffer_s: Self::UP_BUFFER_S,
            current: None,
            throughput: VecDeque::with_capacity(THROUGHPUT_WINDOW),
        }
    }

    /// Starts on rendition `start` (at most the top) instead of the lowest.
    pub fn starting_at(mut self, start: usize) -> Self {
        self.start = start.min(self.renditions.len() - 1);
        self
    }

    /// Steps up with half of `max_buffer_s` buffered, if that is less than
    /// [`UP_BUFFER_S`](Self::UP_BUFFER_S): a player that keeps little ahead can still climb.
    pub fn with_buffer_target(mut self, max_buffer_s: f64) -> Self {
        self.up_buffer_s = Self::UP_BUFFER_S.min(max_buffer_s / 2.0);
        self
    }

    /// Records a segment download of `bytes` that took `seconds`.
    pub fn record_download(&mut self, bytes: u64, seconds: f64) {
        if bytes == 0 {
            return;
        }
        // A loopback read can finish within the clock's resolution.
        let bps = bytes as f64 * 8.0 / seconds.max(1e-4);
        if self.throughput.len() == THROUGHPUT_WINDOW {
            self.throughput.pop_front();
        }
        self.throughput.push_back(bps);
    }

    /// The throughput estimate, bits per second: the harmonic mean of the recent downloads.
    pub fn throughput(&self) -> Option<f64> {
        if self.throughput.is_empty() {
            return None;
        }
        let inverse: f64 = self.throughput.iter().map(|b| 1.0 / b).sum();
        Some(self.throughput.len() as f64 / inverse)
    }

    /// Frames per second rendition `r` decodes at on this machine: measured (`measured[i]`,
    /// `None` where that rendition has not been decoded yet) or predicted from the measured
    /// rendition nearest in pixels; `None` before anything was measured.
    pub fn decode_fps(&self, r: usize, measured: &[Option<f64>]) -> Option<f64> {
        if let Some(fps) = measured.get(r).copied().flatten() {
            return Some(fps);
        }
        let pixels = self.renditions[r].pixels as f64;
        let (nearest, fps) = measured
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.map(|fps| (i, fps)))
            .min_by(|a, b| {
                let gap = |i: usize| (self.renditions[i].pixels as f64 / pixels).ln().abs();
                gap(a.0).total_cmp(&gap(b.0))
            })?;
        Some(fps * self.renditions[nearest].pixels as f64 / pixels)
    }

    fn fits_network(&self, r: usize) -> bool {
        match self.throughput() {
            Some(t) => r == 0 || self.renditions[r].bitrate <= Self::SAFETY * t,
            // Nothing downloaded yet: only the lowest is known to be safe.
            None => r == 0,
        }
    }

    /// Whether rendition `r` decodes fast enough, when `current` is playing.
    fn fits_decoder(&self, r: usize, current: usize, measured: &[Option<f64>]) -> bool {
        let fast = |fps: f64| fps >= Self::DECODE_MARGIN * self.frame_rate;
        if r == 0 {
            return true;
        }
        match measured.get(r).copied().flatten() {
            Some(fps) => fast(fps),
            // Not measured, and not above what plays: nothing says it is too slow.
            None if r <= current => true,
            None => self.decode_fps(r, measured).is_none_or(fast),
        }
    }

    /// The rendition of the next segment, given the seconds of video buffered ahead of the
    /// playhead and the decoding speeds measured so far (frames per second, per rendition).
    pub fn choose(&mut self, buffer_s: f64, measured: &[Option<f64>]) -> Choice {
        let choice = self.decide(buffer_s, measured);
        self.current = Some(choice.rendition);
        choice
    }

    fn decide(&self, buffer_s: f64, measured: &[Option<f64>]) -> Choice {
        let last = self.renditions.len() - 1;
        if let Some(p) = self.pinned {
            return Choice {
                rendition: p.min(last),
                reason: Reason::Pinned,
            };
        }
        let Some(current) = self.current else {
            return Choice {
                rendition: self.start,
                reason: Reason::Start,
            };
        };
        let sustainable = (0..=last)
            .rev()
            .find(|&r| self.fits_network(r) && self.fits_decoder(r, current, measured))
            .unwrap_or(0);
        let (rendition, reason) = if sustainable < current {
            let why = if self.fits_network(current) {
                Reason::Decoder
            } else {
                Reason::Network
            };
            (sustainable, why)
        } else if sustainable > current && buffer_s >= self.up_buffer_s {
            (current + 1, Reason::Up)
        } else {
            (current, Reason::Hold)
        };
        Choice { rendition, reason }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder() -> Abr {
        let r = |kbps: f64, w: u64, h: u64| RenditionLoad {
            bitrate: kbps * 1000.0,
            pixels: w * h,
        };
        Abr::new(
            vec![r(400.0, 640, 360), r(900.0, 960, 540), r(1800.0, 1280, 720)],
            25.0,
            None,
        )
    }

    #[test]
    fn starts_low_and_climbs_one_step_at_a_time_on_a_fast_network() {
        let mut abr = ladder();
        assert_eq!(abr.choose(0.0, &[None; 3]).reason, Reason::Start);
        abr.record_download(100_000, 0.01);
        // Too little buffered to step up yet.
        assert_eq!(abr.choose(0.5, &[None; 3]).rendition, 0);
        let up = abr.choose(2.0, &[None; 3]);
        assert_eq!((up.rendition, up.reason), (1, Reason::Up));
        assert_eq!(abr.choose(2.0, &[None; 3]).rendition, 2);
        assert_eq!(abr.choose(2.0, &[None; 3]).reason, Reason::Hold);
    }

    #[test]
    fn a_slow_download_steps_down_at_once_past_several_renditions() {
        let mut abr = ladder();
        abr.choose(0.0, &[None; 3]);
        for _ in 0..3 {
            abr.record_download(1_000_000, 0.1);
            abr.choose(5.0, &[None; 3]);
        }
        assert_eq!(abr.choose(5.0, &[None; 3]).rendition, 2);
        // One download at 400 kbit/s drags the harmonic mean to about 1.1 Mbit/s:
        // 0.8 of it carries 900k but not 1.8M.
        abr.record_download(50_000, 1.0);
        let t = abr.throughput().unwrap();
        assert!((1.0e6..1.2e6).contains(&t), "{t}");
        let down = abr.choose(5.0, &[None; 3]);
        assert_eq!((down.rendition, down.reason), (1, Reason::Network));
        abr.record_download(5_000, 1.0);
        abr.record_download(5_000, 1.0);
        assert_eq!(abr.choose(5.0, &[None; 3]).rendition, 0);
    }

    #[test]
    fn renditions_the_decoder_cannot_keep_up_with_are_left_or_never_tried() {
        let mut abr = ladder();
        abr.choose(0.0, &[None; 3]);
        abr.record_download(10_000_000, 0.1);
        // 360p decodes at 50 fps: 540p is predicted at 50 × 4/9 = 22 fps, below 25 × 1.2.
        let measured = [Some(50.0), None, None];
        assert!((abr.decode_fps(1, &measured).unwrap() - 22.2).abs() < 0.1);
        assert_eq!(abr.choose(5.0, &measured).reason, Reason::Hold);
        // A faster machine climbs, and steps down when 720p turns out slow.
        let fast = [Some(200.0), None, None];
        abr.choose(5.0, &fast);
        assert_eq!(abr.choose(5.0, &fast).rendition, 2);
        let slow_top = [Some(200.0), None, Some(20.0)];
        let down = abr.choose(5.0, &slow_top);
        assert_eq!((down.rendition, down.reason), (1, Reason::Decoder));
    }

    #[test]
    fn only_a_measurement_of_the_rendition_playing_steps_down_for_the_decoder() {
        let mut abr = ladder();
        abr.choose(0.0, &[None; 3]);
        abr.record_download(10_000_000, 0.1);
        abr.choose(5.0, &[Some(200.0), None, None]);
        assert_eq!(abr.choose(5.0, &[Some(200.0), None, None]).rendition, 2);
        // 540p's first frames came out slow, and 720p has not been measured yet: the
        // prediction from 540p (27 × 4/9 ≈ 12 fps) does not take the player down.
        let early = [Some(200.0), Some(27.0), None];
        assert_eq!(abr.choose(5.0, &early).reason, Reason::Hold);
    }

    #[test]
    fn a_pinned_rendition_is_kept_whatever_happens() {
        let mut abr = Abr::new(ladder().renditions, 25.0, Some(2));
        abr.record_download(1000, 10.0);
        for _ in 0..3 {
            let c = abr.choose(0.0, &[Some(1.0); 3]);
            assert_eq!((c.rendition, c.reason), (2, Reason::Pinned));
        }
    }
}
