//! Where packets come from: a local `.aez` file or an `http://` URL, and the model the stream
//! needs, fetched once from the stream's server into the model cache.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use aecodec::container::{ContainerError, ContainerReader, Header, IndexEntry, SeekableReader};
use aecodec::model_file::{ModelError, ModelId};
use aecodec::output::AtomicFile;
use aecodec::registry::{Model, ModelStore};

use crate::http::{download, Deadline, HttpError, HttpFile, HttpStream};
use sha2::{Digest, Sha256};

/// Why a source could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot open {path}: {cause}")]
    Open { path: String, cause: std::io::Error },
    #[error("{path}: {cause}")]
    Container { path: String, cause: ContainerError },
    /// A packet whose bytes are intact (its CRC matches) but that does not decode.
    #[error("{path}: frame {frame} does not decode: {cause}")]
    Undecodable {
        path: String,
        frame: u64,
        cause: aecodec::coders::CoderError,
    },
    #[error("{path}: {what}")]
    Manifest { path: String, what: String },
    #[error(transparent)]
    Http(#[from] HttpError),
    #[error("model from {url}")]
    Model {
        url: String,
        #[source]
        cause: crate::http::BoxedError,
    },
}

/// A streaming packet reader over any byte source.
pub type PacketReader = ContainerReader<Box<dyn Read + Send>>;

/// An opened source: its packet reader, and where its bytes come from.
pub struct Source {
    pub reader: PacketReader,
    pub origin: Origin,
    /// Opened at a time: the time stamp (seconds) of the frame on screen then, the first to
    /// show; the frames read before it are decoded on the way.
    pub first_shown: Option<f64>,
}

/// Where a source's bytes come from.
pub enum Origin {
    /// A local file.
    File,
    /// An HTTP server.
    Url(UrlOrigin),
}

/// A stream fetched over HTTP.
pub struct UrlOrigin {
    /// The stream's URL, to fetch it again from.
    pub url: String,
    /// `scheme://host:port` of the server (which also serves the models).
    pub server: String,
    /// Bytes received from the network so far.
    pub fetched: Arc<AtomicU64>,
    /// Connections reopened after a drop.
    pub reconnects: Arc<AtomicU64>,
}

impl UrlOrigin {
    fn of(url: &str, stream: &HttpStream) -> Self {
        Self {
            url: url.to_string(),
            server: origin(url).to_string(),
            fetched: stream.fetched_counter(),
            reconnects: stream.reconnect_counter(),
        }
    }
}

impl Source {
    /// `scheme://host:port` of a URL source's server; `None` for a file.
    pub fn server(&self) -> Option<&str> {
        match &self.origin {
            Origin::File => None,
            Origin::Url(u) => Some(&u.server),
        }
    }

    /// Network bytes fetched and reconnections so far (zero for files).
    pub fn network_counts(&self) -> (u64, u64) {
        let load = |c: &AtomicU64| c.load(std::sync::atomic::Ordering::Relaxed);
        match &self.origin {
            Origin::File => (0, 0),
            Origin::Url(u) => (load(&u.fetched), load(&u.reconnects)),
        }
    }

    /// For a URL source, drops the connection and fetches again from the first packet not yet
    /// read (after a CRC failure: bytes damaged on the way are fetched anew, never shown).
    /// Returns false for files, where reading again would give the same bytes.
    pub fn refetch(&mut self) -> Result<bool, SourceError> {
        let Origin::Url(UrlOrigin {
            url,
            fetched,
            reconnects,
            ..
        }) = &self.origin
        else {
            return Ok(false);
        };
        let (header, first_packet, seen) = self.reader.resume_state();
        let offset = seen
            .last()
            .map_or(first_packet, |e| e.offset + u64::from(e.size));
        let stream = HttpStream::open_counting(url, offset, fetched.clone(), reconnects.clone())?;
        reconnects.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let input: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 16, stream));
        self.reader = ContainerReader::resume_at(input, header, first_packet, seen);
        Ok(true)
    }
}

pub fn is_url(source: &str) -> bool {
    source.starts_with("http://") || source.starts_with("https://")
}

/// `scheme://authority` of a URL.
pub(crate) fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let end = url[after_scheme..]
        .find('/')
        .map_or(url.len(), |i| after_scheme + i);
    &url[..end]
}

/// Opens a file path or URL and reads the stream's header. With `start` (seconds), reading
/// begins at the last intra frame at or before it, found through the index.
pub fn open_source(source: &str, start: Option<f64>) -> Result<Source, SourceError> {
    let container = |e| SourceError::Container {
        path: source.into(),
        cause: e,
    };
    if let Some(seconds) = start {
        return open_at(source, seconds);
    }
    if is_url(source) {
        let stream = HttpStream::open(source, 0)?;
        let origin = Origin::Url(UrlOrigin::of(source, &stream));
        let input: Box<dyn Read + Send> = Box::new(BufReader::with_capacity(1 << 16, stream));
        return Ok(Source {
            reader: ContainerReader::new(input).map_err(container)?,
            origin,
            first_shown: None,
        });
    }
    let file = File::open(source).map_err(|e| SourceError::Open {
        path: source.into(),
        cause: e,
    })?;
    let input: Box<dyn Read + Send> = Box::new(BufReader::new(file));
    Ok(Source {
        reader: ContainerReader::new(input).map_err(container)?,
        origin: Origin::File,
        first_shown: None,
    })
}

/// Opens a source at the intra frame for `seconds`: the header, footer and index first (by
/// range requests for URLs), then a stream from that packet on.
fn open_at(source: &str, seconds: f64) -> Result<Source, SourceError> {
    let container = |e| SourceError::Container {
        path: source.into(),
        cause: e,
    };
    let open_err = |e| SourceError::Open {
        path: source.into(),
        cause: e,
    };
    let start = if is_url(source) {
        locate(
            &SeekableReader::new(HttpFile::open(source)?).map_err(container)?,
            seconds,
        )
    } else {
        let file = File::open(source).map_err(open_err)?;
        locate(
            &SeekableReader::new(BufReader::new(file)).map_err(container)?,
            seconds,
        )
    };
    let offset = start.offset;
    let (input, origin): (Box<dyn Read + Send>, _) = if is_url(source) {
        let stream = HttpStream::open(source, offset)?;
        let origin = Origin::Url(UrlOrigin::of(source, &stream));
        (Box::new(BufReader::with_capacity(1 << 16, stream)), origin)
    } else {
        let mut file = File::open(source).map_err(open_err)?;
        file.seek(SeekFrom::Start(offset)).map_err(open_err)?;
        (Box::new(BufReader::new(file)), Origin::File)
    };
    let reader = ContainerReader::resume_at(input, start.header, start.first_packet, start.earlier);
    Ok(Source {
        reader,
        origin,
        first_shown: Some(start.first_shown),
    })
}

/// Where playback from a time starts, and what a reader resuming there must know.
struct StartPoint {
    header: Header,
    /// Offset of the file's first packet.
    first_packet: u64,
    /// The index entries of the packets before the start.
    earlier: Vec<IndexEntry>,
    /// Offset of the packet playback starts at.
    offset: u64,
    /// The time stamp (seconds) of the first frame shown.
    first_shown: f64,
}

/// The start for `seconds`: decoding at the last intra frame at or before it, showing from the
/// frame on screen at it.
fn locate<R: Read + Seek>(seekable: &SeekableReader<R>, seconds: f64) -> StartPoint {
    let k = seekable.seek_entry(seconds);
    let index = seekable.index();
    let time_base = seekable.header().time_base;
    StartPoint {
        first_shown: index
            .get(seekable.shown_entry(seconds))
            .map_or(0.0, |e| time_base.seconds(e.pts)),
        header: seekable.header().clone(),
        first_packet: seekable.first_packet_offset(),
        earlier: index[..k.min(index.len())].to_vec(),
        offset: index
            .get(k)
            .map_or(seekable.first_packet_offset(), |e| e.offset),
    }
}

/// Makes sure `models` can decode `header`: a model already there (or in the cache) is used;
/// otherwise `server` (`scheme://host:port`, the stream's server; `None` for a local file) is
/// asked for `/models/<id>`, the download is checked against the id and saved in `cache` for
/// next time. Every model of the stream's coding tools is fetched before playback starts.
/// Returns the bytes downloaded.
pub fn ensure_models(
    server: Option<&str>,
    header: &Header,
    models: &mut ModelStore,
    cache: &Path,
) -> Result<u64, SourceError> {
    let mut fetched = 0;
    for (id, bytes) in header.models() {
        fetched += ensure_model(server, id, bytes, models, cache)?;
    }
    Ok(fetched)
}

/// [`ensure_models`] for one model of `model_bytes` bytes.
fn ensure_model(
    server: Option<&str>,
    model_id: ModelId,
    model_bytes: u64,
    models: &mut ModelStore,
    cache: &Path,
) -> Result<u64, SourceError> {
    if model_bytes == 0 {
        return Ok(0);
    }
    let id = model_id.hex();
    let Some(server) = server else {
        return Ok(0);
    };
    let url = format!("{server}/models/{id}");
    let fail = |cause: crate::http::BoxedError| SourceError::Model {
        url: url.clone(),
        cause,
    };
    if models
        .find(&model_id)
        .map_err(|e: ModelError| fail(e.into()))?
        .is_some()
    {
        return Ok(0);
    }
    std::fs::create_dir_all(cache)
        .map_err(|e| fail(format!("cannot create cache {}: {e}", cache.display()).into()))?;
    // Streamed to a temporary file in the cache while hashed, so that a lying server costs
    // at most the announced size on disk and nothing in memory; the file is kept only if
    // its hash is the id asked for.
    let mut file =
        AtomicFile::create(&cache.join(model_id.file_name())).map_err(|e| fail(e.into()))?;
    let (size, actual) = {
        let mut sink = HashingWriter {
            inner: std::io::BufWriter::new(file.file()),
            hasher: Sha256::new(),
        };
        let size = download(
            &url,
            model_bytes,
            &mut sink,
            Some(Deadline::for_media(model_bytes)),
        )?;
        sink.flush().map_err(|e| fail(e.into()))?;
        let actual = ModelId(sink.hasher.finalize().into());
        (size, actual)
    };
    if actual != model_id {
        return Err(fail(
            format!("download has SHA-256 {actual}, not the id asked for").into(),
        ));
    }
    let bytes = std::fs::read(file.temp_path()).map_err(|e| fail(e.into()))?;
    let model = Model::from_bytes(&bytes).map_err(|e| fail(e.into()))?;
    file.commit().map_err(|e| fail(e.into()))?;
    models.add(model);
    Ok(size)
}

/// Writes through to `inner`, hashing what passes.
struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn origin_of_urls() {
        assert_eq!(
            super::origin("http://127.0.0.1:8080/media/a.aez"),
            "http://127.0.0.1:8080"
        );
        assert_eq!(super::origin("https://host"), "https://host");
    }
}
