//! The coding pipeline: frames in, packets out, and back.
//!
//! [`FrameEncoder`] pads each frame to the coder's stride and codes it; [`FrameDecoder`]
//! decodes a packet and crops it back. [`encode_stream`] and [`decode_stream`] run them over
//! a whole stream between a [`FrameSource`] or [`FrameSink`] (video files, memory, the
//! player's outputs) and the container; every encode and decode loop in the project is one
//! of these two, or rate control's ([`crate::ratecontrol::encode_stream_at_rate`]).

use std::borrow::Cow;
use std::io::{Read, Seek, Write};
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use crate::coders::{CoderError, EncodedFrame, FrameCoder, LatentFrame};
use crate::container::{
    check_tool_count, ColorSpace, ContainerError, ContainerReader, ContainerWriter, FrameType,
    Header, Packet, Rational,
};
use crate::frame::round_up;
use crate::registry::CoderSpec;
use crate::registry::ModelStore;
use crate::scenecut::SceneCuts;
use crate::RgbFrame;

/// Encodes frames of one stream, in groups of pictures: an intra frame every `gop` frames, or
/// sooner at a scene cut where asked (where the coder supports prediction), predicted frames
/// between. A stream may have several
/// coding tools (models, quantizer steps); the encoder changes tool only at a group's intra
/// frame, which is what lets rate control pick one per group.
pub struct FrameEncoder {
    coders: Vec<Box<dyn FrameCoder>>,
    header: Header,
    gop: u32,
    /// The tool of the group being coded.
    tool: u8,
    /// The tool the next group starts with.
    next_tool: u8,
    /// Whether predicted frames are coded two by two, the first from the frames either side
    /// where the coder can ([`FrameCoder::encode_pair`]): bidirectional frames, which need
    /// the frame after them before they are coded (one frame more of delay).
    bidirectional: bool,
    /// Frames coded since the last intra frame, that one included (0 before the first).
    since_intra: u32,
    /// Where set, a scene cut starts a group of pictures early ([`with_scene_cuts`](Self::with_scene_cuts)).
    cuts: Option<SceneCuts>,
}

/// The longest group of pictures of a stream coded at one quality, by default: about ten
/// seconds, at most 250 frames (x264's keyint), as groups also start at scene cuts
/// ([`FrameEncoder::with_scene_cuts`]). An intra frame costs as much as a dozen predicted
/// frames or more, so short groups spend much of a file on them.
pub fn default_gop(frame_rate: Rational) -> u32 {
    (10.0 * frame_rate.as_f64()).round().clamp(1.0, 250.0) as u32
}

/// The group of pictures of rate-controlled streams and ladders: about two seconds, the
/// clock at which rate control picks a level and a player switches renditions.
pub fn segment_gop(frame_rate: Rational) -> u32 {
    (2.0 * frame_rate.as_f64()).round().clamp(1.0, 1000.0) as u32
}

impl FrameEncoder {
    /// Sets up coding for `width`×`height` frames at `frame_rate` with one coder; also gives
    /// the header the container should start with. `gop` 1 codes every frame intra.
    pub fn new(spec: &CoderSpec, width: u32, height: u32, frame_rate: Rational, gop: u32) -> Self {
        Self::with_tools(std::slice::from_ref(spec), width, height, frame_rate, gop)
            .expect("one tool is a valid tool list")
    }

    /// As [`new`](Self::new), with several coders to choose from per group of pictures
    /// ([`select_tool`](Self::select_tool)); the first starts. Fails on an empty list or one
    /// longer than [`MAX_TOOLS`](crate::container::MAX_TOOLS).
    pub fn with_tools(
        specs: &[CoderSpec],
        width: u32,
        height: u32,
        frame_rate: Rational,
        gop: u32,
    ) -> Result<Self, CoderError> {
        check_tool_count(specs.len()).map_err(|e| CoderError::Tools(e.to_string()))?;
        // Strides are powers of two, so the largest is a multiple of every other.
        let stride = specs.iter().map(CoderSpec::stride).max().unwrap_or(1);
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
            tools: specs.iter().map(CoderSpec::tool).collect(),
            level: 0,
            version: crate::container::VERSION,
        };
        Ok(Self {
            coders: specs
                .iter()
                .map(|s| s.build(coded_width, coded_height))
                .collect(),
            header,
            gop: gop.max(1),
            tool: 0,
            next_tool: 0,
            bidirectional: true,
            since_intra: 0,
            cuts: None,
        })
    }

    /// Starts a group of pictures early where the scene changes ([`crate::scenecut`]), so
    /// groups follow the content: `gop` is then the longest a group may be. Rate control and
    /// ladders, whose groups must keep the clock, code without.
    pub fn with_scene_cuts(mut self) -> Self {
        self.cuts = Some(SceneCuts::new());
        self
    }

    /// Codes every frame from the frames before it only (no bidirectional frames): each
    /// packet can be coded as soon as its frame arrives.
    pub fn low_delay(mut self) -> Self {
        self.bidirectional = false;
        self
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Frames per group of pictures.
    pub fn gop(&self) -> u32 {
        self.gop
    }

    /// Codes the next frame and those after it with tool `tool` of the header; a change of
    /// tool makes that frame intra (a predicted frame keeps its reference's tool).
    pub fn select_tool(&mut self, tool: u8) -> Result<(), CoderError> {
        self.check_tool(tool)?;
        self.next_tool = tool;
        Ok(())
    }

    fn check_tool(&self, tool: u8) -> Result<(), CoderError> {
        match self.header.tool(tool) {
            Some(_) => Ok(()),
            None => Err(CoderError::Tools(format!(
                "no tool {tool}: the stream has {}",
                self.header.tools.len()
            ))),
        }
    }

    /// `frame`, checked to be of the display size and padded to the coded size.
    fn padded(&self, frame: &RgbFrame) -> Result<RgbFrame, CoderError> {
        crate::coders::check_frame_size(frame, self.header.width, self.header.height)?;
        Ok(frame.padded(self.header.coded_width, self.header.coded_height))
    }

    /// The tool the frame coded last used.
    pub fn current_tool(&self) -> u8 {
        self.tool
    }

    /// Whether the next frame starts a group of pictures (is coded intra) whatever it shows:
    /// the first frame, the group's length reached, or a change of tool. With scene cuts, a
    /// frame may also start one by what it shows.
    pub fn at_group_start(&self) -> bool {
        let coder = &self.coders[usize::from(self.next_tool)];
        !coder.supports_prediction()
            || self.since_intra == 0
            || self.since_intra >= self.gop
            || self.next_tool != self.tool
    }

    /// Whether `frame`, the next in display order, starts a new scene `distance` frames after
    /// the last intra frame. Every frame must be looked at once, in order.
    fn is_cut(&mut self, frame: &RgbFrame, distance: u32) -> bool {
        let gop = self.gop;
        self.cuts
            .as_mut()
            .and_then(|cuts| cuts.look(frame))
            .is_some_and(|costs| costs.is_cut(distance, gop))
    }

    /// Codes a whole group of pictures of the display size with tool `tool`: the first frame
    /// intra, the others predicted where the coder supports it. Rate control codes a group
    /// with each tool and keeps one; a stream coded this way does not use [`encode`](Self::encode).
    pub fn code_group(
        &mut self,
        frames: &[RgbFrame],
        tool: u8,
    ) -> Result<Vec<EncodedFrame>, CoderError> {
        self.check_tool(tool)?;
        let predicted = if self.coders[usize::from(tool)].supports_prediction() {
            FrameType::Predicted
        } else {
            FrameType::Intra
        };
        let mut coded = Vec::with_capacity(frames.len());
        let mut i = 0;
        while i < frames.len() {
            let padded = self.padded(&frames[i])?;
            let next = match frames.get(i + 1) {
                Some(next) if i > 0 && self.bidirectional => Some(self.padded(next)?),
                _ => None,
            };
            let coder = &mut self.coders[usize::from(tool)];
            if predicted == FrameType::Predicted {
                if let Some(next) = next {
                    let (first, second) = coder.encode_pair(&padded, &next)?;
                    coded.extend([first, second]);
                    i += 2;
                    continue;
                }
            }
            let frame_type = if i == 0 { FrameType::Intra } else { predicted };
            coded.push(coder.encode(&padded, frame_type)?);
            i += 1;
        }
        Ok(coded)
    }

    /// Codes one frame of the stream's display size.
    pub fn encode(&mut self, frame: &RgbFrame) -> Result<EncodedFrame, CoderError> {
        let padded = self.padded(frame)?;
        let cut = self.is_cut(&padded, self.since_intra);
        self.encode_padded(&padded, cut)
    }

    /// Codes one frame of the coded size, intra where a group starts or `cut` says so.
    fn encode_padded(&mut self, padded: &RgbFrame, cut: bool) -> Result<EncodedFrame, CoderError> {
        let intra = cut || self.at_group_start();
        if intra {
            self.tool = self.next_tool;
        }
        let frame_type = if intra {
            FrameType::Intra
        } else {
            FrameType::Predicted
        };
        let coded = self.coders[usize::from(self.tool)].encode(padded, frame_type)?;
        self.since_intra = if intra { 1 } else { self.since_intra + 1 };
        Ok(coded)
    }

    /// Whether the next two frames are coded together ([`encode_pair`](Self::encode_pair)):
    /// both predicted, in one group of pictures.
    pub fn pairs_next(&self) -> bool {
        self.bidirectional && !self.at_group_start() && self.since_intra + 1 < self.gop
    }

    /// Codes the next two frames of the stream's display size together (where
    /// [`pairs_next`](Self::pairs_next) says so; otherwise one by one): their two packets.
    pub fn encode_pair(
        &mut self,
        frame: &RgbFrame,
        next: &RgbFrame,
    ) -> Result<(EncodedFrame, EncodedFrame), CoderError> {
        if !self.pairs_next() {
            let first = self.encode(frame)?;
            return Ok((first, self.encode(next)?));
        }
        let (padded, next) = (self.padded(frame)?, self.padded(next)?);
        let cut = self.is_cut(&padded, self.since_intra);
        let next_cut = self.is_cut(&next, self.since_intra + 1);
        if cut || next_cut {
            // A cut in a pair codes its frames one by one; the frame after a cut is the
            // first of its group, never a cut itself.
            let first = self.encode_padded(&padded, cut)?;
            return Ok((first, self.encode_padded(&next, next_cut && !cut)?));
        }
        let coded = self.coders[usize::from(self.tool)].encode_pair(&padded, &next)?;
        self.since_intra += 2;
        Ok(coded)
    }
}

/// A packet's latent, as the first decoding stage leaves it for the second: the integers and
/// the tool whose synthesis turns them into pixels.
#[derive(Debug, Clone)]
pub struct PacketLatent {
    pub tool: u8,
    pub latent: LatentFrame,
}

/// Decodes the packets of one stream to display-size frames.
pub struct FrameDecoder {
    /// One coder per tool of the header.
    coders: Vec<Box<dyn FrameCoder>>,
    header: Header,
    /// The tool of the last packet parsed, which a predicted packet must share.
    reference_tool: Option<u8>,
}

impl FrameDecoder {
    /// A decoder for the stream `header` describes; fails if a model it needs is not in
    /// `models`.
    pub fn new(header: &Header, models: &ModelStore) -> Result<Self, CoderError> {
        let coders = models
            .coders_for(header)?
            .iter()
            .map(|spec| {
                let mut coder = spec.build(header.coded_width, header.coded_height);
                coder.read_streams_as(header.stream_end());
                coder.read_version(header.version);
                coder
            })
            .collect();
        Ok(Self {
            coders,
            header: header.clone(),
            reference_tool: None,
        })
    }

    pub fn decode(&mut self, packet: &Packet) -> Result<RgbFrame, CoderError> {
        let latent = self.parse(packet)?;
        Ok(self.synthesize(&latent))
    }

    /// First stage: entropy decoding of a packet to its latent. Packets must come in order.
    pub fn parse(&mut self, packet: &Packet) -> Result<PacketLatent, CoderError> {
        let coder = self
            .coders
            .get_mut(usize::from(packet.tool))
            .ok_or_else(|| CoderError::Tools(format!("no tool {}", packet.tool)))?;
        if packet.frame_type == FrameType::Predicted
            && self.reference_tool.is_some_and(|t| t != packet.tool)
        {
            return Err(CoderError::Payload(format!(
                "a predicted frame with tool {}, but the frame before it used another",
                packet.tool
            )));
        }
        let latent = coder.parse(packet.frame_type, &packet.payload)?;
        self.reference_tool = Some(packet.tool);
        Ok(PacketLatent {
            tool: packet.tool,
            latent,
        })
    }

    /// Second stage: synthesis of a display-size frame from a latent.
    pub fn synthesize(&mut self, parsed: &PacketLatent) -> RgbFrame {
        // `parse` made `parsed` and checked its tool.
        self.coders[usize::from(parsed.tool)]
            .synthesize(&parsed.latent)
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
        let read = |source: &mut S, frame| {
            source
                .next_frame()
                .map(|f| f.map(Cow::into_owned))
                .map_err(|cause| StreamError::Frames { frame, cause })
        };
        let Some(frame) = read(source, frames)? else {
            break;
        };
        let pairs = encoder.pairs_next() && limit.is_none_or(|m| frames + 2 <= m);
        let next = if pairs {
            read(source, frames + 1)?
        } else {
            None
        };
        let coder_error = |cause| StreamError::Coder {
            frame: frames,
            cause,
        };
        let coded = match &next {
            Some(next) => {
                let (first, second) = encoder.encode_pair(&frame, next).map_err(coder_error)?;
                vec![first, second]
            }
            None => vec![encoder.encode(&frame).map_err(coder_error)?],
        };
        for coded in coded {
            writer.write_packet(
                coded.frame_type,
                encoder.current_tool(),
                frames as i64,
                &coded.payload,
            )?;
            frames += 1;
            if each(frames - 1, &coded).is_break() {
                return Err(StreamError::Stopped(frames));
            }
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
    /// The damage that ended a file early (a truncated or corrupt packet, or an intact one
    /// that does not decode); every frame before it was decoded.
    pub damage: Option<StreamDamage>,
    pub times: StageTimes,
}

/// What ended a decoded stream early.
#[derive(Debug, thiserror::Error)]
pub enum StreamDamage {
    /// The file's bytes: truncated, or failing their checks.
    #[error(transparent)]
    Container(#[from] ContainerError),
    /// A packet whose bytes are intact (its CRC matches) but that does not decode.
    #[error("frame {frame} does not decode: {cause}")]
    Payload { frame: u64, cause: CoderError },
}

/// Decodes every packet `reader` holds into `sink`. `each` hears of every frame written and
/// may stop the stream. Damage in the file ends the stream without an error (see
/// [`DecodedStream::damage`]), and so does a packet that is intact but does not decode:
/// either way every frame before it is in the sink. The caller finishes the sink.
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
                    damage: Some(damage.into()),
                    times,
                })
            }
        };
        let t1 = Instant::now();
        let latent = match decoder.parse(&packet) {
            Ok(latent) => latent,
            Err(cause) => {
                return Ok(DecodedStream {
                    frames,
                    damage: Some(StreamDamage::Payload {
                        frame: frames,
                        cause,
                    }),
                    times,
                })
            }
        };
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
