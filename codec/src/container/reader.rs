//! Reading `.aez` files: front to back while they arrive, or by index when seekable.

use std::io::{Read, Seek, SeekFrom};

use super::header::{HeaderError, SingleToolHeader, ToolListHeader};
use super::index::{decode_index, max_index_len, Footer, IndexEntry, FOOTER_LEN};
use super::packet::{check_marker, PacketHead};
use super::{
    crc32, decode_struct, ContainerError, FrameType, Header, Packet, Result, FIRST_LEVEL_VERSION,
    FIRST_TOOL_LIST_VERSION, INDEX_HEAD_LEN, INDEX_MARKER, MAGIC, MAX_HEADER_LEN,
    OLDEST_READABLE_VERSION, PREAMBLE_LEN, VERSION,
};

/// Reads until `buf` is full or the input ends; returns how many bytes were read.
pub(super) fn read_up_to(input: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Reads exactly `len` bytes, growing the buffer only as data arrives, so a length that lies
/// about the data behind it costs no large allocation. `None` means the input ended first.
fn read_exact_growing(input: &mut impl Read, len: u64) -> std::io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(len.min(1 << 20) as usize);
    input.take(len).read_to_end(&mut buf)?;
    Ok((buf.len() as u64 == len).then_some(buf))
}

/// Reads and validates the preamble and header. Returns the header and its end offset.
fn read_header(input: &mut impl Read) -> Result<(Header, u64)> {
    let mut pre = [0u8; PREAMBLE_LEN as usize];
    let got = read_up_to(input, &mut pre)?;
    if pre[..got.min(4)] != MAGIC[..got.min(4)] {
        return Err(ContainerError::BadMagic(pre[..got.min(4)].to_vec()));
    }
    if got < pre.len() {
        return Err(ContainerError::TruncatedHeader {
            needed: PREAMBLE_LEN,
        });
    }
    let version = u16::from_le_bytes([pre[4], pre[5]]);
    if !(OLDEST_READABLE_VERSION..=VERSION).contains(&version) {
        return Err(ContainerError::UnsupportedVersion(version));
    }
    let header_len = u32::from_le_bytes(pre[6..10].try_into().unwrap());
    let header_crc = u32::from_le_bytes(pre[10..14].try_into().unwrap());
    if header_len == 0 || header_len > MAX_HEADER_LEN {
        return Err(HeaderError::Length(header_len).into());
    }
    let end = PREAMBLE_LEN + u64::from(header_len);
    let bytes = read_exact_growing(input, u64::from(header_len))?
        .ok_or(ContainerError::TruncatedHeader { needed: end })?;
    let computed = crc32(&bytes);
    if computed != header_crc {
        return Err(HeaderError::Crc {
            stored: header_crc,
            computed,
        }
        .into());
    }
    let mut header: Header = if version >= FIRST_LEVEL_VERSION {
        decode_struct::<_, { MAX_HEADER_LEN as usize }>(&bytes)
    } else if version >= FIRST_TOOL_LIST_VERSION {
        decode_struct::<ToolListHeader, { MAX_HEADER_LEN as usize }>(&bytes).map(Header::from)
    } else {
        decode_struct::<SingleToolHeader, { MAX_HEADER_LEN as usize }>(&bytes).map(Header::from)
    }
    .map_err(HeaderError::Layout)?;
    header.version = version;
    header.validate()?;
    Ok((header, end))
}

fn check_payload(payload: &[u8], head: &PacketHead, frame: u64, offset: u64) -> Result<()> {
    let computed = crc32(payload);
    // Under the fuzzer (`cargo fuzz` builds with `--cfg fuzzing`) a payload's checksum is not
    // checked, so that mutated payloads reach the coders' parsers instead of stopping here.
    if computed != head.payload_crc && !cfg!(fuzzing) {
        return Err(ContainerError::PayloadCrc {
            frame,
            offset,
            stored: head.payload_crc,
            computed,
        });
    }
    Ok(())
}

/// Reads an `.aez` stream front to back, as it arrives: no seeking, no need for the footer.
///
/// Every packet returned is complete and has passed its CRC. When the data ends early,
/// [`next_packet`](Self::next_packet) returns [`ContainerError::Truncated`] naming the first
/// incomplete frame; every packet before it has already been returned.
pub struct ContainerReader<R> {
    input: R,
    header: Header,
    /// Offset of the next unread byte.
    offset: u64,
    first_packet: u64,
    /// Frames before the first one this reader returns that it has no index entries for
    /// (a segment read by itself).
    frame_base: u64,
    seen: Vec<IndexEntry>,
    finished: bool,
}

impl<R: Read> ContainerReader<R> {
    /// Reads and validates the header.
    pub fn new(mut input: R) -> Result<Self> {
        let (header, offset) = read_header(&mut input)?;
        Ok(Self {
            input,
            header,
            offset,
            first_packet: offset,
            frame_base: 0,
            seen: Vec::new(),
            finished: false,
        })
    }

    /// Continues a stream at a packet found through the index: `input` starts at that
    /// packet's first byte, `first_packet` is where the file's packets begin, and `earlier`
    /// are the index entries of the packets skipped (checked against the index at the end).
    pub fn resume_at(
        input: R,
        header: Header,
        first_packet: u64,
        earlier: Vec<IndexEntry>,
    ) -> Self {
        let offset = earlier
            .last()
            .map_or(first_packet, |e| e.offset + u64::from(e.size));
        Self {
            input,
            header,
            offset,
            first_packet,
            frame_base: 0,
            seen: earlier,
            finished: false,
        }
    }

    /// Reads one segment fetched by itself (a byte range of a ladder manifest): `input`
    /// starts at the packet of frame `first_frame`, which lies at byte `offset` of the file.
    /// Without the packets before it the index cannot be checked, so the caller reads only
    /// as many packets as the segment holds; each is still checked (head, CRC, frame count).
    pub fn at_segment(input: R, header: Header, first_frame: u64, offset: u64) -> Self {
        Self {
            input,
            header,
            offset,
            first_packet: offset,
            frame_base: first_frame,
            seen: Vec::new(),
            finished: false,
        }
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    /// What [`resume_at`](Self::resume_at) needs to continue after the last good packet
    /// from a fresh input: header, first packet offset, entries read so far.
    pub fn resume_state(&self) -> (Header, u64, Vec<IndexEntry>) {
        (self.header.clone(), self.first_packet, self.seen.clone())
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The frame number of the next packet: the packets returned so far, plus the frames
    /// before a segment read [`at_segment`](Self::at_segment).
    pub fn frames_read(&self) -> u64 {
        self.frame_base + self.seen.len() as u64
    }

    /// The next packet, or `None` after the index and footer have been read and checked.
    pub fn next_packet(&mut self) -> Result<Option<Packet>> {
        if self.finished {
            return Ok(None);
        }
        let frame = self.frames_read();
        let offset = self.offset;
        let truncated = ContainerError::Truncated { frame, offset };
        let mut marker = [0u8; 1];
        let got = read_up_to(&mut self.input, &mut marker)?;
        if got == 0 {
            return Err(truncated);
        }
        if marker[0] == INDEX_MARKER {
            self.read_index_and_footer()?;
            return Ok(None);
        }
        if frame >= u64::from(self.header.frame_count) {
            return Err(ContainerError::BadPacket {
                frame,
                offset,
                what: format!(
                    "more packets than the header's {} frames",
                    self.header.frame_count
                ),
            });
        }
        check_marker(marker[0], frame, offset)?;
        let (parsed, head_len) =
            match PacketHead::read(&mut self.input, &self.header, frame, offset)? {
                Some(head) => head,
                None => return Err(truncated),
            };
        if self.seen.last().is_some_and(|e| parsed.pts <= e.pts) {
            return Err(ContainerError::BadPacket {
                frame,
                offset,
                what: format!("pts {} is not after the previous packet's", parsed.pts),
            });
        }
        let payload = read_exact_growing(&mut self.input, parsed.payload_len)?.ok_or(truncated)?;
        check_payload(&payload, &parsed, frame, offset)?;
        let packet = Packet {
            frame_type: parsed.frame_type,
            tool: parsed.tool,
            pts: parsed.pts,
            payload,
            offset,
            head_len,
        };
        self.offset += packet.stored_len();
        self.seen.push(IndexEntry {
            pts: packet.pts,
            offset,
            frame_type: packet.frame_type,
            size: packet.stored_len() as u32,
        });
        Ok(Some(packet))
    }

    /// Reads the index (its marker already consumed) and the footer, and checks both against
    /// the packets seen.
    fn read_index_and_footer(&mut self) -> Result<()> {
        let index_offset = self.offset;
        let frame = self.frames_read();
        let truncated = ContainerError::Truncated {
            frame,
            offset: index_offset,
        };
        let bad = |what: String| ContainerError::BadIndex {
            offset: index_offset,
            what,
        };
        let mut head = [0u8; INDEX_HEAD_LEN as usize - 1];
        if read_up_to(&mut self.input, &mut head)? < head.len() {
            return Err(truncated);
        }
        let index_len = u32::from_le_bytes(head[..4].try_into().unwrap());
        let index_crc = u32::from_le_bytes(head[4..].try_into().unwrap());
        if u64::from(index_len) > max_index_len(&self.header) {
            return Err(bad(format!(
                "length {index_len} is too long for {} frames",
                self.header.frame_count
            )));
        }
        let bytes = read_exact_growing(&mut self.input, u64::from(index_len))?.ok_or(truncated)?;
        if crc32(&bytes) != index_crc {
            return Err(bad("CRC-32 mismatch".into()));
        }
        let entries = decode_index(&bytes, &self.header, self.first_packet, index_offset)?;
        if entries != self.seen {
            return Err(bad("entries do not match the packets in the file".into()));
        }
        let mut footer = [0u8; FOOTER_LEN as usize];
        let got = read_up_to(&mut self.input, &mut footer)?;
        let end = index_offset + INDEX_HEAD_LEN + u64::from(index_len) + FOOTER_LEN;
        if got < footer.len() {
            return Err(ContainerError::BadFooter(format!(
                "file ends at byte {} inside the footer",
                end - FOOTER_LEN + got as u64
            )));
        }
        let parsed = Footer::parse(&footer, end)?;
        if parsed.index_offset != index_offset {
            return Err(ContainerError::BadFooter(format!(
                "points to byte {}, but the index is at byte {index_offset}",
                parsed.index_offset
            )));
        }
        if read_up_to(&mut self.input, &mut [0u8; 1])? != 0 {
            return Err(ContainerError::BadFooter(format!(
                "data after the footer at byte {end}"
            )));
        }
        self.offset = end;
        self.finished = true;
        Ok(())
    }
}

impl<R: Read> Iterator for ContainerReader<R> {
    type Item = Result<Packet>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.next_packet() {
            Ok(Some(p)) => Some(Ok(p)),
            Ok(None) => None,
            Err(e) => {
                // One error ends the stream: later bytes cannot be trusted to be in step.
                self.finished = true;
                Some(Err(e))
            }
        }
    }
}

/// Reads a complete `.aez` file through its index: random access to any frame.
pub struct SeekableReader<R> {
    input: R,
    header: Header,
    index: Vec<IndexEntry>,
    first_packet: u64,
}

impl<R: Read + Seek> SeekableReader<R> {
    /// Reads the header, then the footer and the index it points to.
    pub fn new(mut input: R) -> Result<Self> {
        let file_len = input.seek(SeekFrom::End(0))?;
        input.seek(SeekFrom::Start(0))?;
        let (header, first_packet) = read_header(&mut input)?;
        if file_len < first_packet + INDEX_HEAD_LEN + FOOTER_LEN {
            return Err(ContainerError::BadFooter(format!(
                "file of {file_len} bytes has no room for an index"
            )));
        }
        input.seek(SeekFrom::Start(file_len - FOOTER_LEN))?;
        let mut footer = [0u8; FOOTER_LEN as usize];
        input.read_exact(&mut footer)?;
        let footer = Footer::parse(&footer, file_len)?;
        let index = read_index_at(&mut input, &header, first_packet, footer)?;
        Ok(Self {
            input,
            header,
            index,
            first_packet,
        })
    }

    pub fn header(&self) -> &Header {
        &self.header
    }

    pub fn index(&self) -> &[IndexEntry] {
        &self.index
    }

    /// Offset of the first packet (the end of the header).
    pub fn first_packet_offset(&self) -> u64 {
        self.first_packet
    }

    /// The packet to start decoding at for time `seconds`: the last intra frame at or before
    /// it.
    pub fn seek_entry(&self, seconds: f64) -> usize {
        self.last_at_or_before(seconds, |e| e.frame_type == FrameType::Intra)
    }

    /// The packet on screen at time `seconds`, the first shown when playback starts there:
    /// the last at or before it (by its own time stamp, so variable frame rates hold).
    pub fn shown_entry(&self, seconds: f64) -> usize {
        self.last_at_or_before(seconds, |_| true)
    }

    /// The last packet that `keep` accepts and whose time is at or before `seconds` (the
    /// first packet where none is).
    fn last_at_or_before(&self, seconds: f64, keep: impl Fn(&IndexEntry) -> bool) -> usize {
        let tb = self.header.time_base;
        self.index
            .iter()
            .enumerate()
            .filter(|(_, e)| keep(e))
            .take_while(|(_, e)| tb.seconds(e.pts) <= seconds + 1e-9)
            .last()
            .map_or(0, |(i, _)| i)
    }

    /// Reads and checks packet number `frame`.
    pub fn read_packet(&mut self, frame: u64) -> Result<Packet> {
        let entry = *self
            .index
            .get(usize::try_from(frame).unwrap_or(usize::MAX))
            .ok_or(ContainerError::NoSuchFrame(frame))?;
        self.input.seek(SeekFrom::Start(entry.offset))?;
        // The index checked that the packets fill the file up to it: the size is in the file.
        let mut bytes = vec![0u8; entry.size as usize];
        self.input.read_exact(&mut bytes)?;
        let (parsed, head_len) = PacketHead::parse(&bytes, &self.header, frame, entry.offset)?;
        if head_len + parsed.payload_len != u64::from(entry.size)
            || parsed.pts != entry.pts
            || parsed.frame_type != entry.frame_type
        {
            return Err(ContainerError::BadPacket {
                frame,
                offset: entry.offset,
                what: "packet head disagrees with its index entry".into(),
            });
        }
        let payload = bytes.split_off(head_len as usize);
        check_payload(&payload, &parsed, frame, entry.offset)?;
        Ok(Packet {
            frame_type: parsed.frame_type,
            tool: parsed.tool,
            pts: parsed.pts,
            payload,
            offset: entry.offset,
            head_len,
        })
    }
}

/// Reads and checks the index that `footer` points to.
fn read_index_at<R: Read + Seek>(
    input: &mut R,
    header: &Header,
    first_packet: u64,
    footer: Footer,
) -> Result<Vec<IndexEntry>> {
    let bad = |what: String| ContainerError::BadIndex {
        offset: footer.index_offset,
        what,
    };
    if footer.index_offset < first_packet {
        return Err(bad("index starts inside the header".into()));
    }
    if u64::from(footer.index_len) > max_index_len(header) {
        return Err(bad(format!(
            "length {} is too long for {} frames",
            footer.index_len, header.frame_count
        )));
    }
    input.seek(SeekFrom::Start(footer.index_offset))?;
    let mut head = [0u8; INDEX_HEAD_LEN as usize];
    input.read_exact(&mut head)?;
    if head[0] != INDEX_MARKER {
        return Err(bad(format!("marker byte {:#04x} is not an index", head[0])));
    }
    if u32::from_le_bytes(head[1..5].try_into().unwrap()) != footer.index_len {
        return Err(bad("length disagrees with the footer".into()));
    }
    let mut bytes = vec![0u8; footer.index_len as usize];
    input.read_exact(&mut bytes)?;
    if crc32(&bytes) != u32::from_le_bytes(head[5..9].try_into().unwrap()) {
        return Err(bad("CRC-32 mismatch".into()));
    }
    decode_index(&bytes, header, first_packet, footer.index_offset)
}
