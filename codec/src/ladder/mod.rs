//! A ladder of renditions for adaptive streaming: one `.aez` per resolution and bitrate, all
//! with intra frames at the same times, and a manifest (docs/FORMAT.md, "Ladder manifest")
//! that tells a player where every group of pictures of every rendition lies, so that it can
//! fetch them by byte range from any static HTTP server and switch rendition at any group.

use std::fs::File;
use std::io::{BufReader, Read, Seek};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::container::{
    ContainerError, ContainerReader, FrameType, Header, Packet, SeekableReader,
    MAX_PACKET_HEAD_LEN, MIN_PACKET_HEAD_LEN,
};

pub mod abr;

/// The largest rendition header a player reads: the preamble and 16 coding tools fit in far
/// less.
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// The most renditions a ladder may have: each costs a header fetch before playback starts.
pub const MAX_RENDITIONS: usize = 64;

/// One rung of a ladder as asked for: a frame size and an average bitrate.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RenditionSpec {
    pub width: u32,
    pub height: u32,
    /// Bits per second.
    pub bitrate: f64,
}

impl RenditionSpec {
    /// The rendition's file name in the ladder's directory: `640x360-400k.aez`.
    pub fn file_name(&self) -> String {
        format!(
            "{}x{}-{:.0}k.aez",
            self.width,
            self.height,
            self.bitrate / 1000.0
        )
    }
}

/// The ladder used when none is given: 360p, 540p and 720p at 400, 900 and 1,800 kbit/s,
/// those not taller than the source, widths keeping its aspect ratio (rounded to even).
/// A source under 360 lines gets one rendition at its own size.
pub fn default_ladder(source_width: u32, source_height: u32) -> Vec<RenditionSpec> {
    let rungs = [(360u32, 400e3), (540, 900e3), (720, 1800e3)];
    let mut ladder: Vec<RenditionSpec> = rungs
        .iter()
        .filter(|(h, _)| *h <= source_height)
        .map(|&(height, bitrate)| {
            let width =
                (f64::from(source_width) * f64::from(height) / f64::from(source_height) / 2.0)
                    .round() as u32
                    * 2;
            RenditionSpec {
                width: width.max(2),
                height,
                bitrate,
            }
        })
        .collect();
    if ladder.is_empty() {
        ladder.push(RenditionSpec {
            width: source_width,
            height: source_height,
            bitrate: rungs[0].1 * f64::from(source_width * source_height) / (640.0 * 360.0),
        });
    }
    ladder
}

/// Parses `640x360@400k,1280x720@1.8M`: renditions in any order, returned lowest bitrate first.
pub fn parse_renditions(text: &str) -> Result<Vec<RenditionSpec>, String> {
    let mut ladder = Vec::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            format!("{item:?} is not a rendition: write WIDTHxHEIGHT@BITRATE, such as 640x360@400k")
        };
        let (size, rate) = item.split_once('@').ok_or_else(bad)?;
        let (w, h) = size.split_once(['x', 'X']).ok_or_else(bad)?;
        let (width, height): (u32, u32) = (
            w.trim().parse().map_err(|_| bad())?,
            h.trim().parse().map_err(|_| bad())?,
        );
        if !(16..=crate::container::MAX_DIMENSION).contains(&width)
            || !(16..=crate::container::MAX_DIMENSION).contains(&height)
        {
            return Err(format!(
                "{item:?}: width and height must be 16 to {}",
                crate::container::MAX_DIMENSION
            ));
        }
        let bitrate = crate::ratecontrol::parse_rate(rate)?;
        ladder.push(RenditionSpec {
            width,
            height,
            bitrate,
        });
    }
    if ladder.is_empty() {
        return Err("no renditions given".into());
    }
    ladder.sort_by(|a, b| a.bitrate.total_cmp(&b.bitrate));
    for (i, r) in ladder.iter().enumerate() {
        if ladder[..i].iter().any(|o| o.file_name() == r.file_name()) {
            return Err(format!(
                "{} is asked for twice (renditions are files named by size and kbit/s)",
                r.file_name()
            ));
        }
    }
    Ok(ladder)
}

/// One segment's packets, read from its bytes (fetched by the byte range its manifest gives)
/// and checked as they arrive, as a player must: as many as the segment has frames, the first
/// an intra frame, nothing after the last.
pub struct SegmentReader<R> {
    reader: ContainerReader<R>,
    first_frame: u64,
    offset: u64,
    end: u64,
    left: u64,
}

impl<R: Read> SegmentReader<R> {
    /// `input` starts at the segment's first byte (`place.offset` of its rendition's file).
    pub fn new(input: R, header: Header, time: &SegmentTime, place: &SegmentBytes) -> Self {
        Self {
            reader: ContainerReader::at_segment(input, header, time.first_frame, place.offset),
            first_frame: time.first_frame,
            offset: place.offset,
            end: place.offset + place.bytes,
            left: time.frames,
        }
    }

    /// The frame number of the next packet.
    pub fn frames_read(&self) -> u64 {
        self.reader.frames_read()
    }

    /// The file offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.reader.offset()
    }

    /// The next packet; `None` after the last one, once the segment's bytes are found to end
    /// there.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, ContainerError> {
        let bad = |what: &str| ContainerError::BadPacket {
            frame: self.first_frame,
            offset: self.offset,
            what: what.into(),
        };
        if self.left == 0 {
            if self.reader.offset() != self.end {
                return Err(bad("the segment's bytes are not exactly its packets"));
            }
            return Ok(None);
        }
        let first = self.reader.frames_read() == self.first_frame;
        let packet = self
            .reader
            .next_packet()?
            .ok_or_else(|| ContainerError::BadPacket {
                frame: self.reader.frames_read(),
                offset: self.reader.offset(),
                what: "the segment ends at the file's index".into(),
            })?;
        if first && packet.frame_type != FrameType::Intra {
            return Err(bad("a segment must start with an intra frame"));
        }
        self.left -= 1;
        Ok(Some(packet))
    }
}

/// The largest manifest a reader takes (a ladder of hours of video is a few hundred
/// kilobytes).
pub const MAX_MANIFEST_BYTES: u64 = 16 << 20;

/// The ladder's description, `manifest.json` beside the renditions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `"aez-ladder"`.
    pub format: String,
    /// This layout's version: 1.
    pub version: u32,
    /// Frames per second, as `num/den`.
    pub frame_rate: String,
    pub frame_count: u64,
    pub duration_s: f64,
    /// The groups of pictures every rendition shares: where each starts and how long it is.
    pub segments: Vec<SegmentTime>,
    /// Lowest bitrate first.
    pub renditions: Vec<Rendition>,
}

/// A segment's place in time: the same in every rendition.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentTime {
    pub first_frame: u64,
    pub frames: u64,
    pub start_s: f64,
    pub duration_s: f64,
}

/// One `.aez` of the ladder.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Rendition {
    /// File name, relative to the manifest.
    pub file: String,
    pub width: u32,
    pub height: u32,
    /// The bitrate asked for, bits per second.
    pub target_bitrate: f64,
    /// The file's real size over the duration, bits per second.
    pub bitrate: f64,
    pub bytes: u64,
    /// Bytes from the start of the file to its first packet: the preamble and header.
    pub header_bytes: u64,
    /// Models the rendition's tools use, with their sizes (fetched once, by id).
    pub models: Vec<ManifestModel>,
    /// Each segment's bytes in this file, in the order of [`Manifest::segments`].
    pub segments: Vec<SegmentBytes>,
}

/// A model named by a manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestModel {
    /// SHA-256 of the model file, hex.
    pub id: String,
    pub bytes: u64,
}

/// Where one segment lies in a rendition's file.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SegmentBytes {
    /// Offset of the segment's first packet (an intra frame).
    pub offset: u64,
    /// Length of its packets, heads included: one range request fetches the segment.
    pub bytes: u64,
    /// The coding tool of its packets (an index into the file header's tools).
    pub tool: u8,
}

/// Why a ladder could not be described.
#[derive(Debug, thiserror::Error)]
pub enum LadderError {
    #[error("reading {file}")]
    Read {
        file: String,
        #[source]
        cause: ContainerError,
    },
    #[error("{0}: its segments do not line up with the other renditions'")]
    Misaligned(String),
    #[error("a ladder needs at least one rendition")]
    Empty,
}

/// A finished rendition file, read back: what the manifest says of it and the segment times
/// it must share with the others.
#[derive(Debug, Clone)]
pub struct RenditionFile {
    pub rendition: Rendition,
    pub times: Vec<SegmentTime>,
    header: Header,
}

impl RenditionFile {
    /// Reads the `.aez` of `spec` in `dir` (its header and index, and each segment's first
    /// packet for its tool).
    pub fn read(dir: &Path, spec: &RenditionSpec) -> Result<Self, LadderError> {
        let file = spec.file_name();
        let fail = |cause: ContainerError| LadderError::Read {
            file: file.clone(),
            cause,
        };
        let input = File::open(dir.join(&file)).map_err(|e| fail(e.into()))?;
        let bytes = input.metadata().map_err(|e| fail(e.into()))?.len();
        let mut reader = SeekableReader::new(BufReader::new(input)).map_err(fail)?;
        let header = reader.header().clone();
        let (times, segments) = segments_of(&mut reader).map_err(fail)?;
        Ok(Self {
            rendition: Rendition {
                width: spec.width,
                height: spec.height,
                target_bitrate: spec.bitrate,
                bitrate: bytes as f64 * 8.0 / header.duration_s(),
                bytes,
                header_bytes: reader.first_packet_offset(),
                models: header
                    .models()
                    .into_iter()
                    .map(|(id, bytes)| ManifestModel {
                        id: id.hex(),
                        bytes,
                    })
                    .collect(),
                segments,
                file,
            },
            times,
            header,
        })
    }
}

/// Whether `dir` may be replaced by a new ladder: it is absent or empty, or holds only a
/// ladder (its `manifest.json`, the renditions it names, and temporary files of our naming).
/// Anything else there (an input video, a user's file) would be lost with the old directory.
pub fn check_replaceable(dir: &Path) -> Result<(), crate::output::OutputError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let manifest = std::fs::read(dir.join("manifest.json"))
        .ok()
        .and_then(|text| Manifest::from_json(&text).ok());
    let ours = |name: &str| {
        name == "manifest.json"
            || (name.starts_with('.') && name.ends_with(".partial"))
            || manifest
                .as_ref()
                .is_some_and(|m| m.renditions.iter().any(|r| r.file == name))
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if !ours(&name) {
            return Err(crate::output::OutputError::NotALadder {
                dir: dir.to_path_buf(),
                name,
            });
        }
    }
    Ok(())
}

/// Why a player refuses a ladder manifest, or a rendition's header against it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("larger than {MAX_MANIFEST_BYTES} bytes")]
    TooLarge,
    #[error("not a ladder manifest: {0}")]
    NotAManifest(String),
    #[error("format {format:?} version {version}: a player reads \"aez-ladder\" version 1")]
    Format { format: String, version: u32 },
    #[error("no renditions or no segments")]
    Empty,
    #[error("{0} renditions: a player reads at most {MAX_RENDITIONS}")]
    TooManyRenditions(usize),
    #[error("segment {0} does not follow the one before it")]
    SegmentGap(usize),
    #[error("segment {segment} runs past the video's {frames} frames")]
    PastTheVideo { segment: usize, frames: u64 },
    #[error("the segments hold {held} frames, the video {frames}")]
    FrameCount { held: u64, frames: u64 },
    #[error("rendition file {0:?} is not a plain file name")]
    FileName(String),
    #[error("{file}: a header of {bytes} bytes")]
    HeaderBytes { file: String, bytes: u64 },
    #[error("{file} has {segments} segments, the ladder {ladder}")]
    SegmentCount {
        file: String,
        segments: usize,
        ladder: usize,
    },
    #[error(
        "{file}: segment {segment} is not where the one before it ends, or runs past the file"
    )]
    SegmentPlace { file: String, segment: usize },
    #[error("{file}: the header is {read} bytes, the manifest says {stated}")]
    HeaderLength {
        file: String,
        read: u64,
        stated: u64,
    },
    #[error("{file}: the file is {read}; the manifest says {stated}")]
    Video {
        file: String,
        read: String,
        stated: String,
    },
    #[error("{file}: segment {segment}'s {bytes} bytes cannot be {frames} packets")]
    SegmentBytes {
        file: String,
        segment: usize,
        bytes: u64,
        frames: u64,
    },
}

impl Manifest {
    // What a player checks before it trusts the manifest's numbers to size a read (the
    // native player and the browser's both: docs/FORMAT.md, "Ladder manifest").

    /// Checks that the segment times tile the video and each rendition's segments lie end to
    /// end in its file.
    pub fn check(&self) -> Result<(), ManifestError> {
        if self.format != "aez-ladder" || self.version != 1 {
            return Err(ManifestError::Format {
                format: self.format.clone(),
                version: self.version,
            });
        }
        if self.renditions.is_empty() || self.segments.is_empty() {
            return Err(ManifestError::Empty);
        }
        if self.renditions.len() > MAX_RENDITIONS {
            return Err(ManifestError::TooManyRenditions(self.renditions.len()));
        }
        let mut next = 0u64;
        for (k, s) in self.segments.iter().enumerate() {
            if s.first_frame != next || s.frames == 0 {
                return Err(ManifestError::SegmentGap(k));
            }
            next = next
                .checked_add(s.frames)
                .filter(|&n| n <= self.frame_count)
                .ok_or(ManifestError::PastTheVideo {
                    segment: k,
                    frames: self.frame_count,
                })?;
        }
        if next != self.frame_count {
            return Err(ManifestError::FrameCount {
                held: next,
                frames: self.frame_count,
            });
        }
        self.renditions
            .iter()
            .try_for_each(|r| self.check_rendition(r))
    }

    /// One rendition's file name, header size and segment places.
    fn check_rendition(&self, r: &Rendition) -> Result<(), ManifestError> {
        let plain =
            !r.file.is_empty() && !r.file.contains(['/', '\\']) && r.file != ".." && r.file != ".";
        if !plain {
            return Err(ManifestError::FileName(r.file.clone()));
        }
        if r.header_bytes == 0 || r.header_bytes > MAX_HEADER_BYTES {
            return Err(ManifestError::HeaderBytes {
                file: r.file.clone(),
                bytes: r.header_bytes,
            });
        }
        if r.segments.len() != self.segments.len() {
            return Err(ManifestError::SegmentCount {
                file: r.file.clone(),
                segments: r.segments.len(),
                ladder: self.segments.len(),
            });
        }
        let mut offset = r.header_bytes;
        for (k, s) in r.segments.iter().enumerate() {
            let end = s.offset.checked_add(s.bytes);
            if s.offset != offset || end.is_none_or(|e| e > r.bytes) {
                return Err(ManifestError::SegmentPlace {
                    file: r.file.clone(),
                    segment: k,
                });
            }
            offset = s.offset + s.bytes;
        }
        Ok(())
    }

    /// Checks that rendition `r`'s header, read from its file's first `header_len` bytes, ends
    /// where the manifest says and describes the manifest's video, and that each of its
    /// segments fits its frames' largest packets (so a segment's size cannot ask for more).
    pub fn check_header(
        &self,
        r: usize,
        header: &Header,
        header_len: u64,
    ) -> Result<(), ManifestError> {
        let rendition = &self.renditions[r];
        let file = || rendition.file.clone();
        if header_len != rendition.header_bytes {
            return Err(ManifestError::HeaderLength {
                file: file(),
                read: header_len,
                stated: rendition.header_bytes,
            });
        }
        if (header.width, header.height) != (rendition.width, rendition.height)
            || u64::from(header.frame_count) != self.frame_count
            || header.frame_rate.to_string() != self.frame_rate
        {
            let video = |w: u32, h: u32, frames: u64, rate: &dyn std::fmt::Display| {
                format!("{w}x{h}, {frames} frames at {rate}")
            };
            return Err(ManifestError::Video {
                file: file(),
                read: video(
                    header.width,
                    header.height,
                    header.frame_count.into(),
                    &header.frame_rate,
                ),
                stated: video(
                    rendition.width,
                    rendition.height,
                    self.frame_count,
                    &self.frame_rate,
                ),
            });
        }
        let per_frame = MAX_PACKET_HEAD_LEN + header.max_payload_len();
        for (k, (place, time)) in rendition.segments.iter().zip(&self.segments).enumerate() {
            // `check` bounded every segment's frames by the video's, which the header
            // has just confirmed; saturating products cannot wrap past either bound.
            if place.bytes > time.frames.saturating_mul(per_frame)
                || place.bytes < time.frames.saturating_mul(MIN_PACKET_HEAD_LEN)
            {
                return Err(ManifestError::SegmentBytes {
                    file: file(),
                    segment: k,
                    bytes: place.bytes,
                    frames: time.frames,
                });
            }
        }
        Ok(())
    }

    /// Reads a manifest from its JSON: refused above [`MAX_MANIFEST_BYTES`] (a reader takes
    /// at most one byte more than that, so this is the one check of the bound), or when it is
    /// not a manifest.
    pub fn from_json(text: &[u8]) -> Result<Self, ManifestError> {
        if text.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge);
        }
        serde_json::from_slice(text).map_err(|e| ManifestError::NotAManifest(e.to_string()))
    }

    /// The manifest of `files`, lowest bitrate first; fails unless every file has the same
    /// segments.
    pub fn new(files: Vec<RenditionFile>) -> Result<Self, LadderError> {
        let first = files.first().ok_or(LadderError::Empty)?;
        let (header, times) = (first.header.clone(), first.times.clone());
        let mut renditions = Vec::with_capacity(files.len());
        for f in files {
            // Rate control codes whole groups of one length, so this holds unless the source
            // decodes to a different frame count at another size.
            if f.times != times {
                return Err(LadderError::Misaligned(f.rendition.file));
            }
            renditions.push(f.rendition);
        }
        renditions.sort_by(|a, b| a.target_bitrate.total_cmp(&b.target_bitrate));
        Ok(Self {
            format: "aez-ladder".into(),
            version: 1,
            frame_rate: header.frame_rate.to_string(),
            frame_count: u64::from(header.frame_count),
            duration_s: header.duration_s(),
            segments: times,
            renditions,
        })
    }
}

/// The segments of a finished rendition file, cut at its intra frames: their times and
/// byte ranges.
fn segments_of<R: Read + Seek>(
    reader: &mut SeekableReader<R>,
) -> Result<(Vec<SegmentTime>, Vec<SegmentBytes>), ContainerError> {
    let header = reader.header().clone();
    let fps = header.frame_rate.as_f64();
    let index = reader.index().to_vec();
    let starts: Vec<usize> = index
        .iter()
        .enumerate()
        .filter(|(_, e)| e.frame_type == FrameType::Intra)
        .map(|(i, _)| i)
        .collect();
    let mut times = Vec::with_capacity(starts.len());
    let mut bytes = Vec::with_capacity(starts.len());
    for (k, &first) in starts.iter().enumerate() {
        let end = starts.get(k + 1).copied().unwrap_or(index.len());
        let entries = &index[first..end];
        let tool = reader.read_packet(first as u64)?.tool;
        times.push(SegmentTime {
            first_frame: first as u64,
            frames: entries.len() as u64,
            start_s: first as f64 / fps,
            duration_s: entries.len() as f64 / fps,
        });
        bytes.push(SegmentBytes {
            offset: entries[0].offset,
            bytes: entries.iter().map(|e| u64::from(e.size)).sum(),
            tool,
        });
    }
    Ok((times, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        let time = |first_frame, frames| SegmentTime {
            first_frame,
            frames,
            start_s: first_frame as f64 / 25.0,
            duration_s: frames as f64 / 25.0,
        };
        Manifest {
            format: "aez-ladder".into(),
            version: 1,
            frame_rate: "25".into(),
            frame_count: 20,
            duration_s: 0.8,
            segments: vec![time(0, 10), time(10, 10)],
            renditions: vec![Rendition {
                file: "a.aez".into(),
                width: 64,
                height: 64,
                target_bitrate: 1e5,
                bitrate: 1e5,
                bytes: 1000,
                header_bytes: 100,
                models: vec![],
                segments: vec![
                    SegmentBytes {
                        offset: 100,
                        bytes: 400,
                        tool: 0,
                    },
                    SegmentBytes {
                        offset: 500,
                        bytes: 400,
                        tool: 0,
                    },
                ],
            }],
        }
    }

    #[test]
    fn manifests_that_do_not_add_up_are_refused() {
        assert_eq!(manifest().check(), Ok(()));
        type Change = Box<dyn Fn(&mut Manifest)>;
        let broken: Vec<(&str, Change)> = vec![
            ("version", Box::new(|m| m.version = 2)),
            ("frames", Box::new(|m| m.frame_count = 21)),
            ("gap", Box::new(|m| m.segments[1].first_frame = 11)),
            (
                "path",
                Box::new(|m| m.renditions[0].file = "../a.aez".into()),
            ),
            (
                "overlap",
                Box::new(|m| m.renditions[0].segments[1].offset = 499),
            ),
            (
                "past the end",
                Box::new(|m| m.renditions[0].segments[1].bytes = 501),
            ),
            (
                "huge",
                Box::new(|m| m.renditions[0].segments[1].bytes = u64::MAX),
            ),
            ("header", Box::new(|m| m.renditions[0].header_bytes = 0)),
            (
                "wrapping frame counts",
                Box::new(|m| {
                    let half = 1u64 << 63;
                    m.segments[0].frames = half;
                    m.segments[1].first_frame = half;
                    m.segments[1].frames = half + 20;
                }),
            ),
            (
                "a segment longer than the video",
                Box::new(|m| m.segments[1].frames = 11),
            ),
            (
                "too many renditions",
                Box::new(|m| {
                    let r = m.renditions[0].clone();
                    m.renditions = vec![r; MAX_RENDITIONS + 1];
                }),
            ),
            (
                "count",
                Box::new(|m| {
                    m.renditions[0].segments.pop();
                }),
            ),
        ];
        for (what, change) in broken {
            let mut m = manifest();
            change(&mut m);
            assert!(m.check().is_err(), "{what}");
        }
    }

    #[test]
    fn renditions_parse_and_sort_by_bitrate() {
        let l = parse_renditions("1280x720@1.8M, 640x360@400k").unwrap();
        assert_eq!(
            l,
            [
                RenditionSpec {
                    width: 640,
                    height: 360,
                    bitrate: 400e3
                },
                RenditionSpec {
                    width: 1280,
                    height: 720,
                    bitrate: 1.8e6
                }
            ]
        );
        for bad in [
            "",
            "640x360",
            "640@400k",
            "x360@1k",
            "8x8@100k",
            "640x360@fast",
        ] {
            assert!(parse_renditions(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_ladder_stops_at_the_source_and_keeps_its_shape() {
        let l = default_ladder(1280, 720);
        let sizes: Vec<(u32, u32)> = l.iter().map(|r| (r.width, r.height)).collect();
        assert_eq!(sizes, [(640, 360), (960, 540), (1280, 720)]);
        let l = default_ladder(640, 272);
        assert_eq!(l.len(), 1);
        assert_eq!((l[0].width, l[0].height), (640, 272));
        let l = default_ladder(1920, 800);
        assert_eq!((l[0].width, l[0].height), (864, 360));
    }
}
