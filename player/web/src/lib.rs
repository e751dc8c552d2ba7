//! The `.aez` decoder for web pages: a stream's bytes go in as they are fetched, RGBA frames
//! come out. The page's worker (`www/worker.js`) owns the fetching, the model cache and the
//! pacing; this crate is the native decoder's container reader, parser and synthesis, built
//! for `wasm32-unknown-unknown`, so a page decodes exactly what `aeplay` decodes.
//!
//! [`StreamState`] decodes one `.aez` and [`LadderState`] a ladder (`manifest.json`),
//! segment by segment in the rendition that [`aecodec::ladder::abr`] chooses, as `aeplay`
//! does; both are plain Rust (tested natively). [`WebDecoder`] and [`WebLadder`] are their
//! JavaScript faces.

use std::cell::RefCell;
use std::io::{Read, Seek, SeekFrom};
use std::rc::Rc;

use aecodec::container::{
    ContainerError, ContainerReader, Footer, FrameType, Header, Packet, SeekableReader,
};
use aecodec::ladder::abr::{Abr, Reason, RenditionLoad};
use aecodec::ladder::{Manifest, SegmentReader};
use aecodec::prelude::{FrameDecoder, Model, ModelId, ModelStore, RgbFrame};
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
    #[error("ladder manifest: {0}")]
    Manifest(String),
    #[error("the ladder has no such rendition or segment")]
    NoSegment,
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

/// A file of which only the start (up to its first packet) and the end (its index and
/// footer) have been fetched: enough for [`SeekableReader`] to read the index.
struct SparseFile<'a> {
    head: &'a [u8],
    tail: &'a [u8],
    tail_at: u64,
    pos: u64,
}

impl Read for SparseFile<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let (bytes, from) = if self.pos < self.head.len() as u64 {
            (self.head, self.pos)
        } else if self.pos >= self.tail_at {
            (self.tail, self.pos - self.tail_at)
        } else {
            return Err(std::io::Error::other(format!(
                "byte {} of the file was not fetched",
                self.pos
            )));
        };
        let available = bytes.get(from as usize..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for SparseFile<'_> {
    fn seek(&mut self, to: SeekFrom) -> std::io::Result<u64> {
        let len = self.tail_at + self.tail.len() as u64;
        self.pos = match to {
            SeekFrom::Start(p) => p,
            SeekFrom::End(d) => len.saturating_add_signed(d),
            SeekFrom::Current(d) => self.pos.saturating_add_signed(d),
        };
        Ok(self.pos)
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
        // The pixel coder's tools name no model file (0 bytes).
        let models = header
            .models()
            .into_iter()
            .filter(|&(_, bytes)| bytes > 0)
            .map(|(id, bytes)| NeededModel {
                id: id.hex(),
                bytes,
            })
            .collect();
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

impl DecodedFrame {
    fn new(index: u64, packet: &Packet, frame: &RgbFrame) -> Self {
        Self {
            index,
            intra: packet.frame_type == FrameType::Intra,
            packet_bytes: packet.stored_len(),
            rgba: rgb_to_rgba(&frame.data),
        }
    }
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
    /// The file's first bytes, up to its first packet (kept for seeking).
    head: Vec<u8>,
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
            head: Vec::new(),
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

    /// Reads the header once enough bytes have arrived: `Ok(None)` until then.
    pub fn header(&mut self) -> Result<Option<StreamInfo>, WebError> {
        if let Some(reader) = &self.reader {
            return Ok(Some(StreamInfo::of(reader.header())));
        }
        self.fetched.borrow_mut().pos = 0;
        match ContainerReader::new(FetchedRead(self.fetched.clone())) {
            Ok(reader) => {
                let info = StreamInfo::of(reader.header());
                let mut fetched = self.fetched.borrow_mut();
                self.head = fetched.bytes[..fetched.pos].to_vec();
                fetched.drop_consumed();
                drop(fetched);
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
        self.add_hashed_model(checked_id(expected_id, bytes)?, bytes)
    }

    /// Adds a model file whose bytes the caller has hashed to `id` (the page, with the
    /// browser's SHA-256: hashing 14 MB in WebAssembly takes about a quarter of a second).
    pub fn add_hashed_model(&mut self, id: ModelId, bytes: &[u8]) -> Result<u64, WebError> {
        add_model_to(&mut self.models, id, bytes)
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
                Ok(Next::Frame(DecodedFrame::new(index, &packet, &frame)))
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

    /// Where the file's index starts, from its last [`FOOTER_LEN`] bytes (the file is
    /// `file_len` bytes long).
    pub fn index_offset(&self, footer: &[u8], file_len: u64) -> Result<u64, WebError> {
        Ok(Footer::parse(footer, file_len)?.index_offset)
    }

    /// Moves to the last intra frame at or before `seconds`, given the file's bytes from
    /// `tail_at` to its end (its index and footer): the bytes pushed from now on must start
    /// at the returned offset. Returns that offset, the intra frame's number and the number
    /// of the frame on screen at `seconds` (the first to show).
    pub fn seek(
        &mut self,
        seconds: f64,
        tail: &[u8],
        tail_at: u64,
    ) -> Result<(u64, u64, u64), WebError> {
        if self.reader.is_none() {
            return Err(WebError::NoHeader);
        }
        let sparse = SparseFile {
            head: &self.head,
            tail,
            tail_at,
            pos: 0,
        };
        let seekable = SeekableReader::new(sparse)?;
        let entry = seekable.seek_entry(seconds);
        let shown = seekable.shown_entry(seconds);
        let index = seekable.index();
        let offset = index
            .get(entry)
            .map_or(seekable.first_packet_offset(), |e| e.offset);
        *self.fetched.borrow_mut() = Fetched {
            base: offset,
            ..Fetched::default()
        };
        self.reader = Some(ContainerReader::resume_at(
            FetchedRead(self.fetched.clone()),
            seekable.header().clone(),
            seekable.first_packet_offset(),
            index[..entry].to_vec(),
        ));
        Ok((offset, entry as u64, shown as u64))
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

/// A ladder being played: its checked manifest, the rule that picks each segment's rendition,
/// and one decoder per rendition whose header has arrived.
pub struct LadderState {
    manifest: Manifest,
    /// The manifest's frame rate, frames per second.
    frame_rate: f64,
    abr: Abr,
    headers: Vec<Option<Header>>,
    decoders: Vec<Option<FrameDecoder>>,
    models: ModelStore,
    segment: Option<OpenSegment>,
}

/// The segment being decoded, and its rendition.
struct OpenSegment {
    rendition: usize,
    reader: SegmentReader<std::io::Cursor<Vec<u8>>>,
}

impl LadderState {
    /// Parses and checks a manifest (docs/FORMAT.md, "Ladder manifest"); `ahead` is how many
    /// frames the player keeps decoded ahead (the rule's buffer target).
    pub fn new(json: &[u8], ahead: u32) -> Result<Self, WebError> {
        let manifest = Manifest::from_json(json).map_err(|e| WebError::Manifest(e.to_string()))?;
        manifest
            .check()
            .map_err(|e| WebError::Manifest(e.to_string()))?;
        let fps = manifest
            .frame_rate
            .parse::<aecodec::container::Rational>()
            .map_err(|e| WebError::Manifest(format!("frame rate: {e}")))?
            .as_f64();
        let loads = manifest
            .renditions
            .iter()
            .map(RenditionLoad::from)
            .collect();
        let count = manifest.renditions.len();
        Ok(Self {
            abr: Abr::new(loads, fps, None).with_buffer_target(f64::from(ahead) / fps),
            frame_rate: fps,
            manifest,
            headers: vec![None; count],
            decoders: (0..count).map(|_| None).collect(),
            models: ModelStore::new(),
            segment: None,
        })
    }

    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    pub fn frame_rate(&self) -> f64 {
        self.frame_rate
    }

    /// Reads rendition `r`'s header from its first `header_bytes` bytes and checks it against
    /// the manifest.
    pub fn set_header(&mut self, r: usize, bytes: &[u8]) -> Result<(), WebError> {
        if r >= self.manifest.renditions.len() {
            return Err(WebError::NoSegment);
        }
        let reader = ContainerReader::new(bytes)?;
        self.manifest
            .check_header(r, reader.header(), reader.offset())
            .map_err(|e| WebError::Manifest(e.to_string()))?;
        self.headers[r] = Some(reader.header().clone());
        Ok(())
    }

    /// Adds a model file the caller has hashed to `id`.
    pub fn add_hashed_model(&mut self, id: ModelId, bytes: &[u8]) -> Result<u64, WebError> {
        add_model_to(&mut self.models, id, bytes)
    }

    /// Builds every rendition's decoder from its header and the models added.
    pub fn start(&mut self) -> Result<(), WebError> {
        for (r, header) in self.headers.iter().enumerate() {
            let header = header.as_ref().ok_or(WebError::NoHeader)?;
            self.decoders[r] = Some(FrameDecoder::new(header, &self.models)?);
        }
        Ok(())
    }

    /// Records a segment download (for the rule's throughput estimate).
    pub fn record_download(&mut self, bytes: u64, seconds: f64) {
        self.abr.record_download(bytes, seconds);
    }

    /// The rendition for the next segment, and why.
    pub fn choose(&mut self, buffer_s: f64, measured_fps: &[Option<f64>]) -> (usize, Reason) {
        let choice = self.abr.choose(buffer_s, measured_fps);
        (choice.rendition, choice.reason)
    }

    /// Starts decoding segment `k` of rendition `r` from its fetched bytes.
    pub fn open_segment(&mut self, r: usize, k: usize, bytes: Vec<u8>) -> Result<(), WebError> {
        let (place, time) = match (
            self.manifest.renditions.get(r),
            self.manifest.segments.get(k),
        ) {
            (Some(rendition), Some(time)) => (rendition.segments[k], *time),
            _ => return Err(WebError::NoSegment),
        };
        if bytes.len() as u64 != place.bytes {
            return Err(WebError::Manifest(format!(
                "segment {k} of rendition {r}: {} bytes arrived, the manifest says {}",
                bytes.len(),
                place.bytes
            )));
        }
        let header = self.headers[r].clone().ok_or(WebError::NoHeader)?;
        self.segment = Some(OpenSegment {
            rendition: r,
            reader: SegmentReader::new(std::io::Cursor::new(bytes), header, &time, &place),
        });
        Ok(())
    }

    /// The open segment's next frame; `None` once all its frames are decoded (or before the
    /// first segment is opened).
    pub fn next_frame(&mut self) -> Result<Option<(usize, DecodedFrame)>, WebError> {
        let Some(seg) = self.segment.as_mut() else {
            return Ok(None);
        };
        let index = seg.reader.frames_read();
        let Some(packet) = seg.reader.next_packet()? else {
            self.segment = None;
            return Ok(None);
        };
        let rendition = seg.rendition;
        let decoder = self.decoders[rendition]
            .as_mut()
            .ok_or(WebError::NotStarted)?;
        let frame = decoder.decode(&packet)?;
        Ok(Some((rendition, DecodedFrame::new(index, &packet, &frame))))
    }
}

/// Parses model bytes the caller has hashed to `id` into `store`; returns their size.
fn add_model_to(store: &mut ModelStore, id: ModelId, bytes: &[u8]) -> Result<u64, WebError> {
    let model = Model::from_bytes_as(bytes, id)?;
    let size = model.file_bytes();
    store.add(model);
    Ok(size)
}

/// A model id written in hex.
fn parse_id(hex: &str) -> Result<ModelId, WebError> {
    ModelId::from_hex(hex).ok_or_else(|| WebError::BadModelId(hex.to_string()))
}

/// The id of model bytes fetched as `expected`, if they hash to it.
fn checked_id(expected: &str, bytes: &[u8]) -> Result<ModelId, WebError> {
    let expected = parse_id(expected)?;
    let actual = ModelId::of_bytes(bytes);
    if actual != expected {
        return Err(WebError::WrongModel {
            expected: expected.hex(),
            actual: actual.hex(),
        });
    }
    Ok(actual)
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
        let id = parse_id(id).map_err(js_error)?;
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

    /// Where the index starts, from the file's last 16 bytes.
    pub fn index_offset(&self, footer: &[u8], file_len: f64) -> Result<f64, JsError> {
        self.state
            .index_offset(footer, file_len as u64)
            .map(|o| o as f64)
            .map_err(js_error)
    }

    /// Moves to the last intra frame at or before `seconds` (see [`StreamState::seek`]):
    /// returns `[offset to fetch from, intra frame's number, first shown frame's number]`.
    pub fn seek(&mut self, seconds: f64, tail: &[u8], tail_at: f64) -> Result<Vec<f64>, JsError> {
        let (offset, frame, shown) = self
            .state
            .seek(seconds, tail, tail_at as u64)
            .map_err(js_error)?;
        Ok(vec![offset as f64, frame as f64, shown as f64])
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

/// A ladder as the page's worker plays it.
#[wasm_bindgen]
pub struct WebLadder {
    state: LadderState,
    last: Option<(usize, DecodedFrame)>,
    reason: Option<Reason>,
}

#[wasm_bindgen]
impl WebLadder {
    /// A ladder from its `manifest.json` bytes, checked; `ahead`: the frames the player keeps
    /// decoded ahead.
    #[wasm_bindgen(constructor)]
    pub fn new(manifest: &[u8], ahead: u32) -> Result<WebLadder, JsError> {
        Ok(Self {
            state: LadderState::new(manifest, ahead).map_err(js_error)?,
            last: None,
            reason: None,
        })
    }

    /// Frames per second.
    #[wasm_bindgen(getter)]
    pub fn frame_rate(&self) -> f64 {
        self.state.frame_rate()
    }

    /// The checked manifest, as JSON.
    pub fn manifest_json(&self) -> String {
        serde_json::to_string(self.state.manifest()).expect("plain struct")
    }

    pub fn set_header(&mut self, rendition: usize, bytes: &[u8]) -> Result<(), JsError> {
        self.state.set_header(rendition, bytes).map_err(js_error)
    }

    /// Adds a model file the page has hashed to `id` with the browser's SHA-256.
    pub fn add_hashed_model(&mut self, id: &str, bytes: &[u8]) -> Result<f64, JsError> {
        let id = parse_id(id).map_err(js_error)?;
        self.state
            .add_hashed_model(id, bytes)
            .map(|b| b as f64)
            .map_err(js_error)
    }

    /// Adds a model file fetched as `id`, hashing it here.
    pub fn add_model(&mut self, id: &str, bytes: &[u8]) -> Result<f64, JsError> {
        let id = checked_id(id, bytes).map_err(js_error)?;
        self.state
            .add_hashed_model(id, bytes)
            .map(|b| b as f64)
            .map_err(js_error)
    }

    pub fn start(&mut self) -> Result<(), JsError> {
        self.state.start().map_err(js_error)
    }

    pub fn record_download(&mut self, bytes: f64, seconds: f64) {
        self.state.record_download(bytes as u64, seconds);
    }

    /// The rendition of the next segment, given the seconds of video decoded ahead and each
    /// rendition's measured decoding speed in frames/s (0 where not measured yet).
    pub fn choose(&mut self, buffer_s: f64, measured_fps: &[f64]) -> usize {
        let measured: Vec<Option<f64>> = measured_fps
            .iter()
            .map(|&f| (f > 0.0).then_some(f))
            .collect();
        let (r, reason) = self.state.choose(buffer_s, &measured);
        self.reason = Some(reason);
        r
    }

    /// Why the last [`choose`](Self::choose) chose as it did (`start`, `hold`, `up`,
    /// `network`, `decoder`).
    pub fn reason(&self) -> Option<String> {
        self.reason.map(|r| {
            serde_json::to_value(r)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default()
        })
    }

    pub fn open_segment(
        &mut self,
        rendition: usize,
        segment: usize,
        bytes: Vec<u8>,
    ) -> Result<(), JsError> {
        self.state
            .open_segment(rendition, segment, bytes)
            .map_err(js_error)
    }

    /// Decodes the open segment's next frame: `false` once the segment is done.
    pub fn decode_next(&mut self) -> Result<bool, JsError> {
        self.last = self.state.next_frame().map_err(js_error)?;
        Ok(self.last.is_some())
    }

    pub fn take_frame(&mut self) -> Option<Vec<u8>> {
        self.last.as_mut().map(|(_, f)| std::mem::take(&mut f.rgba))
    }

    /// Its frame number, rendition, size, whether it is an intra frame and its packet's bytes.
    pub fn frame_json(&self) -> Option<String> {
        self.last.as_ref().map(|(r, f)| {
            let rendition = &self.state.manifest().renditions[*r];
            serde_json::json!({
                "index": f.index,
                "rendition": r,
                "width": rendition.width,
                "height": rendition.height,
                "intra": f.intra,
                "packet_bytes": f.packet_bytes,
            })
            .to_string()
        })
    }
}
