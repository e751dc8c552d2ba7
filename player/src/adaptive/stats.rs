//! What adaptive playback reports (`--stats-json`'s `adaptive`): the renditions played, the
//! switches between them, and the trace of every segment's decision.

use serde::Serialize;

use aecodec::ladder::abr::Reason;

/// What adaptive playback did, for `--stats-json`.
#[derive(Debug, Clone, Serialize)]
pub struct AdaptiveStats {
    /// The size every frame was presented at.
    pub presentation_width: u32,
    pub presentation_height: u32,
    /// Each rendition, and how long it was on screen.
    pub renditions: Vec<RenditionPlayed>,
    /// Changes of rendition between segments that were played, in order.
    pub switches: Vec<Switch>,
    /// Every segment fetched, in order: the trace of the rule's decisions.
    pub segments: Vec<SegmentFetch>,
}

/// One rendition of the ladder and its share of the playback.
#[derive(Debug, Clone, Serialize)]
pub struct RenditionPlayed {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub bitrate: f64,
    pub frames_played: u64,
    pub seconds_played: f64,
    /// Frames per second this machine decoded it at (entropy decoding and synthesis run in
    /// parallel: the slower of the two), if it was played.
    pub decode_fps: Option<f64>,
}

/// A change of rendition, at the first frame of the segment that made it.
#[derive(Debug, Clone, Serialize)]
pub struct Switch {
    /// Presentation time, seconds.
    pub at_s: f64,
    pub segment: usize,
    pub from: usize,
    pub to: usize,
    pub reason: Reason,
}

/// One segment fetch and the state the rule saw when it chose it.
#[derive(Debug, Clone, Serialize)]
pub struct SegmentFetch {
    pub segment: usize,
    pub rendition: usize,
    pub reason: Reason,
    /// Seconds since playback started, when the fetch began.
    pub at_s: f64,
    /// Video buffered ahead of the playhead when it was chosen, seconds.
    pub buffer_s: f64,
    /// The throughput estimate it was chosen with, kbit/s (none before the first download).
    pub estimate_kbps: Option<f64>,
    pub bytes: u64,
    pub fetch_ms: f64,
}
