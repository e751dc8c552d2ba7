//! The coding pipeline: frames in, packets out, and back.
//!
//! [`FrameEncoder`] pads each frame to the coder's stride and codes it; [`FrameDecoder`]
//! decodes a packet and crops it back. Binaries and the player drive these with their own I/O.

use crate::coders::{CoderError, CoderSpec, EncodedFrame, FrameCoder, LatentFrame};
use crate::container::{ColorSpace, FrameType, Header, Packet, Rational};
use crate::frame::round_up;
use crate::model_file::ModelStore;
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
        let spec = CoderSpec::for_header(header, models)?;
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
