//! aecodec: a learned video codec.
//!
//! A frame travels through these stages, one module each:
//!
//! * [`video`] (feature `ffmpeg`, default): any video FFmpeg reads becomes [`RgbFrame`]s;
//!   decoded frames are written back as y4m, lossless FFV1 `.mkv` or x264 `.mp4`.
//! * `frame` (private; [`RgbFrame`] is here at the root): the RGB frame and padding to the
//!   coder's stride.
//! * [`coders`]: one frame coder per coding tool (pixel DPCM, block PCA, ...), each turning a
//!   frame into a payload and back; [`entropy`] holds the entropy coding they share;
//!   [`learned`] is the learned autoencoder (transforms, hyperprior, its coder).
//! * [`container`]: the `.aez` file (docs/FORMAT.md): header, one packet per frame, index.
//! * [`pipeline`]: a stream of frames to `.aez` packets and back ([`pipeline::encode_stream`],
//!   [`pipeline::decode_stream`]); every encode and decode loop is one of these two, or
//!   [`ratecontrol::encode_stream_at_rate`], which codes each group of pictures with every
//!   tool of a stream and keeps the one that holds an asked bitrate. [`scenecut`] says where
//!   the encoder starts a group of pictures early because the scene changed.
//!
//! Beside them: [`model_file`] (the model file format and [`model_file::ModelId`]),
//! [`registry`] (which models and coders exist: built-in models, the model cache, the coder a
//! header calls for), [`metrics`] (PSNR and MS-SSIM on RGB frames), [`output`] (atomic output
//! files, interrupts), and with `ffmpeg` [`eval`] (rate–distortion runs) and [`bench`](mod@bench).
//!
//! The public modules are the API the player, the trainer, the tests and the benchmarks use;
//! [`prelude`] holds what a program that only encodes and decodes needs.

#[cfg(feature = "ffmpeg")]
pub mod bench;
pub mod coders;
pub mod container;
pub mod entropy;
#[cfg(feature = "ffmpeg")]
pub mod eval;
mod frame;
pub mod ladder;
pub mod learned;
pub mod metrics;
pub mod model_file;
pub mod output;
pub mod pipeline;
pub mod ratecontrol;
pub mod registry;
pub mod scenecut;
pub mod threads;
mod varint;
#[cfg(feature = "ffmpeg")]
pub mod video;

pub use frame::RgbFrame;

/// What a program that encodes and decodes `.aez` streams needs, in one import.
pub mod prelude {
    pub use crate::container::{ContainerReader, ContainerWriter, Header, SeekableReader};
    pub use crate::model_file::ModelId;
    pub use crate::pipeline::{
        decode_stream, encode_stream, FrameDecoder, FrameEncoder, FrameSink, FrameSource,
        StreamError,
    };
    pub use crate::registry::{builtin, CoderSpec, Model, ModelStore};
    pub use crate::RgbFrame;
}
