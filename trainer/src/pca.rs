//! Fitting the block PCA baseline on frames of one or many clips.

use std::path::PathBuf;
use std::time::Instant;

use aecodec::coders::pca::{patches, PcaModel};
use aecodec::model_file::TrainingInfo;

use crate::data::{sample_frames, DataError, FrameSampling};

/// Fits a PCA of `block`×`block` patches over the sampled frames of `clips`.
/// `progress` is told each clip's name and frame count as it is read.
pub fn fit_pca(
    clips: &[PathBuf],
    block: u8,
    sampling: FrameSampling,
    command: String,
    mut progress: impl FnMut(&str, usize),
) -> Result<PcaModel, DataError> {
    let start = Instant::now();
    let mut all = Vec::new();
    let mut frames = 0u64;
    for clip in clips {
        let n = sample_frames(clip, sampling, |frame| all.extend(patches(frame, block)))?;
        frames += n as u64;
        progress(&clip.display().to_string(), n);
    }
    let training = TrainingInfo {
        clips: clips.iter().map(|c| c.display().to_string()).collect(),
        frames,
        command,
        seconds: 0.0,
        validation: None,
    };
    let mut model = PcaModel::fit(block, &all, training);
    // The fit time is recorded in the file, which changes its id: refit the identity.
    model.training.seconds = (start.elapsed().as_secs_f64() * 10.0).round() / 10.0;
    Ok(model.with_identity())
}
