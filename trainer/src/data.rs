//! Training frames: sampled from video files through the codec's FFmpeg reader (feature
//! `video`, default), or read from a packed corpus ([`crate::corpus`], `aetrain pack`).

use std::path::Path;

use aecodec::RgbFrame;

use crate::corpus::{self, CorpusError};

/// Which frames of a clip to use.
#[derive(Debug, Clone, Copy)]
pub struct FrameSampling {
    /// Take one frame in `every`.
    pub every: usize,
    /// At most this many frames per clip.
    pub max_frames: usize,
}

/// A small deterministic generator for crop positions and flips (`--seed`), shared by
/// training and packing.
pub(crate) struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Why training frames could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[cfg(feature = "video")]
    #[error(transparent)]
    Video(#[from] aecodec::video::VideoError),
    #[error(transparent)]
    Corpus(#[from] CorpusError),
    #[error(
        "{0} is not a packed corpus, and this aetrain was built without FFmpeg: pack the \
         clips with `aetrain pack` on a build with the `video` feature"
    )]
    NoVideo(String),
}

/// Calls `on_frame` with each training frame of `path`, returning how many there were.
///
/// A packed corpus gives all its pictures (they were sampled when it was packed: `sampling`
/// does not apply); a video gives its sampled frames.
pub fn sample_frames(
    path: &Path,
    sampling: FrameSampling,
    mut on_frame: impl FnMut(&RgbFrame),
) -> Result<usize, DataError> {
    if corpus::is_packed(path) {
        let header = corpus::read_each(path, |frame, _| on_frame(&frame))?;
        return Ok(header.pictures.len());
    }
    sample_video(path, sampling, on_frame)
}

#[cfg(feature = "video")]
fn sample_video(
    path: &Path,
    sampling: FrameSampling,
    mut on_frame: impl FnMut(&RgbFrame),
) -> Result<usize, DataError> {
    let mut reader = aecodec::video::VideoReader::open(path)?;
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

#[cfg(not(feature = "video"))]
fn sample_video(
    path: &Path,
    _: FrameSampling,
    _: impl FnMut(&RgbFrame),
) -> Result<usize, DataError> {
    // Say why the file is unreadable if it is, rather than blaming the build.
    std::fs::File::open(path).map_err(CorpusError::Io)?;
    Err(DataError::NoVideo(path.display().to_string()))
}
