//! Resizing decoded RGB frames, for a player that shows renditions of several sizes at one
//! presentation size.

use ff::format::Pixel;
use ff::software::scaling;
use ffmpeg_next as ff;

use super::{copy_to_ffmpeg, frame_from_ffmpeg, init_ffmpeg, VideoError};
use crate::RgbFrame;

/// Scales RGB frames of one size to another with FFmpeg's swscale (bilinear, accurate
/// rounding), so that a frame scaled here is the same, byte for byte, wherever the same
/// FFmpeg build scales it. Not `Send`: make one on the thread that uses it.
pub struct RgbScaler {
    context: scaling::Context,
    input: ff::frame::Video,
    output: ff::frame::Video,
}

impl RgbScaler {
    /// A scaler from `from` (width, height) to `to`.
    pub fn new(from: (u32, u32), to: (u32, u32)) -> Result<Self, VideoError> {
        init_ffmpeg();
        let flags = scaling::Flags::BILINEAR | scaling::Flags::ACCURATE_RND;
        let context = scaling::Context::get(
            Pixel::RGB24,
            from.0,
            from.1,
            Pixel::RGB24,
            to.0,
            to.1,
            flags,
        )
        .map_err(|e| VideoError::Scale(e.to_string()))?;
        Ok(Self {
            context,
            input: ff::frame::Video::new(Pixel::RGB24, from.0, from.1),
            output: ff::frame::Video::new(Pixel::RGB24, to.0, to.1),
        })
    }

    /// `frame` at the output size; it must be of the input size.
    pub fn scale(&mut self, frame: &RgbFrame) -> Result<RgbFrame, VideoError> {
        copy_to_ffmpeg(frame, &mut self.input)?;
        self.context
            .run(&self.input, &mut self.output)
            .map_err(|e| VideoError::Scale(e.to_string()))?;
        Ok(frame_from_ffmpeg(&self.output))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scaling_keeps_a_flat_colour_and_changes_the_size() {
        let mut frame = RgbFrame::new(32, 18);
        for px in frame.data.chunks_exact_mut(3) {
            px.copy_from_slice(&[200, 100, 50]);
        }
        let mut up = RgbScaler::new((32, 18), (64, 36)).unwrap();
        let big = up.scale(&frame).unwrap();
        assert_eq!((big.width, big.height), (64, 36));
        assert!(big.data.chunks_exact(3).all(|p| p == [200, 100, 50]));
        assert!(matches!(
            up.scale(&RgbFrame::new(16, 16)),
            Err(VideoError::FrameSize { .. })
        ));
    }
}
