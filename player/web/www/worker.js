// The decoding worker: fetches a stream by HTTP range requests (an .aez piece by piece, or a
// ladder's segments in the rendition the shared rule picks), fetches its models once (kept in
// Cache Storage under their hash, checked against it), decodes ahead of the page and posts
// each frame's RGBA pixels to it.
//
// Messages in:  {type: 'open', src, start, ahead, chunk}, {type: 'presented', count}
//               (start: seconds; decoding begins at the last intra frame at or before it,
//               frames are sent from the one on screen at `start`)
// Messages out: {type: 'header', info}, {type: 'model', id, bytes, cached},
//               {type: 'frame', index, width, height, rendition, intra, packetBytes, rgba},
//               {type: 'end', ...counters}, {type: 'error', message, ...counters}

import init, { WebDecoder, WebLadder } from './aeplay_web.js';

const MODEL_CACHE = 'aeplay-models-v1';
// A fetch that brings nothing for this long is an error, not a wait.
const STALL_MS = 10000;
// The largest manifest read (as aeplay's).
const MAX_MANIFEST_BYTES = 16 << 20;

let src = null;
let start = 0;
let ahead = 16;
// Bytes per range request of a single file, unless the page asks otherwise.
let chunk = 256 * 1024;
// What is decoded: {decode(), frame(), take(), refill()}; see openFile and openLadder.
let source = null;
// Frames before this one are decoded (from the intra frame a seek lands on) but not shown.
let showFrom = 0;
let decoded = 0;
let presented = 0;
let decodeMs = 0;
let bytesFetched = 0;
let modelBytesFetched = 0;
let running = false;
let ended = false;
let failed = false;
// Ladders: each segment's rendition and why, and each rendition's decoding speed.
const segments = [];
let renditionSpeed = [];

self.onmessage = (event) => {
    const m = event.data;
    if (m.type === 'open') {
        src = new URL(m.src, self.location.href).href;
        ahead = m.ahead || ahead;
        start = m.start > 0 ? m.start : 0;
        if (m.chunk > 0) chunk = Math.floor(m.chunk);
        const ladder = new URL(src).pathname.endsWith('.json');
        (ladder ? openLadder() : openFile()).catch(fail);
    } else if (m.type === 'presented') {
        presented = m.count;
        pump();
    }
};

// What the page's statistics report, whether the stream ends or fails.
function counters() {
    return { decoded, decodeMs, bytesFetched, modelBytesFetched, startup, segments };
}

function fail(error) {
    if (failed) return;
    failed = true;
    const message = String(error && error.message ? error.message : error);
    self.postMessage({ type: 'error', message, ...counters() });
}

// Milliseconds from the worker's start to each step of opening a stream.
const startup = {};
const t0 = performance.now();
function mark(step) {
    startup[step] = Math.round(performance.now() - t0);
}

// One fetch with a deadline: a server that goes away or stops sending fails it.
async function fetchWithin(url, init, what) {
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), STALL_MS);
    try {
        const response = await fetch(url, { ...init, signal: controller.signal });
        if (!response.ok) {
            throw new Error(`${what}: the server answered ${response.status} ${response.statusText}`);
        }
        const bytes = new Uint8Array(await response.arrayBuffer());
        return { response, bytes };
    } catch (e) {
        if (e.name === 'AbortError') throw new Error(`${what}: no answer within ${STALL_MS / 1000} s`);
        if (e instanceof TypeError) throw new Error(`${what}: the server cannot be reached (${e.message})`);
        throw e;
    } finally {
        clearTimeout(timer);
    }
}

// Bytes `start..end` (end excluded) of `url`, by one range request.
async function fetchRange(url, start, end, what) {
    const { response, bytes } = await fetchWithin(
        url, { headers: { Range: `bytes=${start}-${end - 1}` }, cache: 'no-store' }, what);
    if (response.status !== 206 || bytes.length !== end - start) {
        throw new Error(`${what}: asked for bytes ${start}..${end}, the server sent something else`);
    }
    bytesFetched += bytes.length;
    return bytes;
}

// Hands `target` (a WebDecoder or WebLadder) a model file fetched as `id`, refusing bytes
// that hash to anything else: with the browser's SHA-256 where the page has it (a secure
// context), else the decoder's own.
async function addModel(target, id, bytes) {
    if (self.crypto && self.crypto.subtle) {
        const digest = new Uint8Array(await self.crypto.subtle.digest('SHA-256', bytes));
        const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
        if (hex !== id.toLowerCase()) {
            throw new Error(`the model fetched as ${id} has the hash ${hex}: refused`);
        }
        target.add_hashed_model(id, bytes);
    } else {
        target.add_model(id, bytes);
    }
}

// A model file by its hash: from the cache, else from the stream's server (then cached).
async function loadModel(target, id) {
    const url = new URL(`/models/${id}`, src).href;
    const cache = self.caches ? await self.caches.open(MODEL_CACHE) : null;
    if (cache) {
        const hit = await cache.match(url);
        if (hit) {
            const bytes = new Uint8Array(await hit.arrayBuffer());
            try {
                await addModel(target, id, bytes);
                return { cached: true, bytes: bytes.length };
            } catch (e) {
                // A damaged cache entry: forget it and fetch again.
                await cache.delete(url);
            }
        }
    }
    const { bytes } = await fetchWithin(url, {}, `fetching model ${id.slice(0, 12)}…`);
    await addModel(target, id, bytes);
    modelBytesFetched += bytes.length;
    if (cache) await cache.put(url, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
    return { cached: false, bytes: bytes.length };
}

async function loadModels(target, ids) {
    for (const id of ids) {
        const loaded = await loadModel(target, id);
        self.postMessage({ type: 'model', id, ...loaded });
    }
    mark('models');
}

// A single .aez, fetched `chunk` bytes at a time as the decoder needs them.
async function openFile() {
    await init();
    mark('decoder_ready');
    const decoder = new WebDecoder();
    let fetchedTo = 0;
    let total = null;
    // The next `chunk` bytes; false once the whole file has arrived.
    const fetchMore = async () => {
        if (total !== null && fetchedTo >= total) return false;
        const end = fetchedTo + chunk - 1;
        const { response, bytes } = await fetchWithin(
            src, { headers: { Range: `bytes=${fetchedTo}-${end}` }, cache: 'no-store' }, `fetching ${src}`);
        if (response.status === 206) {
            const range = /\/(\d+)\s*$/.exec(response.headers.get('Content-Range') || '');
            if (!range) throw new Error(`fetching ${src}: a partial answer without its total size`);
            total = Number(range[1]);
        } else {
            // A server without ranges sends the whole file.
            if (fetchedTo > 0) throw new Error(`fetching ${src}: the server ignored the range request`);
            total = bytes.length;
        }
        if (bytes.length === 0 && fetchedTo < total) throw new Error(`fetching ${src}: an empty answer`);
        fetchedTo += bytes.length;
        bytesFetched += bytes.length;
        decoder.push(bytes, fetchedTo >= total);
        return true;
    };
    let header = null;
    while (!(header = decoder.header_json())) {
        if (!(await fetchMore())) throw new Error(`${src} ends before its header`);
    }
    mark('header');
    const info = JSON.parse(header);
    let firstFrame = 0;
    if (start > 0) {
        // The index (from the footer at the file's end) says where the intra frame is.
        if (total === null || total < 16) throw new Error(`${src}: cannot seek without the file's size`);
        const footer = await fetchRange(src, total - 16, total, `fetching ${src}`);
        const indexAt = decoder.index_offset(footer, total);
        const tail = await fetchRange(src, indexAt, total, `fetching ${src}`);
        const [offset, , shown] = decoder.seek(start, tail, indexAt);
        fetchedTo = offset;
        // The first frame shown is the one on screen at `start`.
        showFrom = shown;
        firstFrame = shown;
    }
    self.postMessage({ type: 'header', info: { ...info, first_frame: firstFrame } });
    await loadModels(decoder, info.models.map((m) => m.id));
    decoder.start();
    mark('started');
    source = {
        decode: () => decoder.decode_next(),
        frame: () => ({ ...JSON.parse(decoder.frame_json()), width: info.width, height: info.height, rendition: 0 }),
        take: () => decoder.take_frame(),
        refill: async () => {
            if (decoder.ended) return false;
            if (!(await fetchMore())) throw new Error(`${src} ends inside a packet`);
            return true;
        },
    };
    pump();
}

// A ladder: its manifest, every rendition's header, then one range request per segment in
// the rendition chosen just before it (aecodec::ladder::abr, as aeplay).
async function openLadder() {
    await init();
    mark('decoder_ready');
    const { bytes: text } = await fetchWithin(src, { cache: 'no-store' }, `fetching ${src}`);
    if (text.length > MAX_MANIFEST_BYTES) throw new Error(`${src}: a manifest of ${text.length} bytes`);
    bytesFetched += text.length;
    const ladder = new WebLadder(text, ahead);
    const fps = ladder.frame_rate;
    const manifest = JSON.parse(ladder.manifest_json());
    const renditions = manifest.renditions;
    const fileUrl = (r) => new URL(renditions[r].file, src).href;
    for (let r = 0; r < renditions.length; r++) {
        const bytes = await fetchRange(fileUrl(r), 0, renditions[r].header_bytes, `fetching ${fileUrl(r)}`);
        ladder.set_header(r, bytes);
    }
    mark('header');
    const top = renditions.reduce((a, b) => (b.width * b.height > a.width * a.height ? b : a));
    let first = 0;
    while (first + 1 < manifest.segments.length && manifest.segments[first + 1].start_s <= start + 1e-9) first += 1;
    const ids = [...new Set(renditions.flatMap((r) => r.models.map((m) => m.id)))];
    self.postMessage({
        type: 'header',
        info: {
            width: top.width, height: top.height, frame_rate: fps,
            frame_count: manifest.frame_count, renditions: renditions.length,
            first_frame: manifest.segments[first].first_frame,
        },
    });
    await loadModels(ladder, ids);
    ladder.start();
    mark('started');
    renditionSpeed = renditions.map(() => ({ frames: 0, ms: 0 }));
    let next = first;
    source = {
        decode: () => ladder.decode_next(),
        frame: () => JSON.parse(ladder.frame_json()),
        take: () => ladder.take_frame(),
        refill: async () => {
            if (next >= manifest.segments.length) return false;
            const bufferS = (decoded - presented) / fps;
            const measured = Float64Array.from(renditionSpeed, (s) => (s.ms > 0 ? s.frames * 1000 / s.ms : 0));
            const r = ladder.choose(bufferS, measured);
            const place = renditions[r].segments[next];
            const started = performance.now();
            const bytes = await fetchRange(fileUrl(r), place.offset, place.offset + place.bytes,
                `fetching segment ${next} of ${fileUrl(r)}`);
            ladder.record_download(bytes.length, (performance.now() - started) / 1000);
            ladder.open_segment(r, next, bytes);
            segments.push({ segment: next, rendition: r, reason: ladder.reason() });
            next += 1;
            return true;
        },
    };
    pump();
}

// Lets messages from the page in between frames.
const channel = new MessageChannel();
function nextTask() {
    return new Promise((resolve) => {
        channel.port1.onmessage = () => resolve();
        channel.port2.postMessage(0);
    });
}

// Decodes until `ahead` frames wait for the page, fetching when the bytes run out.
async function pump() {
    if (running || failed || ended || !source) return;
    running = true;
    try {
        while (!failed && decoded - presented < ahead) {
            const began = performance.now();
            if (source.decode()) {
                const took = performance.now() - began;
                decodeMs += took;
                const frame = source.frame();
                const rgba = source.take();
                if (frame.index < showFrom) continue;
                decoded += 1;
                if (decoded === 1) mark('first_frame');
                const speed = renditionSpeed[frame.rendition];
                if (speed) { speed.frames += 1; speed.ms += took; }
                self.postMessage({
                    type: 'frame', index: frame.index, width: frame.width, height: frame.height,
                    rendition: frame.rendition, intra: frame.intra, packetBytes: frame.packet_bytes, rgba,
                }, [rgba.buffer]);
                await nextTask();
            } else if (!(await source.refill())) {
                ended = true;
                self.postMessage({ type: 'end', ...counters() });
                return;
            }
        }
    } catch (e) {
        fail(e);
    } finally {
        running = false;
    }
}
