//! A packet's head: what the container says about one frame before its payload. Files before
//! [`COMPACT_VERSION`] give it 18 fixed bytes; from that version its pts and payload length
//! are variable-length integers (LEB128), so a head is usually 10 bytes. From
//! [`FIRST_EMPTY_PACKET_VERSION`] a packet with an empty payload has no payload CRC (a frame
//! that only shows one decoded before it: 4 bytes).

use std::io::Read;

use super::{
    split_packet_flags, ContainerError, FrameType, Header, Result, COMPACT_VERSION,
    FIRST_EMPTY_PACKET_VERSION, PACKET_MARKER,
};
use crate::varint;

/// Bytes of a head in files before [`COMPACT_VERSION`].
const FIXED_HEAD_LEN: u64 = 18;
/// Bytes of a head's parts besides its two integers: marker, flags and payload CRC.
const COMPACT_FIXED_PARTS: u64 = 6;
/// Bytes of a payload CRC.
const CRC_LEN: u64 = 4;
/// The shortest head of any version: marker, flags, one-byte pts and length (and no CRC: an
/// empty payload from [`FIRST_EMPTY_PACKET_VERSION`]).
pub const MIN_PACKET_HEAD_LEN: u64 = COMPACT_FIXED_PARTS - CRC_LEN + 2;
/// The longest head of any version: marker, flags, 10-byte pts, 5-byte length, CRC.
pub const MAX_PACKET_HEAD_LEN: u64 = COMPACT_FIXED_PARTS + 15;

/// The head of one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct PacketHead {
    pub frame_type: FrameType,
    pub tool: u8,
    pub pts: i64,
    pub payload_len: u64,
    pub payload_crc: u32,
}

/// Whether a packet's head in a file of `version` carries a payload CRC: all but those with an
/// empty payload from [`FIRST_EMPTY_PACKET_VERSION`].
fn has_crc(version: u16, payload_len: u64) -> bool {
    payload_len > 0 || version < FIRST_EMPTY_PACKET_VERSION
}

/// Bytes of the head of a packet with this pts and payload length in a file of `version`.
pub fn packet_head_len(version: u16, pts: i64, payload_len: u64) -> u64 {
    if version < COMPACT_VERSION {
        FIXED_HEAD_LEN
    } else {
        let crc = if has_crc(version, payload_len) {
            0
        } else {
            CRC_LEN
        };
        COMPACT_FIXED_PARTS - crc + varint::len_i64(pts) + varint::len_u64(payload_len)
    }
}

/// The payload length of a packet of `size` bytes (head included) with this pts, in a file
/// of `version`; `None` when no head and payload add up to `size`.
pub fn payload_len_of(version: u16, pts: i64, size: u64) -> Option<u64> {
    if version < COMPACT_VERSION {
        return size.checked_sub(FIXED_HEAD_LEN);
    }
    // The head grows with the length, one byte per 7 bits: at most one length fits (and an
    // empty payload, whose head may have no CRC, fits only its own size).
    if packet_head_len(version, pts, 0) == size {
        return Some(0);
    }
    let before = COMPACT_FIXED_PARTS + varint::len_i64(pts);
    (1..=10).find_map(|len_bytes| {
        let payload = size.checked_sub(before + len_bytes)?;
        let fits = varint::len_u64(payload) == len_bytes;
        (fits && has_crc(version, payload)).then_some(payload)
    })
}

/// The flags byte: the frame type in bit 0, the tool in bits 1 to 7. Files before version 5
/// have one tool, so their byte is the frame type alone, as they define it.
fn packet_flags(frame_type: FrameType, tool: u8) -> u8 {
    u8::from(frame_type) | (tool << 1)
}

/// Refuses a packet `frame` at byte `offset` whose first byte is not [`PACKET_MARKER`].
pub(super) fn check_marker(marker: u8, frame: u64, offset: u64) -> Result<()> {
    if marker != PACKET_MARKER {
        return Err(ContainerError::BadPacket {
            frame,
            offset,
            what: format!("marker byte {marker:#04x} is not a packet"),
        });
    }
    Ok(())
}

impl PacketHead {
    /// The head as a file of `version` (compact, [`COMPACT_VERSION`] on) has it.
    pub fn to_bytes(self, version: u16) -> Vec<u8> {
        debug_assert!(
            version >= COMPACT_VERSION,
            "this build writes compact heads"
        );
        let mut out = vec![PACKET_MARKER, packet_flags(self.frame_type, self.tool)];
        varint::write_i64(&mut out, self.pts);
        varint::write_u64(&mut out, self.payload_len);
        if has_crc(version, self.payload_len) {
            out.extend_from_slice(&self.payload_crc.to_le_bytes());
        }
        out
    }

    /// Reads a head from `input`, whose marker byte has been read already and was
    /// [`PACKET_MARKER`] ([`check_marker`]): the head and the bytes it took. `Ok(None)` means
    /// the input ended inside it.
    pub fn read(
        input: &mut impl Read,
        header: &Header,
        frame: u64,
        offset: u64,
    ) -> Result<Option<(Self, u64)>> {
        let mut bytes = vec![PACKET_MARKER];
        let rest = if header.version < COMPACT_VERSION {
            FIXED_HEAD_LEN as usize - 1
        } else {
            // Flags, the two integers byte by byte (each ends at a byte below 0x80, or is
            // refused after 10), then the CRC.
            let mut byte = [0u8; 1];
            if super::reader::read_up_to(input, &mut byte)? == 0 {
                return Ok(None);
            }
            bytes.push(byte[0]);
            let mut length_starts = 0;
            for _ in 0..2 {
                length_starts = bytes.len();
                for _ in 0..10 {
                    if super::reader::read_up_to(input, &mut byte)? == 0 {
                        return Ok(None);
                    }
                    bytes.push(byte[0]);
                    if byte[0] < 0x80 {
                        break;
                    }
                }
            }
            // A length that does not parse is refused below, whatever follows it.
            let length = varint::read_u64(&mut &bytes[length_starts..]).unwrap_or(1);
            if has_crc(header.version, length) {
                CRC_LEN as usize
            } else {
                0
            }
        };
        let start = bytes.len();
        bytes.resize(start + rest, 0);
        if super::reader::read_up_to(input, &mut bytes[start..])? < rest {
            return Ok(None);
        }
        let (head, used) = Self::parse(&bytes, header, frame, offset)?;
        debug_assert_eq!(used, bytes.len() as u64);
        Ok(Some((head, used)))
    }

    /// Parses and checks the head at the front of `bytes` (marker included); returns it and
    /// the bytes it took. Bytes that end inside the head are a bad packet.
    pub fn parse(bytes: &[u8], header: &Header, frame: u64, offset: u64) -> Result<(Self, u64)> {
        let bad = |what: String| ContainerError::BadPacket {
            frame,
            offset,
            what,
        };
        let short = || bad("packet head cut short".into());
        let (&marker, mut rest) = bytes.split_first().ok_or_else(short)?;
        check_marker(marker, frame, offset)?;
        let (&flags, after) = rest.split_first().ok_or_else(short)?;
        rest = after;
        let (frame_type, tool) = split_packet_flags(flags);
        if header.tool(tool).is_none() {
            return Err(bad(format!(
                "flags byte {flags:#04x} names tool {tool}, but the header lists {}",
                header.tools.len()
            )));
        }
        let (pts, payload_len) = if header.version < COMPACT_VERSION {
            if rest.len() < 12 {
                return Err(short());
            }
            let pts = i64::from_le_bytes(rest[..8].try_into().unwrap());
            let len = u32::from_le_bytes(rest[8..12].try_into().unwrap());
            rest = &rest[12..];
            (pts, u64::from(len))
        } else {
            let field = |e: varint::VarintError, name: &str| bad(format!("{name}: {e}"));
            let pts = varint::read_i64(&mut rest).map_err(|e| field(e, "pts"))?;
            let len = varint::read_u64(&mut rest).map_err(|e| field(e, "payload length"))?;
            (pts, len)
        };
        if payload_len > header.max_payload_len() {
            return Err(bad(format!(
                "payload length {payload_len} above the limit {} for this frame size",
                header.max_payload_len()
            )));
        }
        // An empty payload's CRC is 0 (`crc32fast` of no bytes), whether it is written or not.
        let crc_len = if has_crc(header.version, payload_len) {
            CRC_LEN as usize
        } else {
            0
        };
        let mut crc = [0u8; 4];
        crc[..crc_len].copy_from_slice(rest.get(..crc_len).ok_or_else(short)?);
        let used = (bytes.len() - rest.len() + crc_len) as u64;
        let head = Self {
            frame_type,
            tool,
            pts,
            payload_len,
            payload_crc: u32::from_le_bytes(crc),
        };
        Ok((head, used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn head_lengths_and_payload_lengths_invert_each_other() {
        for pts in [0i64, 1, 63, 64, -1, 8191, 8192, 1 << 40] {
            for payload in [
                0u64,
                1,
                127,
                128,
                16383,
                16384,
                1 << 21,
                u64::from(u32::MAX),
            ] {
                for version in [8, COMPACT_VERSION, FIRST_EMPTY_PACKET_VERSION] {
                    let size = packet_head_len(version, pts, payload) + payload;
                    assert_eq!(payload_len_of(version, pts, size), Some(payload));
                }
            }
        }
        // Between a 127-byte payload (1-byte length) and a 128-byte one (2 bytes) one size
        // is no packet.
        let size = packet_head_len(COMPACT_VERSION, 0, 127) + 128;
        assert_eq!(payload_len_of(COMPACT_VERSION, 0, size), None);
        assert_eq!(packet_head_len(COMPACT_VERSION, 5, 400), 9);
        assert_eq!(packet_head_len(COMPACT_VERSION, 1000, 400), 10);
        // An empty payload's head has no CRC from its version on; a packet the size of an
        // empty one with a CRC is no packet there, and the sizes between an empty payload and a
        // one-byte one are none either.
        let empty = FIRST_EMPTY_PACKET_VERSION;
        assert_eq!(packet_head_len(empty, 5, 0), 4);
        assert_eq!(packet_head_len(empty - 1, 5, 0), 8);
        assert_eq!(packet_head_len(empty, 5, 1), 8);
        for size in 5..9 {
            assert_eq!(payload_len_of(empty, 5, size), None, "{size}");
        }
    }

    #[test]
    fn a_head_reads_back_as_written_and_an_empty_payloads_has_no_crc() {
        use crate::container::{CodingParams, CodingTool, ColorSpace, Rational};
        let header = Header {
            width: 16,
            height: 16,
            coded_width: 16,
            coded_height: 16,
            frame_rate: Rational::new(25, 1),
            time_base: Rational::new(1, 25),
            frame_count: 0,
            color: ColorSpace::Srgb8,
            tools: vec![CodingTool {
                model_id: crate::model_file::ModelId::of_bytes(b"aecodec-pixel-v1"),
                model_bytes: 0,
                coding: CodingParams::Pixel { step: 4 },
            }],
            level: 0,
            version: FIRST_EMPTY_PACKET_VERSION,
        };
        for (payload, crc) in [(0u64, 0u32), (3, 0xdead_beef), (300, 7)] {
            let head = PacketHead {
                frame_type: FrameType::Predicted,
                tool: 0,
                pts: 77,
                payload_len: payload,
                payload_crc: crc,
            };
            let bytes = head.to_bytes(header.version);
            assert_eq!(
                bytes.len() as u64,
                packet_head_len(header.version, 77, payload)
            );
            let read = PacketHead::read(&mut &bytes[1..], &header, 0, 0).unwrap();
            assert_eq!(read, Some((head, bytes.len() as u64)));
            assert_eq!(
                PacketHead::parse(&bytes, &header, 0, 0).unwrap(),
                (head, bytes.len() as u64)
            );
            for cut in 1..bytes.len() {
                assert_eq!(
                    PacketHead::read(&mut &bytes[1..cut], &header, 0, 0).unwrap(),
                    None
                );
                assert!(PacketHead::parse(&bytes[..cut], &header, 0, 0).is_err());
            }
        }
    }
}
