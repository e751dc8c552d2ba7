//! `aeplay serve`: the `.aez` files and model files of one directory over HTTP.
//!
//! * `GET /catalog.json`: every `.aez` in the directory with its size, duration and model.
//! * `GET /media/<file>`: the file, with byte ranges (206/416), ETag and Last-Modified
//!   (tower-http's `ServeFile`). The path is resolved (symbolic links included) and served only
//!   if it lands inside the directory.
//! * `GET /models/<sha256>`: a model file addressed by its hash; the directory and its
//!   `models/` subdirectory are indexed at start.

use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aecodec::container::ContainerReader;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
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
    pub model_id: String,
    /// Where the model is fetched from; `None` for coders built into the player.
    pub model_url: Option<String>,
    pub model_bytes: u64,
}

struct AppState {
    /// The served directory, resolved.
    dir: PathBuf,
    models: HashMap<String, PathBuf>,
}

/// SHA-256 of every `.model` file in `dir` and `dir/models`.
fn index_models(dir: &Path) -> std::io::Result<HashMap<String, PathBuf>> {
    let mut models = HashMap::new();
    for d in [dir.to_path_buf(), dir.join("models")] {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "model") && path.is_file() {
                let bytes = std::fs::read(&path)?;
                models.insert(hex::encode(aecodec::coders::sha256(&bytes)), path);
            }
        }
    }
    Ok(models)
}

/// The catalog of `dir`: each readable `.aez`, by name.
pub fn catalog(dir: &Path) -> Vec<CatalogEntry> {
    let mut entries = Vec::new();
    let Ok(listing) = std::fs::read_dir(dir) else {
        return entries;
    };
    for entry in listing.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "aez") || !path.is_file() {
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
            url: format!("/media/{name}"),
            bytes,
            frames: h.frame_count,
            duration_s: h.duration_s(),
            width: h.width,
            height: h.height,
            frame_rate: h.frame_rate.as_f64(),
            model_id: h.model_id_hex(),
            model_url: (h.model_bytes > 0).then(|| format!("/models/{}", h.model_id_hex())),
            model_bytes: h.model_bytes,
        });
    }
    entries.sort_by(|a, b| a.title.cmp(&b.title));
    entries
}

async fn catalog_handler(State(state): State<Arc<AppState>>) -> Response {
    let dir = state.dir.clone();
    match tokio::task::spawn_blocking(move || catalog(&dir)).await {
        Ok(list) => Json(list).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Serves a file under the directory, after resolving `..`, absolute paths and symbolic links:
/// anything that ends up outside the directory, or is not a file, is 404.
async fn media_handler(
    State(state): State<Arc<AppState>>,
    UrlPath(path): UrlPath<String>,
    request: Request,
) -> Response {
    let inside = state
        .dir
        .join(path.trim_start_matches('/'))
        .canonicalize()
        .ok()
        .filter(|p| p.starts_with(&state.dir) && p.is_file());
    let Some(file) = inside else {
        return (StatusCode::NOT_FOUND, "not found\n").into_response();
    };
    match ServeFile::new(file).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

async fn model_handler(
    State(state): State<Arc<AppState>>,
    UrlPath(id): UrlPath<String>,
    request: Request,
) -> Response {
    let Some(path) = state.models.get(&id.to_ascii_lowercase()) else {
        return (StatusCode::NOT_FOUND, format!("no model {id}\n")).into_response();
    };
    match ServeFile::new(path).oneshot(request).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    }
}

/// A listener that holds at most a fixed number of connections open: further clients wait
/// in the kernel's accept queue until one closes.
struct LimitedListener {
    inner: tokio::net::TcpListener,
    slots: Arc<tokio::sync::Semaphore>,
    limit_rate: Option<u64>,
}

/// A connection that frees its slot when it closes, and optionally sends at a bounded rate.
struct LimitedConnection {
    stream: tokio::net::TcpStream,
    _slot: tokio::sync::OwnedSemaphorePermit,
    pacer: Option<Pacer>,
}

/// A token bucket for one connection's outgoing bytes: `rate` bytes per second after a
/// burst of [`Pacer::BURST`] bytes.
struct Pacer {
    rate: u64,
    start: tokio::time::Instant,
    sent: u64,
    wait: Option<std::pin::Pin<Box<tokio::time::Sleep>>>,
}

impl Pacer {
    const BURST: u64 = 64 * 1024;

    fn new(rate: u64) -> Self {
        Self {
            rate: rate.max(1),
            start: tokio::time::Instant::now(),
            sent: 0,
            wait: None,
        }
    }

    /// How many bytes may go now, or `Pending` (with a wake-up armed) when none may.
    fn poll_allowance(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<usize> {
        loop {
            if let Some(wait) = &mut self.wait {
                std::task::ready!(std::future::Future::poll(wait.as_mut(), cx));
                self.wait = None;
            }
            let elapsed = self.start.elapsed().as_secs_f64();
            let earned = (elapsed * self.rate as f64) as u64 + Self::BURST;
            if earned > self.sent {
                return std::task::Poll::Ready((earned - self.sent) as usize);
            }
            // Sleep until a few kilobytes more have been earned.
            let due = (self.sent + 4096 - Self::BURST) as f64 / self.rate as f64;
            let at = self.start + std::time::Duration::from_secs_f64(due);
            self.wait = Some(Box::pin(tokio::time::sleep_until(at)));
        }
    }
}

impl axum::serve::Listener for LimitedListener {
    type Io = LimitedConnection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .expect("semaphore never closes");
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    return (
                        LimitedConnection {
                            stream,
                            _slot: slot,
                            pacer: self.limit_rate.map(Pacer::new),
                        },
                        addr,
                    )
                }
                // Out of file descriptors or a reset before accept: wait a moment, go on.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(50)).await,
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

impl tokio::io::AsyncRead for LimitedConnection {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl tokio::io::AsyncWrite for LimitedConnection {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = &mut *self;
        let Some(pacer) = &mut this.pacer else {
            return std::pin::Pin::new(&mut this.stream).poll_write(cx, buf);
        };
        let allowed = std::task::ready!(pacer.poll_allowance(cx));
        let n = buf.len().min(allowed);
        let written =
            std::task::ready!(std::pin::Pin::new(&mut this.stream).poll_write(cx, &buf[..n]))?;
        pacer.sent += written as u64;
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
    });
    Ok(Router::new()
        .route("/catalog.json", get(catalog_handler))
        .route("/models/{id}", get(model_handler))
        .route("/media/{*path}", get(media_handler))
        .layer(tower::limit::ConcurrencyLimitLayer::new(max_connections))
        .with_state(state))
}

/// How `serve` treats its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServeOptions {
    /// Connections held open (and requests served) at once; more wait to be accepted.
    pub max_connections: usize,
    /// Bytes per second each connection may send (after a 64 KiB burst); `None`: no limit.
    pub limit_rate: Option<u64>,
}

/// Serves `dir` on `addr` until interrupted; `on_ready` hears the bound address (useful when
/// the port is 0).
pub fn serve(
    dir: &Path,
    addr: SocketAddr,
    options: ServeOptions,
    on_ready: impl FnOnce(SocketAddr),
) -> std::io::Result<()> {
    let max_connections = options.max_connections;
    if !dir.is_dir() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a directory", dir.display()),
        ));
    }
    let app = router(dir, max_connections)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let inner = tokio::net::TcpListener::bind(addr).await?;
        on_ready(inner.local_addr()?);
        let listener = LimitedListener {
            inner,
            slots: Arc::new(tokio::sync::Semaphore::new(max_connections.max(1))),
            limit_rate: options.limit_rate,
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
    })
}
