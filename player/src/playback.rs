//! What both playback pipelines share (a single stream's, [`crate::stream`], and a ladder's,
//! [`crate::adaptive`]): how to play, why playback stops, where models are looked for, and
//! the stage runner that joins their threads.

use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

use crate::control::Output;
use crate::source;

/// Packets and frames that may wait between stages.
pub const QUEUE_DEPTH: usize = 8;
/// Times one damaged packet (or ladder segment) is fetched again before playback stops at it.
pub const MAX_REFETCHES: u32 = 3;

/// How to play.
#[derive(Debug, Clone)]
pub struct PlayOptions {
    pub output: Output,
    /// Present at the video's frame rate, dropping late frames; otherwise as fast as possible.
    pub paced: bool,
    /// Model files to decode with (the model cache is searched too).
    pub models: Vec<std::path::PathBuf>,
    /// Where fetched models are kept, by id.
    pub model_cache: std::path::PathBuf,
    /// Start at this time (seconds): the frame on screen then is the first shown. (A ladder
    /// starts at the segment that holds it.)
    pub start: Option<f64>,
    /// How a ladder manifest is played (unused for a single `.aez`).
    pub adaptive: AdaptiveOptions,
}

/// How a ladder is played.
#[derive(Debug, Clone)]
pub struct AdaptiveOptions {
    /// Play this rendition only (0 is the lowest bitrate).
    pub rendition: Option<usize>,
    /// Start on this rendition, then adapt (0, the lowest, by default).
    pub start_rendition: usize,
    /// Seconds of video fetched ahead of the playhead at most.
    pub max_buffer_s: f64,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        Self {
            rendition: None,
            start_rendition: 0,
            max_buffer_s: 6.0,
        }
    }
}

/// Why playback stopped short.
#[derive(Debug, thiserror::Error)]
pub enum PlayError {
    #[error(transparent)]
    Source(#[from] source::SourceError),
    #[error("decoding frame {frame}")]
    Decode {
        frame: u64,
        #[source]
        cause: aecodec::coders::CoderError,
    },
    #[error(transparent)]
    Output(#[from] aecodec::video::VideoError),
}

/// The models given on the command line, then the model cache: where playback looks for the
/// models a stream names before asking its server.
pub fn model_store(options: &PlayOptions) -> Result<aecodec::registry::ModelStore, PlayError> {
    let mut models = aecodec::registry::ModelStore::with_files(&options.models).map_err(|e| {
        PlayError::Decode {
            frame: 0,
            cause: e.into(),
        }
    })?;
    models.search_dir(options.model_cache.clone());
    Ok(models)
}

/// Runs one decoding stage: each input through `work`, timed, on to `output`, until the
/// input ends, an error has been passed on, or the next stage has gone. Returns the stage's
/// busy time.
pub fn run_stage<I, O>(
    input: impl IntoIterator<Item = I>,
    output: Sender<Result<O, PlayError>>,
    mut work: impl FnMut(I) -> Result<O, PlayError>,
) -> Duration {
    let mut busy = Duration::ZERO;
    for item in input {
        let t = Instant::now();
        let result = work(item);
        busy += t.elapsed();
        let failed = result.is_err();
        if output.send(result).is_err() || failed {
            break;
        }
    }
    busy
}
