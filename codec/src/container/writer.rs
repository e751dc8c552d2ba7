//! Writing `.aez` files.

use std::io::{Seek, SeekFrom, Write};

use super::header::HeaderError;
use super::index::{encode_index, Footer, IndexEntry};
use super::packet::PacketHead;
use super::{
    crc32, encode_struct, ContainerError, FrameType, Header, Result, INDEX_MARKER, MAGIC,
    MAX_HEADER_LEN, PREAMBLE_LEN, VERSION,
};

/// Writes an `.aez` file: the header first, then packets, then the index and footer.
///
/// The frame count is not known until the last packet, so [`finish`](Self::finish) seeks
/// back and rewrites the header (its size does not change).
pub struct ContainerWriter<W: Write + Seek> {
    output: W,
    header: Header,
    offset: u64,
    index: Vec<IndexEntry>,
}

fn preamble_and_header(header: &Header) -> Result<Vec<u8>> {
    header.validate()?;
    let body = encode_struct(header);
    if body.len() as u64 > u64::from(MAX_HEADER_LEN) {
        return Err(HeaderError::TooLong(body.len()).into());
    }
    let mut out = Vec::with_capacity(PREAMBLE_LEN as usize + body.len());
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

impl<W: Write + Seek> ContainerWriter<W> {
    /// Writes the header; `header.frame_count` is replaced by the real count on `finish`.
    pub fn new(mut output: W, mut header: Header) -> Result<Self> {
        header.frame_count = 0;
        let bytes = preamble_and_header(&header)?;
        output.write_all(&bytes)?;
        Ok(Self {
            output,
            header,
            offset: bytes.len() as u64,
            index: Vec::new(),
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// Bytes written so far.
    pub fn bytes_written(&self) -> u64 {
        self.offset
    }

    /// Appends one frame's packet, coded with the header's tool `tool`. `pts` must increase
    /// from packet to packet.
    pub fn write_packet(
        &mut self,
        frame_type: FrameType,
        tool: u8,
        pts: i64,
        payload: &[u8],
    ) -> Result<()> {
        let frame = self.index.len() as u64;
        let bad = |what: String| ContainerError::BadPacket {
            frame,
            offset: self.offset,
            what,
        };
        if self.index.last().is_some_and(|e| pts <= e.pts) {
            return Err(bad(format!("pts {pts} is not after the previous packet's")));
        }
        if self.header.tool(tool).is_none() {
            return Err(bad(format!(
                "tool {tool} is not one of the header's {}",
                self.header.tools.len()
            )));
        }
        if payload.len() as u64 > self.header.max_payload_len() {
            return Err(bad(format!(
                "payload of {} bytes is above the limit",
                payload.len()
            )));
        }
        if frame >= u64::from(super::MAX_FRAMES) {
            return Err(bad("too many frames".into()));
        }
        let head = PacketHead {
            frame_type,
            tool,
            pts,
            payload_len: payload.len() as u64,
            payload_crc: crc32(payload),
        }
        .to_bytes(self.header.version);
        self.output.write_all(&head)?;
        self.output.write_all(payload)?;
        // (The payload limit keeps this far below 4 GiB.)
        let size = (head.len() + payload.len()) as u32;
        self.index.push(IndexEntry {
            pts,
            offset: self.offset,
            frame_type,
            size,
        });
        self.offset += u64::from(size);
        Ok(())
    }

    /// Writes the index and footer, patches the frame count into the header, and returns the
    /// output and the final header.
    pub fn finish(mut self) -> Result<(W, Header)> {
        let index_offset = self.offset;
        let index = encode_index(&self.index);
        let mut tail = Vec::with_capacity(index.len() + 32);
        tail.push(INDEX_MARKER);
        tail.extend_from_slice(&(index.len() as u32).to_le_bytes());
        tail.extend_from_slice(&crc32(&index).to_le_bytes());
        tail.extend_from_slice(&index);
        tail.extend_from_slice(
            &Footer {
                index_offset,
                index_len: index.len() as u32,
            }
            .to_bytes(),
        );
        self.output.write_all(&tail)?;

        let old_len = preamble_and_header(&self.header)?.len();
        self.header.frame_count = self.index.len() as u32;
        let patched = preamble_and_header(&self.header)?;
        debug_assert_eq!(old_len, patched.len(), "fixed-int header changed size");
        self.output.seek(SeekFrom::Start(0))?;
        self.output.write_all(&patched)?;
        self.output.seek(SeekFrom::End(0))?;
        self.output.flush()?;
        Ok((self.output, self.header))
    }
}
