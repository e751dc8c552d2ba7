//! The header: what every reader needs before the first packet.

use serde::{Deserialize, Serialize};

/// Largest serialized header accepted.
pub const MAX_HEADER_LEN: u32 = 65_536;
/// Largest width or height accepted.
pub const MAX_DIMENSION: u32 = 16_384;
/// Largest frame area accepted (8K UHD).
pub const MAX_PIXELS: u64 = 8192 * 4320;
/// Largest frame count accepted.
pub const MAX_FRAMES: u32 = 10_000_000;
/// Largest model file a header may announce.
pub const MAX_MODEL_BYTES: u64 = 1 << 30;
/// Largest numerator or denominator of a rational.
pub const MAX_RATIONAL_TERM: u32 = 1_000_000;
/// Most coding tools one stream may switch between (a packet names its tool in 7 bits).
pub const MAX_TOOLS: usize = 16;

/// Smallest and largest quantizer step of a detail layer (`CodingParams::LearnedDetail`).
pub const MIN_DETAIL_STEP: f32 = 1.0;
pub const MAX_DETAIL_STEP: f32 = 255.0;

/// The pixel coder's quantizer steps (`CodingParams::Pixel`; 1 is lossless).
pub const PIXEL_STEPS: std::ops::RangeInclusive<u8> = 1..=64;

/// Why a header is refused: the field, its value and the limit it breaks (docs/FORMAT.md),
/// or what kept the header from being read at all.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HeaderError {
    #[error("header length {0} outside 1..={max}", max = super::MAX_HEADER_LEN)]
    Length(u32),
    #[error("header of {0} bytes is too long")]
    TooLong(usize),
    #[error("CRC-32 mismatch (stored {stored:08x}, computed {computed:08x})")]
    Crc { stored: u32, computed: u32 },
    /// The header's bytes do not decode as the version's layout.
    #[error("{0}")]
    Layout(String),
    #[error("{name} {value} outside 1..={MAX_DIMENSION}")]
    Dimension { name: &'static str, value: u32 },
    #[error("{width}x{height} is more than {MAX_PIXELS} pixels")]
    Pixels { width: u32, height: u32 },
    #[error("{name} {coded} not within 0..=255 above {shown}")]
    CodedSize {
        name: &'static str,
        coded: u32,
        shown: u32,
    },
    #[error("{0} coding tools, not 1..={MAX_TOOLS}")]
    ToolCount(usize),
    #[error("coded size {width}x{height} is not a multiple of the coder's stride {stride}")]
    Stride {
        width: u32,
        height: u32,
        stride: u32,
    },
    #[error("{what} {num}/{den} has a term outside 1..={MAX_RATIONAL_TERM}")]
    Rational {
        what: &'static str,
        num: u32,
        den: u32,
    },
    #[error("frame_rate {0} is above 1000 fps")]
    FrameRate(Rational),
    #[error("frame_count {0} above {MAX_FRAMES}")]
    FrameCount(u32),
    #[error("pixel step {0} outside {min}..={max}", min = PIXEL_STEPS.start(), max = PIXEL_STEPS.end())]
    PixelStep(u8),
    #[error("PCA block {0} is not 4, 8, 16 or 32")]
    PcaBlock(u8),
    #[error("PCA keeps {components} components of {dims}")]
    PcaComponents { components: u16, dims: u32 },
    #[error("PCA step {0} is not a positive number")]
    PcaStep(f32),
    #[error("detail step {0} outside {MIN_DETAIL_STEP}..={MAX_DETAIL_STEP}")]
    DetailStep(f32),
    #[error("model_bytes {0} above {MAX_MODEL_BYTES}")]
    ModelBytes(u64),
}

/// Refuses a stream of `count` coding tools unless it is 1..=[`MAX_TOOLS`].
pub fn check_tool_count(count: usize) -> Result<(), HeaderError> {
    if (1..=MAX_TOOLS).contains(&count) {
        Ok(())
    } else {
        Err(HeaderError::ToolCount(count))
    }
}

/// An exact ratio of two positive integers (frame rates, time bases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rational {
    pub num: u32,
    pub den: u32,
}

impl Rational {
    pub const fn new(num: u32, den: u32) -> Self {
        Self { num, den }
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }

    /// Seconds of `ticks` of this time base (a packet's `pts`).
    pub fn seconds(self, ticks: i64) -> f64 {
        ticks as f64 * f64::from(self.num) / f64::from(self.den)
    }

    fn check(self, what: &'static str) -> Result<(), HeaderError> {
        let ok = |t: u32| (1..=MAX_RATIONAL_TERM).contains(&t);
        if ok(self.num) && ok(self.den) {
            Ok(())
        } else {
            Err(HeaderError::Rational {
                what,
                num: self.num,
                den: self.den,
            })
        }
    }
}

/// Reads what `Display` writes, `num/den`, or a whole number (`25` is 25/1); each term must
/// be 1 to the largest a header allows.
impl std::str::FromStr for Rational {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let term = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{text:?} is not a ratio of whole numbers such as 30000/1001"))
        };
        let rational = match text.split_once('/') {
            Some((num, den)) => Self::new(term(num)?, term(den)?),
            None => Self::new(term(text)?, 1),
        };
        rational.check("ratio").map_err(|e| e.to_string())?;
        Ok(rational)
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// How samples are to be interpreted. Stored as one byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum ColorSpace {
    /// 8-bit sRGB, full range, packed R, G, B.
    Srgb8,
}

impl From<ColorSpace> for u8 {
    fn from(c: ColorSpace) -> u8 {
        match c {
            ColorSpace::Srgb8 => 0,
        }
    }
}

impl TryFrom<u8> for ColorSpace {
    type Error = String;

    fn try_from(b: u8) -> Result<Self, String> {
        match b {
            0 => Ok(ColorSpace::Srgb8),
            _ => Err(format!("unknown colour space {b}")),
        }
    }
}

/// The coding tool a file was written with, and its parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub enum CodingParams {
    /// Uniformly quantized pixels, left-neighbour DPCM, one fitted table per frame.
    Pixel { step: u8 },
    /// Block PCA: `block`×`block` RGB patches, `components` kept, quantizer `step`.
    Pca {
        block: u8,
        components: u16,
        step: f32,
    },
    /// A learned autoencoder; `quality` is informational, the model file is authoritative.
    Learned { quality: u8 },
    /// A learned autoencoder plus a detail layer: the residual in 8×8 blocks, quantized with
    /// `detail_step` (`crate::coders::detail`). `quality` is informational.
    LearnedDetail { quality: u8, detail_step: f32 },
}

impl CodingParams {
    fn check(&self) -> Result<(), HeaderError> {
        match *self {
            CodingParams::Pixel { step } if !PIXEL_STEPS.contains(&step) => {
                Err(HeaderError::PixelStep(step))
            }
            CodingParams::Pca {
                block,
                components,
                step,
            } => {
                if !matches!(block, 4 | 8 | 16 | 32) {
                    return Err(HeaderError::PcaBlock(block));
                }
                let dims = 3 * u32::from(block) * u32::from(block);
                if components == 0 || u32::from(components) > dims {
                    return Err(HeaderError::PcaComponents { components, dims });
                }
                if !(step.is_finite() && step > 0.0) {
                    return Err(HeaderError::PcaStep(step));
                }
                Ok(())
            }
            CodingParams::LearnedDetail { detail_step, .. }
                if !(MIN_DETAIL_STEP..=MAX_DETAIL_STEP).contains(&detail_step) =>
            {
                Err(HeaderError::DetailStep(detail_step))
            }
            _ => Ok(()),
        }
    }

    /// The coded size of a learned stream is a multiple of this (docs/FORMAT.md): one latent
    /// element spans 16×16 pixels (`LearnedArch::downsampling`).
    pub const LEARNED_STRIDE: u32 = 16;

    /// The padding stride the coder needs.
    pub fn stride(&self) -> u32 {
        match *self {
            CodingParams::Pixel { .. } => 1,
            CodingParams::Pca { block, .. } => u32::from(block),
            CodingParams::Learned { .. } | CodingParams::LearnedDetail { .. } => {
                Self::LEARNED_STRIDE
            }
        }
    }
}

/// One way a stream's packets may be coded: a model, named by its id, and the parameters it
/// codes with. A stream lists the tools it uses in its header; each packet names one, and a
/// predicted packet uses the tool of the frame before it, so tools change at intra frames only
/// (rate control picks one per group of pictures).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CodingTool {
    /// SHA-256 of the model file needed to decode.
    pub model_id: crate::model_file::ModelId,
    /// Size of that model file (what a client downloads once); 0 for the pixel coder.
    pub model_bytes: u64,
    pub coding: CodingParams,
}

impl CodingTool {
    fn check(&self) -> Result<(), HeaderError> {
        self.coding.check()?;
        if self.model_bytes > MAX_MODEL_BYTES {
            return Err(HeaderError::ModelBytes(self.model_bytes));
        }
        Ok(())
    }
}

/// Everything a reader needs before the first packet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub width: u32,
    pub height: u32,
    pub coded_width: u32,
    pub coded_height: u32,
    pub frame_rate: Rational,
    pub time_base: Rational,
    pub frame_count: u32,
    pub color: ColorSpace,
    /// The coding tools packets may use, 1..=[`MAX_TOOLS`]; a packet's tool is an index here.
    pub tools: Vec<CodingTool>,
    /// The built-in quality level the file was coded at (`aecodec encode --quality`), or 0
    /// where it was not coded at one level (a model of one's own, rate control). What the user
    /// asked for, apart from the tools' models' training quality; decoding does not read it.
    /// Stored from version 6; 0 in older files.
    pub level: u8,
    /// The file's format version, from its preamble (not stored in the header itself).
    #[serde(skip)]
    pub version: u16,
}

/// The header as version 5 stores it: without the level.
#[derive(Deserialize)]
pub(super) struct ToolListHeader {
    width: u32,
    height: u32,
    coded_width: u32,
    coded_height: u32,
    frame_rate: Rational,
    time_base: Rational,
    frame_count: u32,
    color: ColorSpace,
    tools: Vec<CodingTool>,
}

impl From<ToolListHeader> for Header {
    fn from(h: ToolListHeader) -> Self {
        Header {
            width: h.width,
            height: h.height,
            coded_width: h.coded_width,
            coded_height: h.coded_height,
            frame_rate: h.frame_rate,
            time_base: h.time_base,
            frame_count: h.frame_count,
            color: h.color,
            tools: h.tools,
            level: 0,
            version: 0,
        }
    }
}

/// The header as versions 2 to 4 store it: one tool, its fields inline.
#[derive(Deserialize)]
pub(super) struct SingleToolHeader {
    width: u32,
    height: u32,
    coded_width: u32,
    coded_height: u32,
    frame_rate: Rational,
    time_base: Rational,
    frame_count: u32,
    color: ColorSpace,
    model_id: crate::model_file::ModelId,
    model_bytes: u64,
    coding: CodingParams,
}

impl From<SingleToolHeader> for Header {
    fn from(h: SingleToolHeader) -> Self {
        Header {
            width: h.width,
            height: h.height,
            coded_width: h.coded_width,
            coded_height: h.coded_height,
            frame_rate: h.frame_rate,
            time_base: h.time_base,
            frame_count: h.frame_count,
            color: h.color,
            tools: vec![CodingTool {
                model_id: h.model_id,
                model_bytes: h.model_bytes,
                coding: h.coding,
            }],
            level: 0,
            version: 0,
        }
    }
}

impl Header {
    /// How the file's entropy-coded streams end: sealed from version 4 on, their final state
    /// in its shortest form from version 16 on.
    pub fn stream_end(&self) -> crate::entropy::StreamEnd {
        if self.version >= crate::container::FIRST_TIGHT_STREAM_VERSION {
            crate::entropy::StreamEnd::Tight
        } else if self.version >= 4 {
            crate::entropy::StreamEnd::Sealed
        } else {
            crate::entropy::StreamEnd::Legacy
        }
    }

    /// Checks every field against the limits in docs/FORMAT.md; the message names the field.
    pub fn validate(&self) -> Result<(), HeaderError> {
        for (name, value) in [("width", self.width), ("height", self.height)] {
            if !(1..=MAX_DIMENSION).contains(&value) {
                return Err(HeaderError::Dimension { name, value });
            }
        }
        let pixels = u64::from(self.width) * u64::from(self.height);
        if pixels > MAX_PIXELS {
            return Err(HeaderError::Pixels {
                width: self.width,
                height: self.height,
            });
        }
        for (name, coded, shown) in [
            ("coded_width", self.coded_width, self.width),
            ("coded_height", self.coded_height, self.height),
        ] {
            if coded < shown || coded - shown > 255 {
                return Err(HeaderError::CodedSize { name, coded, shown });
            }
        }
        check_tool_count(self.tools.len())?;
        for tool in &self.tools {
            tool.check()?;
            let stride = tool.coding.stride();
            if !self.coded_width.is_multiple_of(stride) || !self.coded_height.is_multiple_of(stride)
            {
                return Err(HeaderError::Stride {
                    width: self.coded_width,
                    height: self.coded_height,
                    stride,
                });
            }
        }
        self.frame_rate.check("frame_rate")?;
        if self.frame_rate.num / self.frame_rate.den > 1000 {
            return Err(HeaderError::FrameRate(self.frame_rate));
        }
        self.time_base.check("time_base")?;
        if self.frame_count > MAX_FRAMES {
            return Err(HeaderError::FrameCount(self.frame_count));
        }
        Ok(())
    }

    /// Tool `index` of the stream, if it has one.
    pub fn tool(&self, index: u8) -> Option<&CodingTool> {
        self.tools.get(usize::from(index))
    }

    /// The distinct models the stream needs, with their sizes, in tool order.
    pub fn models(&self) -> Vec<(crate::model_file::ModelId, u64)> {
        let mut models: Vec<(crate::model_file::ModelId, u64)> = Vec::new();
        for t in &self.tools {
            if !models.iter().any(|(id, _)| *id == t.model_id) {
                models.push((t.model_id, t.model_bytes));
            }
        }
        models
    }

    /// The largest payload a packet of this stream may carry.
    pub fn max_payload_len(&self) -> u64 {
        3 * u64::from(self.coded_width) * u64::from(self.coded_height) + 65_536
    }

    /// Duration of the stream in seconds.
    pub fn duration_s(&self) -> f64 {
        f64::from(self.frame_count) / self.frame_rate.as_f64()
    }
}

#[cfg(test)]
mod tests {
    use super::Rational;

    #[test]
    fn a_rational_reads_back_what_it_writes() {
        for r in [Rational::new(30000, 1001), Rational::new(25, 1)] {
            assert_eq!(r.to_string().parse::<Rational>(), Ok(r));
        }
        assert_eq!("25".parse::<Rational>(), Ok(Rational::new(25, 1)));
        for bad in ["", "25/", "/1", "0/1", "1/0", "2.5", "-25/1", "2000000/1"] {
            assert!(bad.parse::<Rational>().is_err(), "{bad}");
        }
    }
}
