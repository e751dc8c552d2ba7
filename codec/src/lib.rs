//! aecodec: a learned video codec.
//!
//! A frame travels through these stages, one module each:
//!
//! * [`video`] (feature `ffmpeg`, default): any video FFmpeg reads becomes [`RgbFrame`]s; decoded frames are written back
//!   as y4m, lossless FFV1 `.mkv` or x264 `.mp4`.
//! * [`frame`]: the RGB frame type and padding to the coder's stride.
//! * [`coders`]: one frame coder per coding tool (pixel DPCM, block PCA, ...), each turning a
//!   frame into a payload and back; [`entropy`] holds the entropy coding they share;
//!   [`learned`] is the learned autoencoder (transforms, hyperprior, its coder).
//! * [`container`]: the `.aez` file (docs/FORMAT.md): header, one packet per frame, index.
//! * [`pipeline`]: encode a video to `.aez` and decode it back, frame by frame.
//! * [`metrics`]: PSNR and friends, computed on RGB frames.

#[cfg(feature = "ffmpeg")]
pub mod bench;
pub mod coders;
pub mod container;
pub mod entropy;
#[cfg(feature = "ffmpeg")]
pub mod eval;
pub mod frame;
pub mod learned;
pub mod metrics;
pub mod model_file;
pub mod output;
pub mod pipeline;
pub mod varint;
#[cfg(feature = "ffmpeg")]
pub mod video;

pub use frame::RgbFrame;
