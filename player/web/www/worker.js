// The decoding worker: fetches a stream by HTTP range requests, fetches its models once (kept
// in Cache Storage under their hash, checked against it), decodes ahead of the page and
// posts each frame's RGBA pixels to it.
//
// Messages in:  {type: 'open', src, ahead, chunk}, {type: 'presented', count}
// Messages out: {type: 'header', info}, {type: 'model', id, bytes, cached},
//               {type: 'frame', index, intra, packetBytes, rgba},
//               {type: 'end', ...counters}, {type: 'error', message, ...counters}

import init, { WebDecoder } from './aeplay_web.js';

// Bytes per range request, unless the page asks otherwise.
let chunk = 256 * 1024;
const MODEL_CACHE = 'aeplay-models-v1';
// A fetch that brings nothing for this long is an error, not a wait.
const STALL_MS = 10000;

let decoder = null;
let src = null;
let ahead = 8;
let fetchedTo = 0;
let total = null;
let decoded = 0;
let presented = 0;
let decodeMs = 0;
let bytesFetched = 0;
let modelBytesFetched = 0;
let running = false;
let failed = false;

self.onmessage = (event) => {
    const m = event.data;
    if (m.type === 'open') {
        src = new URL(m.src, self.location.href).href;
        ahead = m.ahead || ahead;
        if (m.chunk > 0) chunk = Math.floor(m.chunk);
        open().catch(fail);
    } else if (m.type === 'presented') {
        presented = m.count;
        pump();
    }
};

// What the page's statistics report, whether the stream ends or fails.
function counters() {
    return { decoded, decodeMs, bytesFetched, modelBytesFetched, startup };
}

function fail(error) {
    if (failed) return;
    failed = true;
    const message = String(error && error.message ? error.message : error);
    self.postMessage({ type: 'error', message, ...counters() });
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

// The next `chunk` bytes of the stream; false once the whole file has arrived.
async function fetchMore() {
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
}

// Hands the decoder a model file fetched as `id`, refusing bytes that hash to anything
// else: with the browser's SHA-256 where the page has it (a secure context), else the
// decoder's own.
async function addModel(id, bytes) {
    if (self.crypto && self.crypto.subtle) {
        const digest = new Uint8Array(await self.crypto.subtle.digest('SHA-256', bytes));
        const hex = Array.from(digest, (b) => b.toString(16).padStart(2, '0')).join('');
        if (hex !== id.toLowerCase()) {
            throw new Error(`the model fetched as ${id} has the hash ${hex}: refused`);
        }
        decoder.add_hashed_model(id, bytes);
    } else {
        decoder.add_model(id, bytes);
    }
}

// A model file by its hash: from the cache, else from the stream's server (then cached).
async function loadModel(model) {
    const url = new URL(`/models/${model.id}`, src).href;
    const cache = self.caches ? await self.caches.open(MODEL_CACHE) : null;
    if (cache) {
        const hit = await cache.match(url);
        if (hit) {
            const bytes = new Uint8Array(await hit.arrayBuffer());
            try {
                await addModel(model.id, bytes);
                return { cached: true, bytes: bytes.length };
            } catch (e) {
                // A damaged cache entry: forget it and fetch again.
                await cache.delete(url);
            }
        }
    }
    const { bytes } = await fetchWithin(url, {}, `fetching model ${model.id.slice(0, 12)}…`);
    await addModel(model.id, bytes);
    modelBytesFetched += bytes.length;
    if (cache) await cache.put(url, new Response(bytes, { headers: { 'Content-Type': 'application/octet-stream' } }));
    return { cached: false, bytes: bytes.length };
}

// Milliseconds from the worker's start to each step of opening a stream.
const startup = {};
const t0 = performance.now();
function mark(step) {
    startup[step] = Math.round(performance.now() - t0);
}

async function open() {
    await init();
    mark('decoder_ready');
    decoder = new WebDecoder();
    let header = null;
    while (!(header = decoder.header_json())) {
        if (!(await fetchMore())) throw new Error(`${src} ends before its header`);
    }
    mark('header');
    const info = JSON.parse(header);
    self.postMessage({ type: 'header', info });
    for (const model of info.models) {
        const loaded = await loadModel(model);
        self.postMessage({ type: 'model', id: model.id, ...loaded });
    }
    mark('models');
    decoder.start();
    mark('started');
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
    if (running || failed || !decoder || decoder.ended) return;
    running = true;
    try {
        while (!failed && decoded - presented < ahead) {
            const t0 = performance.now();
            const ready = decoder.decode_next();
            if (ready) {
                decodeMs += performance.now() - t0;
                const frame = JSON.parse(decoder.frame_json());
                const rgba = decoder.take_frame();
                decoded += 1;
                if (decoded === 1) mark('first_frame');
                self.postMessage({
                    type: 'frame', index: frame.index, intra: frame.intra,
                    packetBytes: frame.packet_bytes, rgba,
                }, [rgba.buffer]);
                await nextTask();
            } else if (decoder.ended) {
                self.postMessage({ type: 'end', ...counters() });
                return;
            } else if (!(await fetchMore())) {
                throw new Error(`${src} ends inside a packet`);
            }
        }
    } catch (e) {
        fail(e);
    } finally {
        running = false;
    }
}
