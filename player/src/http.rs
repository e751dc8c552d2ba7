//! Fetching over HTTP: a byte stream that survives dropped connections by resuming with a
//! range request, and whole-file downloads with a size limit.

use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Attempts before a stream gives up on a server.
const MAX_ATTEMPTS: u32 = 12;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    #[error("{url}: {cause}")]
    Request { url: String, cause: String },
    #[error("{url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url}: the file changed on the server during playback")]
    Changed { url: String },
    #[error("{url}: larger than the {limit} bytes expected")]
    TooLarge { url: String, limit: u64 },
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(5)))
        .timeout_recv_response(Some(Duration::from_secs(10)))
        .build()
        .into()
}

/// Downloads a whole resource, refusing more than `limit` bytes.
pub fn fetch(url: &str, limit: u64) -> Result<Vec<u8>, HttpError> {
    let err = |cause: String| HttpError::Request {
        url: url.into(),
        cause,
    };
    let response = agent().get(url).call().map_err(|e| err(e.to_string()))?;
    let status = response.status().as_u16();
    if status != 200 {
        return Err(HttpError::Status {
            url: url.into(),
            status,
        });
    }
    let mut bytes = Vec::new();
    response
        .into_body()
        .into_reader()
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| err(e.to_string()))?;
    if bytes.len() as u64 > limit {
        return Err(HttpError::TooLarge {
            url: url.into(),
            limit,
        });
    }
    Ok(bytes)
}

/// The bytes of a URL from `offset` on, as one `Read` stream. A dropped connection is
/// reopened with `Range: bytes=<offset>-` and `If-Range: <etag>` (so a file that changed is
/// an error, not a splice), retrying with exponential backoff.
pub struct HttpStream {
    agent: ureq::Agent,
    url: String,
    offset: u64,
    total: Option<u64>,
    etag: Option<String>,
    body: Option<ureq::BodyReader<'static>>,
    fetched: Arc<AtomicU64>,
    reconnects: Arc<AtomicU64>,
}

impl HttpStream {
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
        let mut stream = Self {
            agent: agent(),
            url: url.to_string(),
            offset,
            total: None,
            etag: None,
            body: None,
            fetched,
            reconnects,
        };
        stream.connect_once()?;
        Ok(stream)
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
        let err = |cause: String| HttpError::Request {
            url: self.url.clone(),
            cause,
        };
        let mut request = self
            .agent
            .get(&self.url)
            .header("Range", format!("bytes={}-", self.offset));
        if let Some(etag) = &self.etag {
            request = request.header("If-Range", etag);
        }
        let response = request.call().map_err(|e| err(e.to_string()))?;
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
                    )));
                }
                self.total = range.rsplit('/').next().and_then(|t| t.parse().ok());
            }
            200 if self.offset == 0 => {
                self.total = headers
                    .get("content-length")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok());
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

    /// Reconnects, retrying with backoff; a definite answer (a changed file, a 404) is final.
    fn reconnect(&mut self) -> std::io::Result<()> {
        self.body = None;
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        let mut last = None;
        for attempt in 0..MAX_ATTEMPTS {
            std::thread::sleep(Duration::from_millis((100u64 << attempt.min(5)).min(2000)));
            match self.connect_once() {
                Ok(()) => return Ok(()),
                Err(e @ (HttpError::Changed { .. } | HttpError::Status { .. })) => {
                    return Err(std::io::Error::other(e.to_string()))
                }
                Err(e) => last = Some(e),
            }
        }
        Err(std::io::Error::other(format!(
            "gave up after {MAX_ATTEMPTS} attempts: {}",
            last.map(|e| e.to_string()).unwrap_or_default()
        )))
    }
}

impl Read for HttpStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            if self.total == Some(self.offset) || buf.is_empty() {
                return Ok(0);
            }
            let Some(body) = self.body.as_mut() else {
                self.reconnect()?;
                continue;
            };
            match body.read(buf) {
                Ok(0) if self.total.is_none() => return Ok(0),
                Ok(0) => self.reconnect()?,
                Ok(n) => {
                    self.offset += n as u64;
                    self.fetched.fetch_add(n as u64, Ordering::Relaxed);
                    return Ok(n);
                }
                Err(_) => self.reconnect()?,
            }
        }
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
        let agent = agent();
        let err = |cause: String| HttpError::Request {
            url: url.into(),
            cause,
        };
        let response = agent
            .get(url)
            .header("Range", "bytes=0-0")
            .call()
            .map_err(|e| err(e.to_string()))?;
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
        let response = self
            .agent
            .get(&self.url)
            .header("Range", format!("bytes={}-{last}", self.position))
            .call()
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
