//! Training frames: sampled from video files through the codec's FFmpeg reader.

use std::path::Path;

use aecodec::video::{VideoError, VideoReader};
use aecodec::RgbFrame;

/// Which frames of a clip to use.
#[derive(Debug, Clone, Copy)]
pub struct FrameSampling {
    /// Take one frame in `every`.
    pub every: usize,
    /// At most this many frames per clip.
    pub max_frames: usize,
}

/// Decodes the sampled frames of one clip, calling `on_frame` for each.
pub fn sample_frames(
    path: &Path,
    sampling: FrameSampling,
    mut on_frame: impl FnMut(&RgbFrame),
) -> Result<usize, VideoError> {
    let mut reader = VideoReader::open(path)?;
    let (mut index, mut taken) = (0usize, 0usize);
    while taken < sampling.max_frames {
        let Some(frame) = reader.next_frame()? else {
            break;
        };
        if index % sampling.every.max(1) == 0 {
            on_frame(&frame);
            taken += 1;
        }
        index += 1;
    }
    Ok(taken)
}
