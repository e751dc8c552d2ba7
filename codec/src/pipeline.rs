//! The coding pipeline: frames in, packets out, and back.
//!
//! [`FrameEncoder`] pads each frame to the coder's stride and codes it; [`FrameDecoder`]
//! decodes a packet and crops it back. [`encode_stream`] and [`decode_stream`] run them over
//! a whole stream between a [`FrameSource`] or [`FrameSink`] (video files, memory, the
//! player's outputs) and the container; every encode and decode loop in the project is one
//! of these two.

use std::borrow::Cow;
use std::io::{Read, Seek, Write};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::coders::{CoderError, EncodedFrame, FrameCoder, LatentFrame};
use crate::container::{
    ColorSpace, ContainerError, ContainerReader, ContainerWriter, FrameType, Header, Packet,
    Rational,
};
use crate::frame::round_up;
use crate::registry::CoderSpec;
use crate::registry::ModelStore;
use crate::RgbFrame;

/// Encodes frames of one stream, in groups of pictures: an intra frame every `gop` frames
/// (where the coder supports prediction), predicted frames between.
pub struct FrameEncoder {
    coder: Box<dyn FrameCoder>,
    header: Header,
    gop: u32,
    frames: u64,
}

/// The default GOP: about two seconds of frames.
pub fn default_gop(frame_rate: Rational) -> u32 {
    (2.0 * frame_rate.as_f64()).round().clamp(1.0, 1000.0) as u32
}

impl FrameEncoder {
    /// Sets up coding for `width`×`height` frames at `frame_rate`; also returns the header
    /// the container should start with.
    /// `gop` 1 codes every frame intra.
    pub fn new(spec: &CoderSpec, width: u32, height: u32, frame_rate: Rational, gop: u32) -> Self {
        let stride = spec.stride();
        let (coded_width, coded_height) = (round_up(width, stride), round_up(height, stride));
        let header = Header {
            width,
            height,
            coded_width,
            coded_height,
            frame_rate,
            // One tick per frame.
            time_base: Rational::new(frame_rate.den, frame_rate.num),
            frame_count: 0,
            color: ColorSpace::Srgb8,
            model_id: spec.model_id(),
            model_bytes: spec.model_bytes(),
            coding: spec.params(),
            version: crate::container::VERSION,
        };
        Self {
            coder: spec.build(coded_width, coded_height),
            header,
            gop: gop.max(1),
            frames: 0,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Codes one frame of the stream's display size.
    pub fn encode(&mut self, frame: &RgbFrame) -> Result<EncodedFrame, CoderError> {
        crate::coders::check_frame_size(frame, self.header.width, self.header.height)?;
        let padded = frame.padded(self.header.coded_width, self.header.coded_height);
        let intra =
            !self.coder.supports_prediction() || self.frames.is_multiple_of(u64::from(self.gop));
        let frame_type = if intra {
            FrameType::Intra
        } else {
            FrameType::Predicted
        };
        let coded = self.coder.encode(&padded, frame_type)?;
        self.frames += 1;
        Ok(coded)
    }
}

/// Decodes the packets of one stream to display-size frames.
pub struct FrameDecoder {
    coder: Box<dyn FrameCoder>,
    header: Header,
}

impl FrameDecoder {
    /// A decoder for the stream `header` describes; fails if its model is not in `models`.
    pub fn new(header: &Header, models: &ModelStore) -> Result<Self, CoderError> {
        let spec = models.coder_for(header)?;
        let mut coder = spec.build(header.coded_width, header.coded_height);
        coder.read_streams_as(header.stream_end());
        Ok(Self {
            coder,
            header: header.clone(),
        })
    }

    pub fn decode(&mut self, packet: &Packet) -> Result<RgbFrame, CoderError> {
        let latent = self.parse(packet)?;
        Ok(self.synthesize(&latent))
    }

    /// First stage: entropy decoding of a packet to its latent. Packets must come in order.
    pub fn parse(&mut self, packet: &Packet) -> Result<LatentFrame, CoderError> {
        self.coder.parse(packet.frame_type, &packet.payload)
    }

    /// Second stage: synthesis of a display-size frame from a latent.
    pub fn synthesize(&self, latent: &LatentFrame) -> RgbFrame {
        self.coder
            .synthesize(latent)
            .cropped(self.header.width, self.header.height)
    }
}

/// Where frames come from, in display order: a video file, frames in memory.
pub trait FrameSource {
    type Error: std::error::Error + Send + Sync + 'static;
    /// The next frame, or `None` at the end: owned where the source makes it, borrowed where
    /// it already holds it.
    fn next_frame(&mut self) -> Result<Option<Cow<'_, RgbFrame>>, Self::Error>;
}

/// Somewhere decoded frames go, in order: a video file, standard output, a window, memory.
pub trait FrameSink {
    type Error: std::error::Error + Send + Sync + 'static;
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<(), Self::Error>;
    /// Flushes everything; the output is complete after this.
    fn finish(self: Box<Self>) -> Result<(), Self::Error> {
        Ok(())
    }
}

/// Frames held in memory, as a source.
pub struct FrameSlice<'a>(pub std::slice::Iter<'a, RgbFrame>);

impl<'a> FrameSlice<'a> {
    pub fn new(frames: &'a [RgbFrame]) -> Self {
        Self(frames.iter())
    }
}

impl FrameSource for FrameSlice<'_> {
    type Error = std::convert::Infallible;
    fn next_frame(&mut self) -> Result<Option<Cow<'_, RgbFrame>>, Self::Error> {
        Ok(self.0.next().map(Cow::Borrowed))
    }
}

/// Decoded frames kept in memory.
impl FrameSink for Vec<RgbFrame> {
    type Error = std::convert::Infallible;
    fn write_frame(&mut self, frame: &RgbFrame) -> Result<(), Self::Error> {
        self.push(frame.clone());
        Ok(())
    }
}

/// Why a stream stopped short. `E` is the error of the far end: the frame source when
/// encoding, the frame sink when decoding.
#[derive(Debug, thiserror::Error)]
pub enum StreamError<E: std::error::Error + 'static> {
    #[error("at frame {frame}")]
    Frames {
        frame: u64,
        #[source]
        cause: E,
    },
    #[error("coding frame {frame}")]
    Coder {
        frame: u64,
        #[source]
        cause: CoderError,
    },
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// The per-frame callback asked to stop.
    #[error("stopped after {0} frames")]
    Stopped(u64),
}

/// Encodes the frames of `source` (at most `limit` of them) into `writer`, packet by packet.
/// `each` hears of every coded frame (its index and payload size) and may stop the stream.
/// Returns the number of frames coded; the caller finishes the writer.
pub fn encode_stream<S, W>(
    source: &mut S,
    encoder: &mut FrameEncoder,
    writer: &mut ContainerWriter<W>,
    limit: Option<u64>,
    mut each: impl FnMut(u64, &EncodedFrame) -> ControlFlow<()>,
) -> Result<u64, StreamError<S::Error>>
where
    S: FrameSource + ?Sized,
    W: Write + Seek,
{
    let mut frames = 0u64;
    while limit.is_none_or(|m| frames < m) {
        let next = source.next_frame().map_err(|cause| StreamError::Frames {
            frame: frames,
            cause,
        })?;
        let Some(frame) = next else { break };
        let coded = encoder.encode(&frame).map_err(|cause| StreamError::Coder {
            frame: frames,
            cause,
        })?;
        writer.write_packet(coded.frame_type, frames as i64, &coded.payload)?;
        frames += 1;
        if each(frames - 1, &coded).is_break() {
            return Err(StreamError::Stopped(frames));
        }
    }
    Ok(frames)
}

/// Time spent in each decoding stage, summed over a stream.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Container reading and checks.
    pub read: Duration,
    /// Entropy decoding to latents.
    pub parse: Duration,
    /// Synthesis of frames from latents.
    pub synthesize: Duration,
    /// Handing frames to the sink.
    pub sink: Duration,
}

/// What [`decode_stream`] got through.
#[derive(Debug)]
pub struct DecodedStream {
    /// Frames decoded and written to the sink.
    pub frames: u64,
    /// The damage that ended a file early (a truncated or corrupt packet); every frame
    /// before it was decoded.
    pub damage: Option<ContainerError>,
    pub times: StageTimes,
}

/// Decodes every packet `reader` holds into `sink`. `each` hears of every frame written and
/// may stop the stream. Damage in the file ends the stream without an error (see
/// [`DecodedStream::damage`]); a packet that parses but does not decode is an error. The
/// caller finishes the sink.
pub fn decode_stream<R, K>(
    reader: &mut ContainerReader<R>,
    decoder: &mut FrameDecoder,
    sink: &mut K,
    mut each: impl FnMut(u64) -> ControlFlow<()>,
) -> Result<DecodedStream, StreamError<K::Error>>
where
    R: Read,
    K: FrameSink + ?Sized,
{
    let mut times = StageTimes::default();
    let mut frames = 0u64;
    loop {
        let t0 = Instant::now();
        let packet = match reader.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(damage) => {
                return Ok(DecodedStream {
                    frames,
                    damage: Some(damage),
                    times,
                })
            }
        };
        let t1 = Instant::now();
        let coder_error = |cause| StreamError::Coder {
            frame: frames,
            cause,
        };
        let latent = decoder.parse(&packet).map_err(coder_error)?;
        let t2 = Instant::now();
        let frame = decoder.synthesize(&latent);
        let t3 = Instant::now();
        sink.write_frame(&frame)
            .map_err(|cause| StreamError::Frames {
                frame: frames,
                cause,
            })?;
        times.read += t1 - t0;
        times.parse += t2 - t1;
        times.synthesize += t3 - t2;
        times.sink += t3.elapsed();
        frames += 1;
        if each(frames - 1).is_break() {
            return Err(StreamError::Stopped(frames));
        }
    }
    Ok(DecodedStream {
        frames,
        damage: None,
        times,
    })
}
