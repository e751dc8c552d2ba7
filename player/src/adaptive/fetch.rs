//! Where a ladder's pieces come from: its manifest, each rendition's header, and segments by
//! byte range, out of a local directory or from any HTTP server that answers range requests.
//!
//! Everything the manifest says is checked before it is used to size a read: segment times
//! must tile the video (in checked arithmetic: no count from a file can wrap), each
//! rendition's segments must follow each other from its header to within its file, each
//! header must describe the video the manifest does, and no segment may run past the real end
//! of its file (its size on disk, or the server's `Content-Range` total). A segment is read
//! packet by packet as it arrives, so junk is refused at its first bad byte with memory
//! bounded by the largest legal packet, and no allocation is ever sized by a claimed length.
//! Every fetch has a deadline ([`Deadline`]): a server that sends one byte now and then
//! cannot hold the player.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Instant;

use aecodec::container::{ContainerReader, Header, Packet};
use aecodec::ladder::{Manifest, SegmentReader, MAX_MANIFEST_BYTES};

use crate::http::{download, Deadline, HttpStream, PATH_SEGMENT};
use crate::source::{is_url, SourceError};

/// A ladder opened for playback: its manifest and every rendition's header, all checked.
pub struct Ladder {
    /// What the manifest was named by (for messages).
    pub name: String,
    pub manifest: Manifest,
    /// The header of each rendition, in the manifest's order.
    pub headers: Vec<Header>,
    location: Location,
    /// Network bytes received and reconnections, over every fetch.
    pub fetched: Arc<AtomicU64>,
    pub reconnects: Arc<AtomicU64>,
}

/// Where the manifest's files are.
enum Location {
    Dir(PathBuf),
    /// The manifest's URL up to its last `/`.
    Url(String),
}

/// One segment of one rendition, fetched and split into checked packets.
pub struct FetchedSegment {
    pub rendition: usize,
    pub segment: usize,
    pub packets: Vec<Packet>,
    /// Bytes fetched, and the seconds from the request to the last byte.
    pub bytes: u64,
    pub seconds: f64,
}

impl Ladder {
    /// Reads the manifest at `source` (a path or URL) and the header of every rendition.
    pub fn open(source: &str) -> Result<Self, SourceError> {
        let (text, location) = if is_url(source) {
            let mut body = Vec::new();
            download(
                source,
                MAX_MANIFEST_BYTES,
                &mut body,
                Some(Deadline::for_metadata()),
            )?;
            (body, Location::Url(url_base(source).to_string()))
        } else {
            let path = Path::new(source);
            let open = |cause| SourceError::Open {
                path: source.into(),
                cause,
            };
            let mut body = Vec::new();
            open_regular(path)
                .map_err(open)?
                .take(MAX_MANIFEST_BYTES + 1)
                .read_to_end(&mut body)
                .map_err(open)?;
            let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
            (body, Location::Dir(dir))
        };
        let bad = |e: aecodec::ladder::ManifestError| SourceError::Manifest {
            path: source.into(),
            what: e.to_string(),
        };
        let manifest = Manifest::from_json(&text).map_err(bad)?;
        manifest.check().map_err(bad)?;
        let mut ladder = Self {
            name: source.into(),
            manifest,
            headers: Vec::new(),
            location,
            fetched: Arc::default(),
            reconnects: Arc::default(),
        };
        for r in 0..ladder.manifest.renditions.len() {
            let (header, header_len) = ladder.read_header(r)?;
            ladder
                .manifest
                .check_header(r, &header, header_len)
                .map_err(bad)?;
            ladder.headers.push(header);
        }
        Ok(ladder)
    }

    /// `scheme://host:port` of the server, which also serves the models; `None` for files.
    pub fn server(&self) -> Option<&str> {
        match &self.location {
            Location::Url(base) => Some(crate::source::origin(base)),
            Location::Dir(_) => None,
        }
    }

    /// Where rendition `r`'s file is, for messages and fetches.
    fn file_of(&self, r: usize) -> String {
        let name = &self.manifest.renditions[r].file;
        match &self.location {
            Location::Dir(dir) => dir.join(name).display().to_string(),
            Location::Url(base) => {
                format!(
                    "{base}{}",
                    percent_encoding::utf8_percent_encode(name, PATH_SEGMENT)
                )
            }
        }
    }

    /// The bytes `range` of rendition `r`'s file as a stream, after checking that the file
    /// (its size on disk, or the server's total) holds them: nothing is read or allocated
    /// for a range the file does not have. Reading past `deadline` is an error.
    fn open_range(
        &self,
        r: usize,
        range: std::ops::Range<u64>,
        deadline: Instant,
    ) -> Result<Box<dyn Read + Send>, SourceError> {
        let file = self.file_of(r);
        let io = |cause| SourceError::Open {
            path: file.clone(),
            cause,
        };
        let short = |len: u64| SourceError::Manifest {
            path: self.name.clone(),
            what: format!(
                "{}: bytes {}..{} are past the file's end ({len} bytes)",
                self.manifest.renditions[r].file, range.start, range.end
            ),
        };
        let len = range.end - range.start;
        match &self.location {
            Location::Url(_) => {
                let stream = HttpStream::open_range(
                    &file,
                    range.clone(),
                    self.fetched.clone(),
                    self.reconnects.clone(),
                )?
                .with_deadline(deadline);
                match stream.total() {
                    Some(total) if total < range.end => Err(short(total)),
                    _ => Ok(Box::new(stream.take(len))),
                }
            }
            Location::Dir(_) => {
                let mut f = open_regular(Path::new(&file)).map_err(io)?;
                let on_disk = f.metadata().map_err(io)?.len();
                if on_disk < range.end {
                    return Err(short(on_disk));
                }
                f.seek(SeekFrom::Start(range.start)).map_err(io)?;
                Ok(Box::new(f.take(len)))
            }
        }
    }

    /// Rendition `r`'s header, from its first `header_bytes` bytes, and where it ended.
    fn read_header(&self, r: usize) -> Result<(Header, u64), SourceError> {
        let header_bytes = self.manifest.renditions[r].header_bytes;
        let input = self.open_range(r, 0..header_bytes, Deadline::for_metadata())?;
        let reader = ContainerReader::new(input).map_err(|cause| SourceError::Container {
            path: self.file_of(r),
            cause,
        })?;
        Ok((reader.header().clone(), reader.offset()))
    }

    /// Fetches segment `k` of rendition `r` and checks its packets as they arrive: as many
    /// as the segment has frames, the first an intra frame, nothing left over.
    pub fn fetch(&self, r: usize, k: usize) -> Result<FetchedSegment, SourceError> {
        let place = self.manifest.renditions[r].segments[k];
        let time = self.manifest.segments[k];
        let started = Instant::now();
        let end = place.offset + place.bytes;
        let input = self.open_range(r, place.offset..end, Deadline::for_media(place.bytes))?;
        let container = |cause| SourceError::Container {
            path: self.file_of(r),
            cause,
        };
        let mut segment = SegmentReader::new(input, self.headers[r].clone(), &time, &place);
        // The manifest's checks bound the count by the header's frames; the vector still
        // grows with what arrives rather than trusting it.
        let mut packets = Vec::with_capacity(time.frames.min(256) as usize);
        while let Some(packet) = segment.next_packet().map_err(container)? {
            packets.push(packet);
        }
        let seconds = started.elapsed().as_secs_f64();
        let fetched = segment.offset() - place.offset;
        Ok(FetchedSegment {
            rendition: r,
            segment: k,
            packets,
            bytes: fetched,
            seconds,
        })
    }
}

/// The base a manifest's relative names resolve against (RFC 3986, section 5.2): the URL up to
/// the last `/` of its path, the query and fragment left out (a `/` in them is not a path's).
pub fn url_base(url: &str) -> &str {
    let path_end = url.find(['?', '#']).unwrap_or(url.len());
    let path = &url[..path_end];
    &path[..path.rfind('/').map_or(path.len(), |i| i + 1)]
}

/// Opens a file only if it is a regular one: a FIFO or a device named by a manifest would
/// block `open` or never end.
fn open_regular(path: &Path) -> std::io::Result<File> {
    if !std::fs::metadata(path)?.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    File::open(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_names_resolve_against_the_path_not_the_query() {
        assert_eq!(
            url_base("http://h:1/media/x/manifest.json?token=a/b"),
            "http://h:1/media/x/"
        );
        assert_eq!(url_base("http://h/a/m.json#frag/ment"), "http://h/a/");
        assert_eq!(url_base("http://h/a/m.json"), "http://h/a/");
    }
}
