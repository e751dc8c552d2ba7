//! The packed training corpus (`.aezc`): training pictures as PNG in one file, so a trainer
//! built without FFmpeg (the GPU kit) can train on what `aetrain pack` read from videos.
//!
//! Layout (little-endian):
//!
//! | bytes | what |
//! | --- | --- |
//! | 8 | magic `AEZCORP1` |
//! | 4 | `H`, the length of the JSON header (at most [`MAX_HEADER_BYTES`]) |
//! | `H` | [`CorpusHeader`] as JSON: the sources and, per picture, its size and byte length |
//! | … | each picture as an 8-bit RGB PNG, back to back, in header order |
//!
//! Every length is checked against the file before anything is allocated, and each PNG must
//! decode to exactly the size its header entry states.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

use aecodec::RgbFrame;
use serde::{Deserialize, Serialize};

/// The first bytes of every packed corpus.
pub const MAGIC: &[u8; 8] = b"AEZCORP1";
/// The largest JSON header a reader accepts.
pub const MAX_HEADER_BYTES: u32 = 16 << 20;
/// The largest picture side a reader accepts.
pub const MAX_SIDE: u32 = 8192;

/// What went wrong reading or writing a packed corpus.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("not a packed corpus (no AEZCORP1 magic)")]
    NotACorpus,
    #[error("corrupt corpus header: {0}")]
    Header(String),
    #[error("picture {index}")]
    Picture {
        index: usize,
        #[source]
        cause: PictureError,
    },
}

/// Why one picture of a corpus cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("{width}x{height} pixels is outside 1..={MAX_SIDE} on a side")]
    Size { width: u32, height: u32 },
    #[error("source {source_index} of {sources}")]
    Source { source_index: u32, sources: usize },
    #[error(transparent)]
    Png(#[from] png::DecodingError),
    #[error("the PNG is {got:?}, the header says {want:?}")]
    PngSize { got: (u32, u32), want: (u32, u32) },
    #[error("not an 8-bit RGB PNG")]
    NotRgb8,
    #[error("the picture size does not match its pixels")]
    Pixels,
}

/// Where a corpus's pictures came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSource {
    /// The clip (or corpus) as it was named to `aetrain pack`.
    pub path: String,
    /// How many of the pictures came from it.
    pub pictures: u64,
}

/// One picture's entry in the header.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PictureEntry {
    /// Index into [`CorpusHeader::sources`].
    pub source: u32,
    pub width: u32,
    pub height: u32,
    /// Length of its PNG.
    pub bytes: u64,
}

/// The JSON header of a packed corpus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusHeader {
    pub sources: Vec<CorpusSource>,
    pub pictures: Vec<PictureEntry>,
    /// The command that packed it.
    pub command: String,
}

/// Whether `path` starts with the packed-corpus magic (false for anything unreadable).
pub fn is_packed(path: &Path) -> bool {
    let mut magic = [0u8; 8];
    File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == MAGIC)
}

/// A picture as PNG bytes (8-bit RGB, best compression: the corpus must travel small).
pub fn encode_png(frame: &RgbFrame) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    encoder.set_compression(png::Compression::High);
    let mut writer = encoder.write_header().expect("writing to memory");
    writer
        .write_image_data(&frame.data)
        .expect("an RgbFrame holds exactly its pixels");
    writer.finish().expect("writing to memory");
    out
}

/// Writes a corpus: `pictures` are (entry, PNG bytes) in order.
pub fn write(
    out: &mut impl Write,
    header: &CorpusHeader,
    pngs: &[Vec<u8>],
) -> Result<(), CorpusError> {
    let json = serde_json::to_vec(header).map_err(|e| CorpusError::Header(e.to_string()))?;
    let len = u32::try_from(json.len())
        .ok()
        .filter(|&n| n <= MAX_HEADER_BYTES)
        .ok_or_else(|| CorpusError::Header(format!("{} bytes of header", json.len())))?;
    out.write_all(MAGIC)?;
    out.write_all(&len.to_le_bytes())?;
    out.write_all(&json)?;
    for png in pngs {
        out.write_all(png)?;
    }
    Ok(())
}

/// Reads a corpus's header, leaving `reader` at the first picture. The header is checked
/// against `file_len`: the pictures' lengths must add up to exactly what follows it.
pub fn read_header(reader: &mut impl Read, file_len: u64) -> Result<CorpusHeader, CorpusError> {
    let mut magic = [0u8; 8];
    reader.read_exact(&mut magic)?;
    if &magic != MAGIC {
        return Err(CorpusError::NotACorpus);
    }
    let mut len = [0u8; 4];
    reader.read_exact(&mut len)?;
    let len = u32::from_le_bytes(len);
    if len > MAX_HEADER_BYTES || u64::from(len) + 12 > file_len {
        return Err(CorpusError::Header(format!(
            "{len} bytes of header in a {file_len}-byte file"
        )));
    }
    let mut json = vec![0u8; len as usize];
    reader.read_exact(&mut json)?;
    let header: CorpusHeader =
        serde_json::from_slice(&json).map_err(|e| CorpusError::Header(e.to_string()))?;
    let body = file_len - 12 - u64::from(len);
    let mut total = 0u64;
    for (index, p) in header.pictures.iter().enumerate() {
        let bad = |cause: PictureError| CorpusError::Picture { index, cause };
        if p.width == 0 || p.height == 0 || p.width > MAX_SIDE || p.height > MAX_SIDE {
            return Err(bad(PictureError::Size {
                width: p.width,
                height: p.height,
            }));
        }
        if p.source as usize >= header.sources.len() {
            return Err(bad(PictureError::Source {
                source_index: p.source,
                sources: header.sources.len(),
            }));
        }
        total = total.saturating_add(p.bytes);
    }
    if total != body {
        return Err(CorpusError::Header(format!(
            "the pictures' lengths add up to {total} bytes, the file holds {body}"
        )));
    }
    Ok(header)
}

/// Decodes one picture's PNG, which must be 8-bit RGB of the entry's size.
fn decode_png(entry: &PictureEntry, bytes: &[u8]) -> Result<RgbFrame, PictureError> {
    let pixels = 3 * entry.width as usize * entry.height as usize;
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    // The entry's size bounds what the decoder may allocate.
    decoder.set_limits(png::Limits {
        bytes: pixels + 4096,
    });
    let mut reader = decoder.read_info()?;
    let info = reader.info();
    if (info.width, info.height) != (entry.width, entry.height) {
        return Err(PictureError::PngSize {
            got: (info.width, info.height),
            want: (entry.width, entry.height),
        });
    }
    if (info.color_type, info.bit_depth) != (png::ColorType::Rgb, png::BitDepth::Eight) {
        return Err(PictureError::NotRgb8);
    }
    let mut data = vec![0u8; pixels];
    reader.next_frame(&mut data)?;
    RgbFrame::from_data(entry.width, entry.height, data).ok_or(PictureError::Pixels)
}

/// Reads every picture of the corpus at `path` in order, calling `on_picture` with each and
/// its source index. Returns the header.
pub fn read_each(
    path: &Path,
    mut on_picture: impl FnMut(RgbFrame, u32),
) -> Result<CorpusHeader, CorpusError> {
    let file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut reader = BufReader::new(file);
    let header = read_header(&mut reader, len)?;
    let mut buf = Vec::new();
    for (index, entry) in header.pictures.iter().enumerate() {
        // read_header checked that the lengths add up to the file.
        buf.resize(entry.bytes as usize, 0);
        reader.read_exact(&mut buf)?;
        let frame =
            decode_png(entry, &buf).map_err(|cause| CorpusError::Picture { index, cause })?;
        on_picture(frame, entry.source);
    }
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(w: u32, h: u32, seed: u8) -> RgbFrame {
        let data = (0..3 * w * h)
            .map(|i| (i as u8).wrapping_mul(seed))
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    fn packed(pictures: &[RgbFrame]) -> Vec<u8> {
        let pngs: Vec<Vec<u8>> = pictures.iter().map(encode_png).collect();
        let header = CorpusHeader {
            sources: vec![CorpusSource {
                path: "x".into(),
                pictures: pictures.len() as u64,
            }],
            pictures: pictures
                .iter()
                .zip(&pngs)
                .map(|(p, png)| PictureEntry {
                    source: 0,
                    width: p.width,
                    height: p.height,
                    bytes: png.len() as u64,
                })
                .collect(),
            command: "test".into(),
        };
        let mut out = Vec::new();
        write(&mut out, &header, &pngs).unwrap();
        out
    }

    fn read_all(bytes: &[u8]) -> Result<Vec<RgbFrame>, CorpusError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.aezc");
        std::fs::write(&path, bytes).unwrap();
        let mut got = Vec::new();
        read_each(&path, |f, _| got.push(f))?;
        Ok(got)
    }

    #[test]
    fn pictures_come_back_exactly() {
        let pictures = [picture(48, 32, 7), picture(20, 64, 13)];
        let got = read_all(&packed(&pictures)).unwrap();
        assert_eq!(got.len(), 2);
        for (a, b) in got.iter().zip(&pictures) {
            assert_eq!((a.width, a.height, &a.data), (b.width, b.height, &b.data));
        }
    }

    #[test]
    fn truncated_or_forged_corpora_are_errors() {
        let bytes = packed(&[picture(48, 32, 7), picture(20, 64, 13)]);
        for cut in [0, 5, 11, 40, bytes.len() / 2, bytes.len() - 1] {
            assert!(read_all(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // A header length beyond the file.
        let mut forged = bytes.clone();
        forged[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(read_all(&forged), Err(CorpusError::Header(_))));
        // A picture size that disagrees with its PNG.
        let mut forged = bytes.clone();
        let at = forged
            .windows(10)
            .position(|w| w == b"\"width\":48")
            .unwrap();
        forged[at + 9] = b'9';
        assert!(matches!(
            read_all(&forged),
            Err(CorpusError::Picture { index: 0, .. })
        ));
        assert!(matches!(
            read_all(b"not a corpus at all"),
            Err(CorpusError::NotACorpus)
        ));
    }
}
