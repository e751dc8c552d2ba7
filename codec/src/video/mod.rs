//! Video in and out through FFmpeg: any input FFmpeg reads becomes [`RgbFrame`]s; decoded
//! frames go out as y4m, lossless FFV1 `.mkv` or x264 `.mp4`, chosen by the file extension.
//!
//! [`RgbFrame`]: crate::RgbFrame

mod reader;
mod scale;
mod writer;

pub use reader::{VideoInfo, VideoReader};
pub use scale::RgbScaler;
pub use writer::{create_writer, open_output, OutputFormat, VideoSink, Y4mWriter};

use std::borrow::Cow;
use std::sync::Once;

use crate::pipeline::FrameSource;
use crate::RgbFrame;

impl FrameSource for VideoReader {
    type Error = VideoError;
    fn next_frame(&mut self) -> Result<Option<Cow<'_, RgbFrame>>, VideoError> {
        Ok(VideoReader::next_frame(self)?.map(Cow::Owned))
    }
}

/// What went wrong reading or writing video.
#[derive(Debug, thiserror::Error)]
pub enum VideoError {
    #[error("cannot open {path}: {reason}")]
    Open { path: String, reason: String },
    #[error("{path} has no video stream")]
    NoVideoStream { path: String },
    #[error("decoding {path} failed: {reason}")]
    Decode { path: String, reason: String },
    #[error("writing {path} failed: {reason}")]
    Encode { path: String, reason: String },
    #[error("unknown output type for {0}: use .y4m, .mkv (lossless FFV1), .mp4 (x264) or - (y4m on stdout)")]
    UnknownOutput(String),
    #[error("frame is {got_w}x{got_h}, the output was opened for {want_w}x{want_h}")]
    FrameSize {
        got_w: u32,
        got_h: u32,
        want_w: u32,
        want_h: u32,
    },
    #[error("scaling frames failed: {0}")]
    Scale(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Output(#[from] crate::output::OutputError),
}

/// Initializes FFmpeg once and keeps its logging to real errors.
pub(crate) fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        ffmpeg_next::init().expect("FFmpeg libraries failed to initialize");
        ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    });
}

/// True when an error, or one of its causes, comes from writing to a pipe whose reader has
/// gone (`| head`), which a command-line tool treats as a quiet end.
pub fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    let broken = |io: &std::io::Error| io.kind() == std::io::ErrorKind::BrokenPipe;
    // `VideoError::Io` is transparent: its io::Error is not in the chain of causes.
    std::iter::successors(Some(err), |e| e.source()).any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(broken)
            || matches!(e.downcast_ref::<VideoError>(), Some(VideoError::Io(io)) if broken(io))
    })
}

/// Copies an RGB24 FFmpeg frame (rows may be padded) into a packed [`RgbFrame`].
pub(crate) fn frame_from_ffmpeg(rgb: &ffmpeg_next::frame::Video) -> RgbFrame {
    let (w, h) = (rgb.width(), rgb.height());
    let row = 3 * w as usize;
    let stride = rgb.stride(0);
    let src = rgb.data(0);
    let mut data = Vec::with_capacity(row * h as usize);
    for y in 0..h as usize {
        data.extend_from_slice(&src[y * stride..y * stride + row]);
    }
    RgbFrame {
        width: w,
        height: h,
        data,
    }
}

/// Copies a packed [`RgbFrame`] into an RGB24 FFmpeg frame of the same size (whose rows may be
/// padded).
pub(crate) fn copy_to_ffmpeg(
    frame: &RgbFrame,
    rgb: &mut ffmpeg_next::frame::Video,
) -> Result<(), VideoError> {
    writer::check_size(frame, rgb.width(), rgb.height())?;
    let row = 3 * frame.width as usize;
    let stride = rgb.stride(0);
    let dst = rgb.data_mut(0);
    for (y, src) in frame.data.chunks_exact(row).enumerate() {
        dst[y * stride..y * stride + row].copy_from_slice(src);
    }
    Ok(())
}
