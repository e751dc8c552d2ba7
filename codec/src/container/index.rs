//! The seek index and the footer that points to it.

use serde::{Deserialize, Serialize};

use super::packet::{payload_len_of, MIN_PACKET_HEAD_LEN};
use super::{ContainerError, FrameType, Header, Result, COMPACT_VERSION};
use crate::varint;

/// Bytes of one index entry before [`COMPACT_VERSION`], and the most a compact one takes.
const INDEX_ENTRY_LEN: u64 = 21;
/// Size of the footer at the very end of the file.
pub const FOOTER_LEN: u64 = 16;
const FOOTER_MAGIC: [u8; 4] = *b"AEZE";

/// Where one packet lives in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexEntry {
    pub pts: i64,
    /// Offset of the packet's first byte.
    pub offset: u64,
    pub frame_type: FrameType,
    /// Whole packet length, head included.
    pub size: u32,
}

/// The last 16 bytes of a file: where the index starts and how long it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footer {
    pub index_offset: u64,
    pub index_len: u32,
}

impl Footer {
    pub fn to_bytes(self) -> [u8; FOOTER_LEN as usize] {
        let mut out = [0u8; FOOTER_LEN as usize];
        out[..8].copy_from_slice(&self.index_offset.to_le_bytes());
        out[8..12].copy_from_slice(&self.index_len.to_le_bytes());
        out[12..].copy_from_slice(&FOOTER_MAGIC);
        out
    }

    /// Parses the footer and checks that it points inside a file of `file_len` bytes.
    pub fn parse(bytes: &[u8], file_len: u64) -> Result<Self> {
        let bytes: &[u8; FOOTER_LEN as usize] = bytes
            .try_into()
            .map_err(|_| ContainerError::BadFooter(format!("expected {FOOTER_LEN} bytes")))?;
        if bytes[12..] != FOOTER_MAGIC {
            return Err(ContainerError::BadFooter(
                "no \"AEZE\" magic at the end of the file (incomplete or not an .aez file)".into(),
            ));
        }
        let footer = Footer {
            index_offset: u64::from_le_bytes(bytes[..8].try_into().unwrap()),
            index_len: u32::from_le_bytes(bytes[8..12].try_into().unwrap()),
        };
        let end = footer
            .index_offset
            .checked_add(super::INDEX_HEAD_LEN + u64::from(footer.index_len) + FOOTER_LEN);
        if end != Some(file_len) {
            return Err(ContainerError::BadFooter(format!(
                "index at byte {} of length {} does not end where the footer starts (file is {file_len} bytes)",
                footer.index_offset, footer.index_len
            )));
        }
        Ok(footer)
    }
}

/// Largest index a header with this frame count may have.
pub(super) fn max_index_len(header: &Header) -> u64 {
    INDEX_ENTRY_LEN * u64::from(header.frame_count) + 16
}

/// Bytes of a compact index entry for a packet of `size` bytes whose pts is `pts_delta` after
/// the previous packet's.
pub fn index_entry_len(pts_delta: i64, size: u64) -> u64 {
    varint::len_i64(pts_delta) + varint::len_u64(2 * size + 1)
}

/// Serializes the entries as this build writes them: per packet, its pts's change from the
/// entry before (zigzag LEB128; the first from 0), then twice its size plus its frame type
/// (LEB128). Offsets follow from the sizes.
pub(super) fn encode_index(entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 * entries.len());
    let mut last_pts = 0i64;
    for e in entries {
        varint::write_i64(&mut out, e.pts.wrapping_sub(last_pts));
        varint::write_u64(
            &mut out,
            2 * u64::from(e.size) + u64::from(u8::from(e.frame_type)),
        );
        last_pts = e.pts;
    }
    out
}

/// Parses compact index entries (version 9 on), placing each packet after the one before.
fn decode_compact(bytes: &[u8], first_packet: u64) -> std::result::Result<Vec<IndexEntry>, String> {
    let mut rest = bytes;
    let mut entries = Vec::new();
    let (mut pts, mut offset) = (0i64, first_packet);
    while !rest.is_empty() {
        let i = entries.len();
        let delta = varint::read_i64(&mut rest).map_err(|e| format!("entry {i}'s pts: {e}"))?;
        let sized = varint::read_u64(&mut rest).map_err(|e| format!("entry {i}'s size: {e}"))?;
        pts = pts
            .checked_add(delta)
            .ok_or_else(|| format!("entry {i}'s pts overflows"))?;
        let size = u32::try_from(sized >> 1).map_err(|_| format!("entry {i}'s size overflows"))?;
        let frame_type = FrameType::from_byte((sized & 1) as u8).expect("one bit is a frame type");
        entries.push(IndexEntry {
            pts,
            offset,
            frame_type,
            size,
        });
        offset = offset
            .checked_add(u64::from(size))
            .ok_or_else(|| format!("entry {i}'s offset overflows"))?;
    }
    Ok(entries)
}

/// Parses index entries and checks them against the header: count, order, bounds.
pub(super) fn decode_index(
    bytes: &[u8],
    header: &Header,
    first_packet: u64,
    index_offset: u64,
) -> Result<Vec<IndexEntry>> {
    let bad = |what: String| ContainerError::BadIndex {
        offset: index_offset,
        what,
    };
    if bytes.len() as u64 > max_index_len(header) {
        return Err(bad(format!(
            "{} bytes is too long for {} frames",
            bytes.len(),
            header.frame_count
        )));
    }
    // The length check above bounds what either layout may allocate.
    let entries: Vec<IndexEntry> = if header.version >= COMPACT_VERSION {
        decode_compact(bytes, first_packet).map_err(&bad)?
    } else {
        super::decode_struct::<_, { 1 << 30 }>(bytes).map_err(&bad)?
    };
    if entries.len() != header.frame_count as usize {
        return Err(bad(format!(
            "{} entries for {} frames",
            entries.len(),
            header.frame_count
        )));
    }
    let mut expected_offset = first_packet;
    let mut last_pts = None;
    for (i, e) in entries.iter().enumerate() {
        if e.offset != expected_offset {
            return Err(bad(format!(
                "entry {i} points to byte {}, expected {expected_offset}",
                e.offset
            )));
        }
        if u64::from(e.size) < MIN_PACKET_HEAD_LEN
            || payload_len_of(header.version, e.pts, u64::from(e.size)).is_none()
        {
            return Err(bad(format!(
                "entry {i} has size {}, which no packet head and payload make",
                e.size
            )));
        }
        if last_pts.is_some_and(|p| e.pts <= p) {
            return Err(bad(format!(
                "entry {i} has pts {} not after the previous",
                e.pts
            )));
        }
        last_pts = Some(e.pts);
        expected_offset += u64::from(e.size);
    }
    if expected_offset != index_offset {
        return Err(bad(format!(
            "packets end at byte {expected_offset}, index starts at {index_offset}"
        )));
    }
    Ok(entries)
}
