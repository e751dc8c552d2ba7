//! The `.aez` container: a preamble and header, one packet per frame, an index and a footer.
//! The byte layout is specified in docs/FORMAT.md; this module is its only implementation.

mod header;
mod index;
mod packet;
mod reader;
mod stats;
mod writer;

pub use header::{
    check_tool_count, CodingParams, CodingTool, ColorSpace, Header, HeaderError, Rational,
    MAX_DETAIL_STEP, MAX_DIMENSION, MAX_FRAMES, MAX_HEADER_LEN, MAX_PIXELS, MAX_TOOLS,
    MIN_DETAIL_STEP, PIXEL_STEPS,
};
pub use index::{index_entry_len, Footer, IndexEntry, FOOTER_LEN};
pub use packet::{packet_head_len, payload_len_of, MAX_PACKET_HEAD_LEN, MIN_PACKET_HEAD_LEN};
pub use reader::{ContainerReader, SeekableReader};
pub use stats::{FileStats, LayerBytes, PacketLayers, ToolStats};
pub use writer::ContainerWriter;

/// First four bytes of every `.aez` file.
pub const MAGIC: [u8; 4] = *b"AEZV";
/// The container version this build writes. Version 2 changed the learned coder's predicted
/// frames (context-chosen tables); version 1 files must be encoded again. Version 3 added
/// motion fields to them, flagged in each payload, so version 2 files are still read. Version 4
/// seals every entropy-coded stream (the ANS encoder starts from state 2^32, not 0), so that a
/// payload that ends before its symbols do is recognized ([`crate::entropy::StreamEnd`]).
/// Version 5 lists several coding tools in the header ([`CodingTool`]) and names one in each
/// packet, so a stream can change model or quantizer at an intra frame (rate control); its
/// payloads are those of version 4. Version 6 records the level asked for and adds motion-compensated
/// detail frames. Version 7 adds the learned latent's channel context to the intra payloads of
/// models with a latent step (`crate::learned::context`) and the learned residual of
/// motion-compensated frames. Version 8 codes the motion fields of motion-compensated frames
/// anew: blocks of 16×16 or four 8×8 cells, and vectors that follow their neighbours' said by a
/// flag. Version 9 writes each packet's pts and payload length, and the index, as
/// variable-length integers (about 13 bytes a frame instead of 39). Version 10 deblocks every
/// frame's detail layer, not only motion-compensated frames'. Version 11 names the table groups
/// a detail layer uses as a list where it uses few of them (a moved frame's layer uses 20–40
/// of 800), instead of always a 100-byte mask. Version 12 lets a motion-compensated frame keep the
/// table bytes of the one before it in its group of pictures, writing only those that change.
/// Version 13 adds bidirectional frames: a packet may carry the next frame hidden (an anchor),
/// then its own frame predicted from the frames either side; the packet after it shows the
/// anchor. Version 14 lets a bidirectional frame give each unit of its motion field (a block
/// or a cell) its own side, and moves a learned intra latent's tables by how its decoded
/// neighbours strayed from theirs (an activity context). Version 15 codes the changes of motion
/// vectors as binary flags (zero, sign, length in bits, the bits below the leading one) instead
/// of under one table of the scale bank. Version 16 codes a motion-compensated frame's field and
/// layer in one ANS stream (each stream's end costs about 6 bytes), and ends every stream with its
/// final state in as few bytes as hold it (5 to 8) instead of two whole words; its motion fields
/// code changes of 32 quarter pixels or more at half-pixel precision; and a packet with an
/// empty payload (the one that shows a hidden anchor) has no payload CRC. Version 17 gives each
/// 16×16 block of a moved frame a mode (all of its moved picture, its smooth part, or its
/// cells' means); version 18 adds the intra mode, whose cells are predicted from the decoded
/// pixels beside them.
pub const VERSION: u16 = 18;
/// The first version whose header lists coding tools; older ones hold exactly one, inline.
pub const FIRST_TOOL_LIST_VERSION: u16 = 5;
/// The first version whose header records the quality level asked for.
pub const FIRST_LEVEL_VERSION: u16 = 6;
/// The first version whose intra payloads of models with a latent step carry a channel context.
pub const FIRST_CONTEXT_VERSION: u16 = 7;
/// The first version whose motion-compensated frames may split their blocks
/// (`crate::coders::detail` motion fields).
pub const FIRST_SPLIT_MOTION_VERSION: u16 = 8;
/// The first version with compact packet heads and index entries.
pub const COMPACT_VERSION: u16 = 9;
/// The first version that deblocks every frame's detail layer.
pub const FIRST_DEBLOCK_ALL_VERSION: u16 = 10;
/// The first version whose detail layers may list the table groups they use.
pub const FIRST_LISTED_GROUPS_VERSION: u16 = 11;
/// The first version whose motion-compensated frames may keep the tables of the one before.
pub const FIRST_KEPT_TABLES_VERSION: u16 = 12;
/// The first version with bidirectional frames and the anchors they hide.
pub const FIRST_BIDIRECTIONAL_VERSION: u16 = 13;
/// The first version whose bidirectional frames may give each unit of their field its own side.
pub const FIRST_SIDES_PER_UNIT_VERSION: u16 = 14;
/// The first version whose learned intra payloads with a channel context carry an activity
/// context after it.
pub const FIRST_ACTIVITY_VERSION: u16 = 14;
/// The first version whose motion fields code their vectors' changes as flags.
pub const FIRST_CLASSED_CHANGES_VERSION: u16 = 15;
/// The first version whose motion-compensated frames code their field and layer in one stream.
pub const FIRST_SHARED_STREAM_VERSION: u16 = 16;
/// The first version whose motion fields code large changes at half-pixel precision.
pub const FIRST_COARSE_CHANGES_VERSION: u16 = 16;
/// The first version whose ANS streams write their final state in its shortest form.
pub const FIRST_TIGHT_STREAM_VERSION: u16 = 16;
/// The first version whose packets with an empty payload have no payload CRC (and whose
/// `LearnedDetail` packets that show a hidden anchor are empty).
pub const FIRST_EMPTY_PACKET_VERSION: u16 = 16;
/// The first version whose moved frames give each 16×16 block a mode: all of its moved
/// picture, its smooth part, or its cells' means.
pub const FIRST_BLOCK_MODES_VERSION: u16 = 17;
/// The first version whose moved frames' blocks may be predicted from their own frame.
pub const FIRST_INTRA_BLOCKS_VERSION: u16 = 18;
/// The oldest container version this build reads.
pub const OLDEST_READABLE_VERSION: u16 = 2;
/// Bytes before the header: magic, version, header length, header CRC.
pub const PREAMBLE_LEN: u64 = 14;
/// Bytes before the index entries: marker, length, CRC.
pub const INDEX_HEAD_LEN: u64 = 9;

const PACKET_MARKER: u8 = b'P';
const INDEX_MARKER: u8 = b'I';

/// Whether a frame can be decoded alone. Stored as one byte (0 intra, 1 predicted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(into = "u8", try_from = "u8")]
pub enum FrameType {
    /// Decodable on its own; playback and seeking can start here.
    Intra,
    /// Needs the previously decoded frame.
    Predicted,
}

impl From<FrameType> for u8 {
    fn from(t: FrameType) -> u8 {
        t.to_byte()
    }
}

impl TryFrom<u8> for FrameType {
    type Error = String;

    fn try_from(b: u8) -> Result<Self, String> {
        FrameType::from_byte(b).ok_or_else(|| format!("unknown frame type {b}"))
    }
}

impl FrameType {
    fn to_byte(self) -> u8 {
        match self {
            FrameType::Intra => 0,
            FrameType::Predicted => 1,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(FrameType::Intra),
            1 => Some(FrameType::Predicted),
            _ => None,
        }
    }
}

/// The frame type and tool a packet's flags byte holds (the frame type in bit 0, the tool in
/// bits 1 to 7).
fn split_packet_flags(flags: u8) -> (FrameType, u8) {
    let frame_type = FrameType::from_byte(flags & 1).expect("one bit is a frame type");
    (frame_type, flags >> 1)
}

/// One coded frame as stored in the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    pub frame_type: FrameType,
    /// Which of the header's coding tools coded it.
    pub tool: u8,
    pub pts: i64,
    pub payload: Vec<u8>,
    /// Byte offset of the packet's first byte in the file.
    pub offset: u64,
    /// Bytes of its head in the file.
    pub head_len: u64,
}

impl Packet {
    /// Bytes the packet occupies in the file, head included.
    pub fn stored_len(&self) -> u64 {
        self.head_len + self.payload.len() as u64
    }
}

/// What is wrong with an `.aez` file, and where.
#[derive(Debug, thiserror::Error)]
pub enum ContainerError {
    #[error(transparent)]
    Io(#[from] std::io::Error),
    #[error("not an .aez file: the first bytes are {0:02x?}, expected \"AEZV\"")]
    BadMagic(Vec<u8>),
    #[error("unsupported .aez version {0}; this build reads versions {OLDEST_READABLE_VERSION} to {VERSION} (encode the source again with this build)")]
    UnsupportedVersion(u16),
    #[error("file ends inside the header (it needs {needed} bytes from offset 0)")]
    TruncatedHeader { needed: u64 },
    #[error("invalid header: {0}")]
    BadHeader(#[from] HeaderError),
    #[error("packet {frame} at byte {offset}: {what}")]
    BadPacket {
        frame: u64,
        offset: u64,
        what: String,
    },
    #[error("packet {frame} at byte {offset}: payload CRC-32 mismatch (stored {stored:08x}, computed {computed:08x})")]
    PayloadCrc {
        frame: u64,
        offset: u64,
        stored: u32,
        computed: u32,
    },
    #[error("file truncated at byte {offset}, inside packet {frame}; the {frame} frames before it are complete")]
    Truncated { frame: u64, offset: u64 },
    #[error("invalid index at byte {offset}: {what}")]
    BadIndex { offset: u64, what: String },
    #[error("invalid footer: {0}")]
    BadFooter(String),
    #[error("frame {0} is not in this file")]
    NoSuchFrame(u64),
}

impl ContainerError {
    /// True when the file simply ends early: every packet before the damage was valid.
    pub fn is_truncation(&self) -> bool {
        matches!(
            self,
            ContainerError::Truncated { .. } | ContainerError::TruncatedHeader { .. }
        )
    }
}

pub type Result<T, E = ContainerError> = std::result::Result<T, E>;

/// bincode settings for every structured part, with the given size limit.
fn bincode_config<const LIMIT: usize>() -> impl bincode::config::Config {
    bincode::config::legacy().with_limit::<LIMIT>()
}

/// Serializes `value` with the container's bincode settings.
fn encode_struct<T: serde::Serialize>(value: &T) -> Vec<u8> {
    // Serializing owned, plain structs into a Vec cannot fail.
    bincode::serde::encode_to_vec(value, bincode::config::legacy())
        .expect("bincode serialization of a plain struct")
}

/// Deserializes exactly `bytes` (trailing bytes are an error) with a size limit.
fn decode_struct<T: serde::de::DeserializeOwned, const LIMIT: usize>(
    bytes: &[u8],
) -> std::result::Result<T, String> {
    let (value, used) = bincode::serde::decode_from_slice(bytes, bincode_config::<LIMIT>())
        .map_err(|e| e.to_string())?;
    if used != bytes.len() {
        return Err(format!("{} trailing bytes", bytes.len() - used));
    }
    Ok(value)
}

fn crc32(bytes: &[u8]) -> u32 {
    crc32fast::hash(bytes)
}
