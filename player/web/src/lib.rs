//! The `.aez` decoder for web pages: a stream's bytes go in as they are fetched, RGBA frames
//! come out. The page's worker (`www/worker.js`) owns the fetching, the model cache and the
//! pacing; this crate is the native decoder's container reader, parser and synthesis, built
//! for `wasm32-unknown-unknown`, so a page decodes exactly what `aeplay` decodes.
//!
//! [`StreamState`] is the whole decoder and plain Rust (it is tested natively);
//! [`WebDecoder`] is its JavaScript face.

use std::cell::RefCell;
use std::io::Read;
use std::rc::Rc;

use aecodec::container::{ContainerError, ContainerReader, FrameType, Header};
use aecodec::prelude::{FrameDecoder, Model, ModelId, ModelStore};
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// What went wrong, as the page shows it.
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Coder(#[from] aecodec::coders::CoderError),
    #[error("model file: {0}")]
    Model(#[from] aecodec::model_file::ModelError),
    #[error("the model fetched as {expected} has the hash {actual}: refused")]
    WrongModel { expected: String, actual: String },
    #[error("{0:?} is not a model id (64 hex digits)")]
    BadModelId(String),
    #[error("the stream's header has not arrived yet")]
    NoHeader,
    #[error("the decoder was not started: add the stream's models, then start it")]
    NotStarted,
}

/// The bytes fetched and not yet consumed, from byte `base` of the file on.
#[derive(Default)]
struct Fetched {
    bytes: Vec<u8>,
    base: u64,
    /// Where the container reader reads next, in `bytes`.
    pos: usize,
    /// The whole file has arrived: a short read is then the end of the file, not a wait.
    complete: bool,
}

impl Fetched {
    /// Forgets the bytes before the reader's position (they are parsed).
    fn drop_consumed(&mut self) {
        self.bytes.drain(..self.pos);
        self.base += self.pos as u64;
        self.pos = 0;
    }
}

/// The container reader's input: what has been fetched so far.
struct FetchedRead(Rc<RefCell<Fetched>>);

impl Read for FetchedRead {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut f = self.0.borrow_mut();
        let available = &f.bytes[f.pos..];
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        f.pos += n;
        Ok(n)
    }
}

/// A model the stream needs, as the header names it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NeededModel {
    /// SHA-256 of the model file, hex: the page fetches `/models/<id>` and caches by it.
    pub id: String,
    pub bytes: u64,
}

/// The header's facts a page needs to lay out and pace the video.
#[derive(Debug, Clone, Serialize)]
pub struct StreamInfo {
    pub width: u32,
    pub height: u32,
    pub frame_rate: f64,
    pub frame_count: u32,
    pub version: u16,
    pub models: Vec<NeededModel>,
}

impl StreamInfo {
    fn of(header: &Header) -> Self {
        let mut models: Vec<NeededModel> = Vec::new();
        for tool in header.tools.iter().filter(|t| t.model_bytes > 0) {
            let id = tool.model_id.hex();
            if !models.iter().any(|m| m.id == id) {
                models.push(NeededModel {
                    id,
                    bytes: tool.model_bytes,
                });
            }
        }
        Self {
            width: header.width,
            height: header.height,
            frame_rate: header.frame_rate.as_f64(),
            frame_count: header.frame_count,
            version: header.version,
            models,
        }
    }
}

/// One decoded frame.
pub struct DecodedFrame {
    pub index: u64,
    pub intra: bool,
    /// Bytes of its packet, head included.
    pub packet_bytes: u64,
    pub rgba: Vec<u8>,
}

/// What the next call to [`StreamState::next_frame`] found.
pub enum Next {
    Frame(DecodedFrame),
    /// The bytes so far end inside a packet (or the header, or the index): fetch more.
    NeedData,
    /// The file's index and footer are read and checked: every frame was returned.
    End,
}

/// A stream being decoded from its bytes as they arrive.
pub struct StreamState {
    fetched: Rc<RefCell<Fetched>>,
    reader: Option<ContainerReader<FetchedRead>>,
    models: ModelStore,
    decoder: Option<FrameDecoder>,
}

impl Default for StreamState {
    fn default() -> Self {
        Self::new()
    }
}

impl StreamState {
    pub fn new() -> Self {
        Self {
            fetched: Rc::new(RefCell::new(Fetched::default())),
            reader: None,
            models: ModelStore::new(),
            decoder: None,
        }
    }

    /// Appends the file's next bytes; `last` says they end the file.
    pub fn push(&mut self, bytes: &[u8], last: bool) {
        let mut f = self.fetched.borrow_mut();
        f.bytes.extend_from_slice(bytes);
        f.complete |= last;
    }

    /// Bytes received and not yet parsed: how far the fetching is ahead of decoding.
    pub fn buffered_bytes(&self) -> usize {
        let f = self.fetched.borrow();
        f.bytes.len() - f.pos
    }

    /// Reads the header once enough bytes have arrived: `Ok(None)` until then.
    pub fn header(&mut self) -> Result<Option<StreamInfo>, WebError> {
        if let Some(reader) = &self.reader {
            return Ok(Some(StreamInfo::of(reader.header())));
        }
        self.fetched.borrow_mut().pos = 0;
        match ContainerReader::new(FetchedRead(self.fetched.clone())) {
            Ok(reader) => {
                let info = StreamInfo::of(reader.header());
                self.fetched.borrow_mut().drop_consumed();
                self.reader = Some(reader);
                Ok(Some(info))
            }
            Err(e) if self.waits_for_data(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Adds a model file fetched as `expected_id`, checking that its bytes hash to that id.
    /// Returns the model's size in bytes.
    pub fn add_model(&mut self, expected_id: &str, bytes: &[u8]) -> Result<u64, WebError> {
        let expected = ModelId::from_hex(expected_id)
            .ok_or_else(|| WebError::BadModelId(expected_id.to_string()))?;
        let actual = ModelId::of_bytes(bytes);
        if actual != expected {
            return Err(WebError::WrongModel {
                expected: expected.hex(),
                actual: actual.hex(),
            });
        }
        self.add_hashed_model(actual, bytes)
    }

    /// Adds a model file whose bytes the caller has hashed to `id` (the page, with the
    /// browser's SHA-256: hashing 14 MB in WebAssembly takes about a quarter of a second).
    pub fn add_hashed_model(&mut self, id: ModelId, bytes: &[u8]) -> Result<u64, WebError> {
        let model = Model::from_bytes_as(bytes, id)?;
        let size = model.file_bytes();
        self.models.add(model);
        Ok(size)
    }

    /// Builds the decoder for the header's tools from the models added.
    pub fn start(&mut self) -> Result<(), WebError> {
        let reader = self.reader.as_ref().ok_or(WebError::NoHeader)?;
        self.decoder = Some(FrameDecoder::new(reader.header(), &self.models)?);
        Ok(())
    }

    /// Decodes the next frame if its packet has arrived.
    pub fn next_frame(&mut self) -> Result<Next, WebError> {
        let reader = self.reader.as_mut().ok_or(WebError::NoHeader)?;
        let decoder = self.decoder.as_mut().ok_or(WebError::NotStarted)?;
        let index = reader.frames_read();
        match reader.next_packet() {
            Ok(Some(packet)) => {
                self.fetched.borrow_mut().drop_consumed();
                let frame = decoder.decode(&packet)?;
                Ok(Next::Frame(DecodedFrame {
                    index,
                    intra: packet.frame_type == FrameType::Intra,
                    packet_bytes: packet.stored_len(),
                    rgba: rgb_to_rgba(&frame.data),
                }))
            }
            Ok(None) => Ok(Next::End),
            Err(e) if self.waits_for_data(&e) => {
                // The reader stopped inside a packet: start again at that packet's first byte
                // once more bytes are here.
                let reader = self.reader.take().expect("matched above");
                let (header, first_packet, seen) = reader.resume_state();
                self.fetched.borrow_mut().pos = 0;
                self.reader = Some(ContainerReader::resume_at(
                    FetchedRead(self.fetched.clone()),
                    header,
                    first_packet,
                    seen,
                ));
                Ok(Next::NeedData)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Whether `e` only says that the bytes so far end early, while more are coming. A
    /// footer cut short reads as a bad footer, so it counts too until the file is complete.
    fn waits_for_data(&self, e: &ContainerError) -> bool {
        !self.fetched.borrow().complete
            && (e.is_truncation()
                || matches!(e, ContainerError::BadFooter(_))
                || matches!(e, ContainerError::Io(io) if io.kind() == std::io::ErrorKind::UnexpectedEof))
    }
}

/// Packed RGB to the canvas's RGBA, opaque.
pub fn rgb_to_rgba(rgb: &[u8]) -> Vec<u8> {
    let mut rgba = Vec::with_capacity(rgb.len() / 3 * 4);
    for px in rgb.chunks_exact(3) {
        rgba.extend_from_slice(&[px[0], px[1], px[2], 255]);
    }
    rgba
}

fn js_error(e: impl std::fmt::Display) -> JsError {
    JsError::new(&e.to_string())
}

/// The decoder as the page's worker uses it.
#[wasm_bindgen]
pub struct WebDecoder {
    state: StreamState,
    last: Option<DecodedFrame>,
    ended: bool,
}

impl Default for WebDecoder {
    fn default() -> Self {
        Self::new()
    }
}

#[wasm_bindgen]
impl WebDecoder {
    #[wasm_bindgen(constructor)]
    pub fn new() -> Self {
        Self {
            state: StreamState::new(),
            last: None,
            ended: false,
        }
    }

    /// Appends fetched bytes; `last` when they end the file.
    pub fn push(&mut self, bytes: &[u8], last: bool) {
        self.state.push(bytes, last);
    }

    #[wasm_bindgen(getter)]
    pub fn buffered_bytes(&self) -> usize {
        self.state.buffered_bytes()
    }

    /// The header as JSON (`width`, `height`, `frame_rate`, `frame_count`, `version`,
    /// `models`), or `undefined` until its bytes have arrived.
    pub fn header_json(&mut self) -> Result<Option<String>, JsError> {
        let info = self.state.header().map_err(js_error)?;
        Ok(info.map(|i| serde_json::to_string(&i).expect("plain struct")))
    }

    /// Adds a model file fetched by its id; refuses bytes that do not hash to it.
    pub fn add_model(&mut self, id: &str, bytes: &[u8]) -> Result<f64, JsError> {
        self.state
            .add_model(id, bytes)
            .map(|b| b as f64)
            .map_err(js_error)
    }

    /// Adds a model file the page has hashed to `id` with the browser's SHA-256 (WebCrypto).
    pub fn add_hashed_model(&mut self, id: &str, bytes: &[u8]) -> Result<f64, JsError> {
        let id =
            ModelId::from_hex(id).ok_or_else(|| js_error(WebError::BadModelId(id.to_string())))?;
        self.state
            .add_hashed_model(id, bytes)
            .map(|b| b as f64)
            .map_err(js_error)
    }

    pub fn start(&mut self) -> Result<(), JsError> {
        self.state.start().map_err(js_error)
    }

    /// Decodes the next frame: `true` when one is ready (take it with
    /// [`take_frame`](Self::take_frame)), `false` when more bytes are needed or the stream
    /// ended ([`ended`](Self::ended)).
    pub fn decode_next(&mut self) -> Result<bool, JsError> {
        match self.state.next_frame().map_err(js_error)? {
            Next::Frame(f) => {
                self.last = Some(f);
                Ok(true)
            }
            Next::NeedData => Ok(false),
            Next::End => {
                self.ended = true;
                Ok(false)
            }
        }
    }

    #[wasm_bindgen(getter)]
    pub fn ended(&self) -> bool {
        self.ended
    }

    /// The frame [`decode_next`](Self::decode_next) made, as RGBA bytes.
    pub fn take_frame(&mut self) -> Option<Vec<u8>> {
        self.last.as_mut().map(|f| std::mem::take(&mut f.rgba))
    }

    /// Its frame number, whether it is an intra frame and its packet's bytes, as JSON.
    pub fn frame_json(&self) -> Option<String> {
        self.last.as_ref().map(|f| {
            serde_json::json!({
                "index": f.index,
                "intra": f.intra,
                "packet_bytes": f.packet_bytes,
            })
            .to_string()
        })
    }
}
