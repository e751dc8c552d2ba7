//! What the viewer chose: where frames go ([`Output`]) and what to do after one is shown
//! ([`Control`]). A leaf: the presenter and the window both speak these.

use std::path::PathBuf;

/// Where presented frames go.
#[derive(Debug, Clone)]
pub enum Output {
    /// Decode and pace, show nothing.
    Null,
    /// y4m to standard output (for `| ffplay -`).
    Stdout,
    /// A window (space pauses, left/right seek 5 s, Esc quits).
    #[cfg(feature = "window")]
    Window,
    /// A video file, written atomically: `.y4m`, `.mkv` (lossless FFV1) or `.mp4` (x264),
    /// by its extension.
    File(PathBuf),
}

/// What the viewer wants after a frame is shown.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Control {
    Continue,
    /// Continue from this time (seconds).
    Seek(f64),
    Quit,
}
