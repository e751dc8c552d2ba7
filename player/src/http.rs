//! Fetching over HTTP: a byte stream that survives dropped connections by resuming with a
//! range request, and whole-file downloads with a size limit.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Characters a file name keeps in a URL path segment: RFC 3986's unreserved ones.
pub const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// How long a client waits on a server that has stopped sending, and how many times in a row
/// it reconnects without receiving a byte before it gives up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patience {
    /// A read that receives nothing for this long counts as a dropped connection.
    pub stall: Duration,
    /// Reconnections in a row that bring no byte before the stream fails.
    pub attempts: u32,
}

impl Default for Patience {
    /// 10 s without a byte; 12 tries (with backoff from 0.1 s to 2 s between them, about
    /// two and a half minutes in all against a server that always stalls).
    fn default() -> Self {
        Self {
            stall: Duration::from_secs(10),
            attempts: 12,
        }
    }
}

static PROCESS_PATIENCE: RwLock<Option<Patience>> = RwLock::new(None);

impl Patience {
    /// What clients opened without an explicit patience use (`aeplay play --stall-timeout`
    /// and `--retries` set it).
    pub fn process_default() -> Self {
        PROCESS_PATIENCE
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .unwrap_or_default()
    }

    pub fn set_process_default(patience: Patience) {
        *PROCESS_PATIENCE.write().unwrap_or_else(|e| e.into_inner()) = Some(patience);
    }
}

/// How long a fetch may take: metadata (a manifest, a header) gets a fixed time, a segment
/// that time plus its bytes at a minimum rate, so a server that trickles is an error instead
/// of a hang.
pub struct Deadline;

impl Deadline {
    /// The whole time allowed for a manifest or a rendition header.
    pub const METADATA: Duration = Duration::from_secs(30);
    /// The slowest rate a segment may arrive at, beyond [`Self::METADATA`]: 16 KiB/s.
    pub const MIN_MEDIA_RATE: f64 = 16.0 * 1024.0;

    /// When a fetch of `bytes` of media started now must be done.
    pub fn for_media(bytes: u64) -> Instant {
        Instant::now()
            + Self::METADATA
            + Duration::from_secs_f64(bytes as f64 / Self::MIN_MEDIA_RATE)
    }

    /// When a fetch of metadata started now must be done.
    pub fn for_metadata() -> Instant {
        Instant::now() + Self::METADATA
    }
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}")]
    Request {
        url: String,
        #[source]
        cause: BoxedError,
    },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the file changed on the server during playback")]
    Changed { url: String },
    #[error("{url}: the server ignores byte ranges (it answered a range request with the whole file); serve it with one that honours them, such as `aeplay serve`")]
    NoRanges { url: String },
    #[error("{url}: larger than the {limit} bytes expected")]
    TooLarge { url: String, limit: u64 },
    #[error("{url}")]
    Write {
        url: String,
        #[source]
        cause: std::io::Error,
    },
}

/// A cause of any kind: the HTTP client's, the network's, or a message about an answer.
pub type BoxedError = Box<dyn std::error::Error + Send + Sync>;

fn agent(patience: Patience) -> ureq::Agent {
    agent_until(patience, None)
}

/// An agent whose calls, bodies included, must end by `deadline`.
fn agent_until(patience: Patience, deadline: Option<Instant>) -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(Duration::from_secs(10)))
        .timeout_per_read(Some(patience.stall))
        .timeout_global(deadline.map(|d| d.saturating_duration_since(Instant::now())))
        .build()
        .into()
}

/// The pause before retry number `attempt` (from 0): 0.1 s, doubling, at most 2 s.
fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((100u64 << attempt.min(5)).min(2000))
}

/// Statuses that say "not now" rather than "no": the request is tried again after a pause.
fn is_busy(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Streams a whole resource into `out`, refusing more than `limit` bytes: by its announced
/// length before any byte is read, else as the bytes arrive (so at most `limit` + 1 bytes
/// are ever taken), and failing once `deadline` (if any) has passed. Returns the bytes
/// written.
pub fn download(
    url: &str,
    limit: u64,
    out: &mut impl Write,
    deadline: Option<Instant>,
) -> Result<u64, HttpError> {
    let err = |cause: BoxedError| HttpError::Request {
        url: url.into(),
        cause,
    };
    let response = agent_until(Patience::process_default(), deadline)
        .get(url)
        .call()
        .map_err(|e| err(e.into()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(HttpError::Status {
            url: url.into(),
            status,
        });
    }
    let too_large = || HttpError::TooLarge {
        url: url.into(),
        limit,
    };
    let announced = response
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = response.into_body().into_reader().take(limit + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        let n = body.read(&mut buf).map_err(|e| err(e.into()))?;
        if n == 0 {
            return Ok(written);
        }
        written += n as u64;
        if written > limit {
            return Err(too_large());
        }
        out.write_all(&buf[..n]).map_err(|cause| HttpError::Write {
            url: url.into(),
            cause,
        })?;
    }
}

/// The bytes of a URL from `offset` on (up to an end, if given), as one `Read` stream. A
/// dropped connection is reopened with `Range: bytes=<offset>-` and `If-Range: <etag>` (so a
/// file that changed is an error, not a splice), retrying with exponential backoff.
pub struct HttpStream {
    agent: ureq::Agent,
    url: String,
    offset: u64,
    /// Where a stream of one byte range ends (exclusive).
    end: Option<u64>,
    total: Option<u64>,
    etag: Option<String>,
    body: Option<ureq::BodyReader<'static>>,
    fetched: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
    patience: Patience,
    /// Reading (and reconnecting) fails after this.
    deadline: Option<Instant>,
}

impl HttpStream {
    /// Fails any read after `deadline`: a server that trickles bytes cannot hold the
    /// reader past it (it may overrun by one stall timeout).
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The file's whole length, as the server's answer gave it (`None` before one came, or
    /// if it did not say).
    pub fn total(&self) -> Option<u64> {
        self.total
    }

    fn check_deadline(&self) -> std::io::Result<()> {
        match self.deadline {
            Some(d) if Instant::now() > d => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{}: too slow: the server did not send this in the time allowed",
                    self.url
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Opens the stream at `offset`.
    pub fn open(url: &str, offset: u64) -> Result<Self, HttpError> {
        Self::open_counting(url, offset, Arc::default(), Arc::default())
    }

    /// Opens the stream at `offset`, adding to existing byte and reconnection counters.
    pub fn open_counting(
        url: &str,
        offset: u64,
        fetched: Arc<AtomicU64>,
        reconnects: Arc<AtomicU64>,
    ) -> Result<Self, HttpError> {
        Self::open_with(
            url,
            offset,
            fetched,
            reconnects,
            Patience::process_default(),
        )
    }

    /// The bytes `range` of the URL only (one segment of a ladder), adding to existing
    /// byte and reconnection counters.
    pub fn open_range(
        url: &str,
        range: std::ops::Range<u64>,
        fetched: Arc<AtomicU64>,
        reconnects: Arc<AtomicU64>,
    ) -> Result<Self, HttpError> {
        let mut stream = Self::unopened(url, range.start, fetched, reconnects);
        stream.end = Some(range.end.max(range.start));
        stream.connect_first()
    }

    /// [`open_counting`](Self::open_counting) with an explicit patience.
    pub fn open_with(
        url: &str,
        offset: u64,
        fetched: Arc<AtomicU64>,
        reconnects: Arc<AtomicU64>,
        patience: Patience,
    ) -> Result<Self, HttpError> {
        let mut stream = Self::unopened(url, offset, fetched, reconnects);
        stream.patience = patience;
        stream.agent = agent(patience);
        stream.connect_first()
    }

    fn unopened(
        url: &str,
        offset: u64,
        fetched: Arc<AtomicU64>,
        reconnects: Arc<AtomicU64>,
    ) -> Self {
        let patience = Patience::process_default();
        Self {
            patience,
            agent: agent(patience),
            url: url.to_string(),
            offset,
            end: None,
            total: None,
            etag: None,
            body: None,
            fetched,
            reconnects,
            deadline: None,
        }
    }

    fn connect_first(mut self) -> Result<Self, HttpError> {
        if self.end == Some(self.offset) {
            return Ok(self);
        }
        match self.connect_once() {
            Ok(()) => {}
            // Busy: the first read tries again, with backoff.
            Err(HttpError::Status { status, .. }) if is_busy(status) => {}
            Err(e) => return Err(e),
        }
        Ok(self)
    }

    /// Where reading stops: the end of the range asked for, else of the file once known.
    fn stop(&self) -> Option<u64> {
        self.end.or(self.total)
    }

    /// Bytes received so far (shared, for statistics).
    pub fn fetched_counter(&self) -> Arc<AtomicU64> {
        self.fetched.clone()
    }

    /// Connections reopened after a drop (shared, for statistics).
    pub fn reconnect_counter(&self) -> Arc<AtomicU64> {
        self.reconnects.clone()
    }

    fn connect_once(&mut self) -> Result<(), HttpError> {
        let err = |cause: BoxedError| HttpError::Request {
            url: self.url.clone(),
            cause,
        };
        let range = match self.end {
            Some(end) => format!("bytes={}-{}", self.offset, end - 1),
            None => format!("bytes={}-", self.offset),
        };
        let mut request = self.agent.get(&self.url).header("Range", range);
        if let Some(etag) = &self.etag {
            request = request.header("If-Range", etag);
        }
        let response = request.call().map_err(|e| err(e.into()))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let etag = headers
            .get("etag")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        match status {
            206 => {
                // Content-Range: bytes START-END/TOTAL
                let range = headers
                    .get("content-range")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("");
                let start = range
                    .strip_prefix("bytes ")
                    .and_then(|r| r.split('-').next())
                    .and_then(|s| s.parse::<u64>().ok());
                if start != Some(self.offset) {
                    return Err(err(format!(
                        "asked for byte {}, got range {range:?}",
                        self.offset
                    )
                    .into()));
                }
                self.total = range.rsplit('/').next().and_then(|t| t.parse().ok());
            }
            200 if self.offset == 0 => {
                self.total = headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
            }
            // A whole file in answer to a range: the file changed (If-Range), or, before any
            // validator was seen, the server does not do ranges at all.
            200 if self.etag.is_none() => {
                return Err(HttpError::NoRanges {
                    url: self.url.clone(),
                })
            }
            200 => {
                return Err(HttpError::Changed {
                    url: self.url.clone(),
                })
            }
            416 if self.total == Some(self.offset) => {
                self.body = None;
                return Ok(());
            }
            _ => {
                return Err(HttpError::Status {
                    url: self.url.clone(),
                    status,
                })
            }
        }
        if self.etag.is_some() && etag.is_some() && etag != self.etag {
            return Err(HttpError::Changed {
                url: self.url.clone(),
            });
        }
        self.etag = self.etag.take().or(etag);
        self.body = Some(response.into_body().into_reader());
        Ok(())
    }

    /// Reconnects after `attempt` reconnections in a row that brought no byte, after a
    /// backoff; a definite answer (a changed file, a 404) is final, and so is the last attempt.
    fn reconnect(&mut self, attempt: u32, why: &str) -> std::io::Result<()> {
        self.body = None;
        if attempt >= self.patience.attempts {
            return Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{}: gave up after {attempt} attempts without data: {why}",
                    self.url
                ),
            ));
        }
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        std::thread::sleep(backoff(attempt));
        match self.connect_once() {
            Ok(()) => Ok(()),
            Err(
                e @ (HttpError::Changed { .. }
                | HttpError::NoRanges { .. }
                | HttpError::Status { .. }),
            ) if !matches!(e, HttpError::Status { status, .. } if is_busy(status)) => {
                Err(std::io::Error::other(e.to_string()))
            }
            // Refused, reset, busy: the next read tries again.
            Err(_) => Ok(()),
        }
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        // Reconnections since the last byte arrived: a server that answers and then stalls
        // counts like one that drops the connection, and both end after `patience.attempts`.
        let mut attempt = 0;
        loop {
            if self.stop() == Some(self.offset) || buf.is_empty() {
                return Ok(0);
            }
            self.check_deadline()?;
            let room = self.stop().map_or(buf.len() as u64, |s| s - self.offset);
            let want = buf.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            let Some(body) = self.body.as_mut() else {
                self.reconnect(attempt, "no connection")?;
                attempt += 1;
                continue;
            };
            match body.read(&mut buf[..want]) {
                Ok(0) if self.total.is_none() => return Ok(0),
                Ok(0) => {
                    self.reconnect(attempt, "the connection closed early")?;
                    attempt += 1;
                }
                Ok(n) => {
                    self.offset += n as u64;
                    self.fetched.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(e) => {
                    self.reconnect(attempt, &e.to_string())?;
                    attempt += 1;
                }
            }
        }
    }
}

/// Sends a request again, with backoff, while the server answers that it is busy.
fn call_patiently(
    call: impl Fn() -> Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> Result<ureq::http::Response<ureq::Body>, ureq::Error> {
    let patience = Patience::process_default();
    let mut attempt = 0;
    loop {
        let response = call()?;
        if !is_busy(response.status().as_u16()) || attempt + 1 >= patience.attempts {
            return Ok(response);
        }
        std::thread::sleep(backoff(attempt));
        attempt += 1;
    }
}

/// A remote file with random access: every read is one range request. For reading a
/// stream's header, footer and index before streaming from a chosen packet.
pub struct HttpFile {
    agent: ureq::Agent,
    url: String,
    position: u64,
    len: u64,
}

impl HttpFile {
    /// Opens the file, learning its length from a one-byte range request.
    pub fn open(url: &str) -> Result<Self, HttpError> {
        let agent = agent(Patience::process_default());
        let err = |cause: BoxedError| HttpError::Request {
            url: url.into(),
            cause,
        };
        let response = call_patiently(|| agent.get(url).header("Range", "bytes=0-0").call())
            .map_err(|e| err(e.into()))?;
        let status = response.status().as_u16();
        if status != 206 {
            return Err(HttpError::Status {
                url: url.into(),
                status,
            });
        }
        let len = response
            .headers()
            .get("content-range")
            .and_then(|v| v.to_str().ok())
            .and_then(|r| r.rsplit('/').next())
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| err("no Content-Range total in the answer".into()))?;
        Ok(Self {
            agent,
            url: url.into(),
            position: 0,
            len,
        })
    }
}

impl Read for HttpFile {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if buf.is_empty() || self.position >= self.len {
            return Ok(0);
        }
        let last = (self.position + buf.len() as u64).min(self.len) - 1;
        let range = format!("bytes={}-{last}", self.position);
        let response = call_patiently(|| self.agent.get(&self.url).header("Range", &range).call())
            .map_err(std::io::Error::other)?;
        if response.status().as_u16() != 206 {
            return Err(std::io::Error::other(format!(
                "{}: HTTP {}",
                self.url,
                response.status()
            )));
        }
        let want = (last + 1 - self.position) as usize;
        let mut reader = response.into_body().into_reader();
        let mut got = 0;
        while got < want {
            match reader.read(&mut buf[got..want])? {
                0 => break,
                n => got += n,
            }
        }
        self.position += got as u64;
        Ok(got)
    }
}

impl std::io::Seek for HttpFile {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        let target = match pos {
            std::io::SeekFrom::Start(p) => p as i128,
            std::io::SeekFrom::End(d) => self.len as i128 + d as i128,
            std::io::SeekFrom::Current(d) => self.position as i128 + d as i128,
        };
        if target < 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "seek before the start",
            ));
        }
        self.position = target as u64;
        Ok(self.position)
    }
}
