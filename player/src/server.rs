//! `aeplay serve`: the `.aez` files and model files of one directory over HTTP.
//!
//! * `GET /`: the browser player ([`crate::web`]); `/?src=<url>&autoplay=1` plays a stream.
//!   Every route answers pages of any origin (CORS), so a player page elsewhere can play
//!   from this server.
//! * `GET /catalog.json`: every `.aez` in the directory with its size, duration and model,
//!   and every ladder in a subdirectory (its `manifest.json`, which plays adaptively).
//! * `GET /media/<path>`: an `.aez` or `.json` file (a ladder's manifest) under the
//!   directory, subdirectories included, with byte ranges (206/416), ETag and Last-Modified
//!   (tower-http's `ServeFile`). The path is resolved (symbolic links included) and served only
//!   if it lands inside the directory.
//! * `GET /models/<sha256>`: a model file addressed by its hash; the directory and its
//!   `models/` subdirectory are indexed at start, and the models built into aecodec are
//!   served too (a web page has none of its own).

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aecodec::container::ContainerReader;
use aecodec::model_file::ModelId;
use aecodec::registry::builtin;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use tower::ServiceExt;
use tower_http::services::ServeFile;

/// One title in the catalog.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogEntry {
    pub title: String,
    pub url: String,
    pub bytes: u64,
    pub frames: u32,
    pub duration_s: f64,
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    /// The models the title needs (one per model its coding tools use).
    pub models: Vec<CatalogModel>,
    /// For a ladder (`url` is its manifest): how many renditions it has; `width`, `height`
    /// and `bytes` are then the largest rendition's size and all renditions' bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub renditions: Option<usize>,
}

/// A model a title needs.
#[derive(Debug, Clone, Serialize)]
pub struct CatalogModel {
    pub id: String,
    /// Where the model is fetched from (the directory's models and aecodec's built-in ones);
    /// `None` for a model this server does not have.
    pub url: Option<String>,
    pub bytes: u64,
}

struct AppState {
    /// The served directory, resolved.
    dir: PathBuf,
    models: HashMap<ModelId, PathBuf>,
    /// The last catalog made, kept while the files it was made from stay as they were. The
    /// lock also makes concurrent requests wait for one rebuild instead of each parsing every
    /// header and manifest again.
    catalog: tokio::sync::Mutex<Option<CachedCatalog>>,
}

/// A catalog's JSON and what it was made from.
struct CachedCatalog {
    made_from: Vec<FileStamp>,
    json: axum::body::Bytes,
}

/// A file the catalog reads, as it was: path, size and modification time.
type FileStamp = (PathBuf, u64, Option<std::time::SystemTime>);

/// The files [`catalog`] would read (each `.aez` of `dir`, each subdirectory's
/// `manifest.json`) with their sizes and times: cheap to take (no file is opened), and it
/// changes whenever the catalog could.
fn catalog_sources(dir: &Path) -> Vec<FileStamp> {
    let mut stamps = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return stamps;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        let source = if path.extension().is_some_and(|e| e == "aez") {
            path
        } else {
            path.join("manifest.json")
        };
        if let Ok(m) = std::fs::metadata(&source) {
            stamps.push((source, m.len(), m.modified().ok()));
        }
    }
    stamps.sort();
    stamps
}

/// `path` resolved (symbolic links followed), if it is a file with extension `ext` inside
/// `dir` (itself resolved). Every route serves only what this admits, and the catalog lists
/// only what `/media` serves.
fn inside(dir: &Path, path: &Path, ext: &str) -> Option<PathBuf> {
    path.canonicalize()
        .ok()
        .filter(|p| p.starts_with(dir) && p.is_file() && p.extension().is_some_and(|e| e == ext))
}

/// SHA-256 of every `.model` file in `dir` and `dir/models` (`dir` resolved).
fn index_models(dir: &Path) -> std::io::Result<HashMap<ModelId, PathBuf>> {
    let mut models = HashMap::new();
    for d in [dir.to_path_buf(), dir.join("models")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_none_or(|e| e != "model") {
                continue;
            }
            if let Some(file) = inside(dir, &path, "model") {
                let bytes = std::fs::read(&file)?;
                models.insert(ModelId::of_bytes(&bytes), file);
            }
        }
    }
    Ok(models)
}

/// The catalog of `dir` (resolved): each readable `.aez` that `/media` serves, by name, with
/// a model `url` for each model the server has (`models`, from [`index_models`]).
pub fn catalog(dir: &Path, models: &HashMap<ModelId, PathBuf>) -> Vec<CatalogEntry> {
    let mut entries = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return entries;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "aez") || inside(dir, &path, "aez").is_none() {
            continue;
        }
        let (Ok(file), Some(name)) = (File::open(&path), path.file_name().and_then(|n| n.to_str()))
        else {
            continue;
        };
        let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
        let Ok(reader) = ContainerReader::new(BufReader::new(file)) else {
            continue;
        };
        let h = reader.header();
        entries.push(CatalogEntry {
            title: path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default(),
            url: format!(
                "/media/{}",
                percent_encoding::utf8_percent_encode(name, crate::http::PATH_SEGMENT)
            ),
            bytes,
            frames: h.frame_count,
            duration_s: h.duration_s(),
            width: h.width,
            height: h.height,
            frame_rate: h.frame_rate.as_f64(),
            models: h
                .models()
                .into_iter()
                .map(|(id, bytes)| catalog_model(id, bytes, models))
                .collect(),
            renditions: None,
        });
    }
    entries.extend(ladders(dir, models));
    entries.sort_by(|a, b| a.title.cmp(&b.title));
    entries
}

fn catalog_model(id: ModelId, bytes: u64, models: &HashMap<ModelId, PathBuf>) -> CatalogModel {
    CatalogModel {
        id: id.hex(),
        url: (models.contains_key(&id) || builtin::file_of(&id).is_some())
            .then(|| format!("/models/{}", id.hex())),
        bytes,
    }
}

/// The ladders in `dir`'s subdirectories: each readable `manifest.json` (at most
/// [`MAX_MANIFEST_BYTES`](aecodec::ladder::MAX_MANIFEST_BYTES))
/// that `/media` serves, titled by its directory.
fn ladders(dir: &Path, models: &HashMap<ModelId, PathBuf>) -> Vec<CatalogEntry> {
    use std::io::Read;
    let mut entries = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return entries;
    };
    for entry in listing.flatten() {
        let sub = entry.path();
        let Some(manifest_path) = inside(dir, &sub.join("manifest.json"), "json") else {
            continue;
        };
        let mut text = Vec::new();
        let read = File::open(&manifest_path).and_then(|f| {
            f.take(aecodec::ladder::MAX_MANIFEST_BYTES + 1)
                .read_to_end(&mut text)
        });
        let Some(m) = read
            .ok()
            .and_then(|_| aecodec::ladder::Manifest::from_json(&text).ok())
        else {
            continue;
        };
        let (Some(top), Some(name)) = (
            m.renditions
                .iter()
                .max_by_key(|r| u64::from(r.width) * u64::from(r.height)),
            sub.file_name().and_then(|n| n.to_str()),
        ) else {
            continue;
        };
        let mut needed: Vec<(ModelId, u64)> = Vec::new();
        for model in m.renditions.iter().flat_map(|r| &r.models) {
            if let Some(id) = ModelId::from_hex(&model.id) {
                if !needed.iter().any(|(n, _)| *n == id) {
                    needed.push((id, model.bytes));
                }
            }
        }
        entries.push(CatalogEntry {
            title: name.to_string(),
            url: format!(
                "/media/{}/manifest.json",
                percent_encoding::utf8_percent_encode(name, crate::http::PATH_SEGMENT)
            ),
            bytes: m.renditions.iter().map(|r| r.bytes).sum(),
            frames: u32::try_from(m.frame_count).unwrap_or(u32::MAX),
            duration_s: m.duration_s,
            width: top.width,
            height: top.height,
            frame_rate: m
                .frame_rate
                .parse::<aecodec::container::Rational>()
                .map_or(0.0, aecodec::container::Rational::as_f64),
            models: needed
                .into_iter()
                .map(|(id, bytes)| catalog_model(id, bytes, models))
                .collect(),
            renditions: Some(m.renditions.len()),
        });
    }
    entries
}

/// The catalog as JSON: the cached one while its files are unchanged, else made anew (by
/// one request at a time).
async fn catalog_handler(State(state): State<Arc<AppState>>) -> Response {
    let mut cached = state.catalog.lock().await;
    let dir = state.dir.clone();
    let Ok(sources) = tokio::task::spawn_blocking(move || catalog_sources(&dir)).await else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    if cached.as_ref().is_none_or(|c| c.made_from != sources) {
        let st = state.clone();
        let made =
            tokio::task::spawn_blocking(move || serde_json::to_vec(&catalog(&st.dir, &st.models)))
                .await;
        let Ok(Ok(json)) = made else {
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        };
        *cached = Some(CachedCatalog {
            made_from: sources,
            json: json.into(),
        });
    }
    let json = cached.as_ref().expect("made above").json.clone();
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        json,
    )
        .into_response()
}

/// Serves an `.aez` or `.json` file under the directory, after resolving `..`, absolute paths
/// and symbolic links: anything that ends up outside the directory, or is neither, is 404.
async fn media_handler(
    State(state): State<Arc<AppState>>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Response {
    let file = state.dir.join(path.trim_start_matches('/'));
    // Streams, and the manifests of ladders (`aecodec ladder`'s directories).
    match inside(&state.dir, &file, "aez").or_else(|| inside(&state.dir, &file, "json")) {
        Some(file) => serve_file(file, request).await,
        None => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

async fn model_handler(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> Response {
    // Either case of hex names the same model.
    let id_parsed = ModelId::from_hex(&id);
    if let Some(path) = id_parsed.and_then(|m| state.models.get(&m)) {
        return serve_file(path.clone(), request).await;
    }
    match id_parsed.and_then(|m| builtin::file_of(&m)) {
        Some(bytes) => (
            [(axum::http::header::CONTENT_TYPE, "application/octet-stream")],
            bytes,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, format!("no model {id}\n")).into_response(),
    }
}

/// tower-http's `ServeFile`, with the two parts of RFC 9110 it lacks: `If-Range` (a range is
/// served only if the validator still matches, else the whole file), and a suffix range longer
/// than the file (`bytes=-N`, N ≥ size: the whole file, not 416).
async fn serve_file(path: PathBuf, mut request: Request) -> Response {
    let size = tokio::fs::metadata(&path).await.map(|m| m.len()).ok();
    if let (Some(size), Some(suffix)) = (size, suffix_range(&request)) {
        if suffix > 0 && suffix >= size {
            request.headers_mut().insert(
                axum::http::header::RANGE,
                axum::http::HeaderValue::from_static("bytes=0-"),
            );
        }
    }
    if let Some(validator) = request.headers_mut().remove(axum::http::header::IF_RANGE) {
        if !if_range_matches(&path, &validator).await {
            request.headers_mut().remove(axum::http::header::RANGE);
        }
    }
    match ServeFile::new(path).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// N of a lone `Range: bytes=-N`.
fn suffix_range(request: &Request) -> Option<u64> {
    let value = request
        .headers()
        .get(axum::http::header::RANGE)?
        .to_str()
        .ok()?;
    value.trim().strip_prefix("bytes=-")?.trim().parse().ok()
}

/// Whether an `If-Range` validator names the file as it is now: an entity tag must match its
/// ETag strongly (a weak one never does), a date its Last-Modified exactly.
async fn if_range_matches(path: &Path, validator: &axum::http::HeaderValue) -> bool {
    let head = Request::builder()
        .method(axum::http::Method::HEAD)
        .uri("/")
        .body(axum::body::Body::empty())
        .expect("a valid request");
    let Ok(current) = ServeFile::new(path).oneshot(head).await;
    let headers = current.headers();
    let Ok(validator) = validator.to_str() else {
        return false;
    };
    if validator.starts_with("W/") {
        return false;
    }
    let name = if validator.starts_with('"') {
        axum::http::header::ETAG
    } else {
        axum::http::header::LAST_MODIFIED
    };
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == validator)
}

/// A connection that sends at most `limit_rate` bytes per second (if set) and records when
/// bytes last moved in either direction, for the idle timeout.
struct LimitedConnection {
    stream: tokio::net::TcpStream,
    pacer: Option<Pacer>,
    /// Milliseconds since `epoch` at which a byte was last read or written.
    last_activity: Arc<std::sync::atomic::AtomicU64>,
    epoch: tokio::time::Instant,
}

impl LimitedConnection {
    fn touch(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        self.last_activity
            .store(now, std::sync::atomic::Ordering::Relaxed);
    }
}

/// A limit on the bytes per second each connection may send, which may change at set times
/// after the server starts (to act out a network that slows down or recovers).
#[derive(Debug, Clone, PartialEq)]
pub struct RateLimit {
    /// (seconds after the server starts, bytes per second or no limit), in time order, the
    /// first at 0.
    steps: Arc<[(f64, Option<u64>)]>,
}

impl RateLimit {
    /// The same limit all the time.
    pub fn constant(bytes_per_s: u64) -> Self {
        Self {
            steps: Arc::new([(0.0, Some(bytes_per_s.max(1)))]),
        }
    }

    /// `initial` (`None`: no limit) until the first of `changes` (seconds after the server
    /// starts, bytes per second), then each in turn.
    pub fn changing(initial: Option<u64>, changes: &[(f64, u64)]) -> Self {
        let mut steps = vec![(0.0, initial.map(|r| r.max(1)))];
        let mut later: Vec<(f64, Option<u64>)> = changes
            .iter()
            .map(|&(t, r)| (t.max(0.0), Some(r.max(1))))
            .collect();
        later.sort_by(|a, b| a.0.total_cmp(&b.0));
        steps.extend(later);
        Self {
            steps: steps.into(),
        }
    }

    /// The limit `seconds` after the server started.
    fn at(&self, seconds: f64) -> Option<u64> {
        self.steps
            .iter()
            .rev()
            .find(|(t, _)| *t <= seconds)
            .and_then(|(_, r)| *r)
    }
}

/// A token bucket for one connection's outgoing bytes: it fills at the limit of the moment up
/// to a burst of 1/20 s of it (1 to 64 KiB), so an idle connection cannot save up more than
/// that, as a real link cannot.
struct Pacer {
    limit: RateLimit,
    /// When the server started (the limit's clock).
    epoch: tokio::time::Instant,
    tokens: f64,
    filled_at: tokio::time::Instant,
    wait: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Pacer {
    fn new(limit: RateLimit, epoch: tokio::time::Instant) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            limit,
            epoch,
            tokens: 0.0,
            filled_at: now,
            wait: None,
        }
    }

    fn burst(rate: u64) -> f64 {
        (rate as f64 / 20.0).clamp(1024.0, 64.0 * 1024.0)
    }

    /// How many bytes may go now, or `Pending` (with a wake-up armed) when none may.
    fn poll_allowance(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<usize> {
        loop {
            if let Some(wait) = &mut self.wait {
                std::task::ready!(std::future::Future::poll(wait.as_mut(), cx));
                self.wait = None;
            }
            let now = tokio::time::Instant::now();
            let Some(rate) = self.limit.at((now - self.epoch).as_secs_f64()) else {
                self.filled_at = now;
                return std::task::Poll::Ready(usize::MAX);
            };
            let burst = Self::burst(rate);
            let earned = (now - self.filled_at).as_secs_f64() * rate as f64;
            self.tokens = (self.tokens + earned).min(burst);
            self.filled_at = now;
            if self.tokens >= 1.0 {
                return std::task::Poll::Ready(self.tokens as usize);
            }
            // Sleep until a useful amount (a quarter of the burst) has been earned.
            let due = (burst / 4.0 - self.tokens) / rate as f64;
            let at = now + std::time::Duration::from_secs_f64(due);
            self.wait = Some(Box::pin(tokio::time::sleep_until(at)));
        }
    }

    fn spend(&mut self, bytes: usize) {
        self.tokens -= bytes as f64;
    }
}

impl tokio::io::AsyncRead for LimitedConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = std::pin::Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.touch();
        }
        result
    }
}

impl tokio::io::AsyncWrite for LimitedConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let n = match &mut this.pacer {
            Some(pacer) => buf.len().min(std::task::ready!(pacer.poll_allowance(cx))),
            None => buf.len(),
        };
        let written =
            std::task::ready!(std::pin::Pin::new(&mut this.stream).poll_write(cx, &buf[..n]))?;
        if let Some(pacer) = &mut this.pacer {
            pacer.spend(written);
        }
        if written > 0 {
            this.touch();
        }
        std::task::Poll::Ready(Ok(written))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// The router for `dir`, with at most `max_connections` requests served at once.
pub fn router(dir: &Path, max_connections: usize) -> std::io::Result<Router> {
    let dir = dir.canonicalize()?;
    let state = Arc::new(AppState {
        models: index_models(&dir)?,
        dir,
        catalog: tokio::sync::Mutex::new(None),
    });
    Ok(Router::new()
        .route("/catalog.json", get(catalog_handler))
        .route("/models/{id}", get(model_handler))
        .route("/media/{*path}", get(media_handler))
        .merge(crate::web::routes())
        .layer(cors())
        .layer(tower::limit::ConcurrencyLimitLayer::new(max_connections))
        .with_state(state))
}

/// Any web page may read what this server serves (a player page on another site, as with a
/// CDN): GET and HEAD, the `Range` and `If-Range` headers, and the response headers a player
/// reads (`Content-Range` for a file's size). Nothing needs credentials.
fn cors() -> tower_http::cors::CorsLayer {
    use axum::http::{header, Method};
    tower_http::cors::CorsLayer::new()
        .allow_origin(tower_http::cors::Any)
        .allow_methods([Method::GET, Method::HEAD])
        .allow_headers([header::RANGE, header::IF_RANGE])
        .expose_headers([
            header::CONTENT_RANGE,
            header::CONTENT_LENGTH,
            header::ACCEPT_RANGES,
            header::ETAG,
        ])
}

/// How `serve` treats its clients.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Connections held open (and requests served) at once; more wait to be accepted.
    pub max_connections: usize,
    /// Connections one client address may hold open; more are answered 503 and closed, so
    /// that one client cannot take every slot.
    pub max_per_address: usize,
    /// A connection must send a request's whole header within this time, or it is closed.
    pub header_timeout: std::time::Duration,
    /// A connection on which no byte moves either way for this long is closed (an idle
    /// keep-alive connection, or a client that stopped reading).
    pub idle_timeout: std::time::Duration,
    /// Bytes per second each connection may send; `None`: no limit.
    pub limit_rate: Option<RateLimit>,
}

impl ServeOptions {
    /// The defaults of `aeplay serve`: `max_connections` slots, half of them per address,
    /// 10 s to send a header, 30 s idle.
    pub fn new(max_connections: usize) -> Self {
        Self {
            max_connections,
            max_per_address: max_connections.div_ceil(2),
            header_timeout: std::time::Duration::from_secs(10),
            idle_timeout: std::time::Duration::from_secs(30),
            limit_rate: None,
        }
    }
}

/// Open connections per client address.
#[derive(Default)]
struct AddressCounts(std::sync::Mutex<HashMap<std::net::IpAddr, usize>>);

impl AddressCounts {
    /// Counts a connection from `ip` unless it already holds `limit`.
    fn try_add(&self, ip: std::net::IpAddr, limit: usize) -> bool {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = counts.entry(ip).or_insert(0);
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    fn remove(&self, ip: std::net::IpAddr) {
        let mut counts = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }
}

/// What a client over its address's share hears before the connection closes.
const BUSY_RESPONSE: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\n\
Content-Length: 0\r\nConnection: close\r\n\r\n";

/// Tells a client over its share to come back later, then closes the connection gracefully:
/// its request is read and dropped (briefly, and at most a few KiB) after our FIN, because
/// closing a socket with unread bytes resets it, and a reset can destroy the 503 before the
/// client reads it.
async fn answer_busy(stream: &mut tokio::net::TcpStream) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let second = std::time::Duration::from_secs(1);
    if tokio::time::timeout(second, stream.write_all(BUSY_RESPONSE))
        .await
        .is_err()
    {
        return;
    }
    let _ = stream.shutdown().await;
    let drain = async {
        let mut buf = [0u8; 4096];
        let mut left = 16 * 1024;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left -= n.min(left),
            }
        }
    };
    let _ = tokio::time::timeout(second, drain).await;
}

/// Serves one accepted connection until it closes, times out or goes idle.
async fn serve_connection(
    stream: tokio::net::TcpStream,
    app: Router,
    options: ServeOptions,
    server_start: tokio::time::Instant,
) {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let last_activity = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let epoch = tokio::time::Instant::now();
    let io = LimitedConnection {
        stream,
        pacer: options
            .limit_rate
            .clone()
            .map(|limit| Pacer::new(limit, server_start)),
        last_activity: last_activity.clone(),
        epoch,
    };
    let service = hyper_util::service::TowerToHyperService::new(app);
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(options.header_timeout)
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(connection);
    let idle = options.idle_timeout;
    loop {
        let since = std::time::Duration::from_millis(
            last_activity.load(std::sync::atomic::Ordering::Relaxed),
        );
        let quiet = epoch.elapsed().saturating_sub(since);
        if quiet >= idle {
            return; // dropping the connection closes the socket
        }
        tokio::select! {
            _ = connection.as_mut() => return,
            _ = tokio::time::sleep(idle - quiet) => {}
        }
    }
}

/// Serves `dir` on `addr` until interrupted; `on_ready` hears the bound address (useful when
/// the port is 0).
pub fn serve(
    dir: &Path,
    addr: SocketAddr,
    options: ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    if options.max_connections == 0 || options.max_per_address == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the connection limits must be at least 1",
        ));
    }
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let app = router(dir, options.max_connections)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let server_start = tokio::time::Instant::now();
        on_ready(listener.local_addr()?);
        let slots = Arc::new(tokio::sync::Semaphore::new(options.max_connections));
        let addresses = Arc::new(AddressCounts::default());
        let accept = async {
            loop {
                // At the limit, further clients wait in the kernel's accept queue.
                let slot = slots.clone().acquire_owned().await.expect("never closed");
                let (mut stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    // Out of file descriptors or a reset before accept: wait a moment, go on.
                    Err(_) => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ip = peer.ip();
                if !addresses.try_add(ip, options.max_per_address) {
                    tokio::spawn(async move {
                        answer_busy(&mut stream).await;
                        drop(slot);
                    });
                    continue;
                }
                let (app, addresses, options) = (app.clone(), addresses.clone(), options.clone());
                tokio::spawn(async move {
                    serve_connection(stream, app, options, server_start).await;
                    addresses.remove(ip);
                    drop(slot);
                });
            }
        };
        tokio::select! {
            result = accept => result,
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
