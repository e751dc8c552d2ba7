//! aetrain: fits the models aecodec uses.
//!
//! * [`data`]: frames sampled from video files through the codec's FFmpeg reader.
//! * [`pca`]: the closed-form block PCA baseline.

pub mod data;
pub mod pca;
