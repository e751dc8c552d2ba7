//! aetrain: fits the models aecodec uses.
//!
//! * [`device`]: where burn runs (Flex on the CPU; libtorch with `--features tch`).
//! * [`data`]: training frames, from video files through the codec's FFmpeg reader (feature
//!   `video`) or from a packed corpus: [`corpus`] is its file format, [`pack`] makes one.
//! * [`pca`]: the closed-form block PCA baseline.
//! * [`model`]: the learned model as burn modules, built from the codec's architecture.
//! * [`train`]: rate–distortion training, validated on real bitstreams.
//! * [`decode_bench`]: decoding with the synthesis on a burn device (the GPU path), measured
//!   and compared with the codec's CPU decoder.

pub mod corpus;
pub mod data;
pub mod decode_bench;
pub mod device;
pub mod model;
pub mod pack;
pub mod pca;
pub mod train;
