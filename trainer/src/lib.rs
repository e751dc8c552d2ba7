//! aetrain: fits the models aecodec uses.
//!
//! * [`device`]: where burn runs (Flex on the CPU; libtorch with `--features tch`).
//! * [`data`]: frames sampled from video files through the codec's FFmpeg reader.
//! * [`pca`]: the closed-form block PCA baseline.
//! * [`model`]: the learned model as burn modules, built from the codec's architecture.
//! * [`train`]: rate–distortion training, validated on real bitstreams.

pub mod data;
pub mod device;
pub mod model;
pub mod pca;
pub mod train;
