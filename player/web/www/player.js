// The page: the catalog, and one stream played on a canvas at the video's frame rate. A
// worker (worker.js) fetches and decodes ahead; this side paces, presents and keeps the
// statistics, by aeplay's rule: a frame more than one interval late is dropped when a later
// one is already decoded, else playback stalls and resumes from it.
//
// ?src=<url> plays that stream (an .aez, or a ladder's manifest.json); &autoplay=1 starts it
// at once; &t=SECONDS starts at the frame on screen at that time (decoded from the last intra
// frame at or before it); &chunk=N
// fetches N bytes per range request (default 256 KiB); &grab=0,5 keeps those frames as read
// back from the canvas (window.aeplay.grabs, base64 RGBA) for tests.
// When playback ends, or fails, the statistics are written as JSON into the element with id
// "stats" (and window.aeplay.stats); window.aeplay.playback is the playback in progress.

const params = new URLSearchParams(location.search);
const canvas = document.getElementById('screen');
const context = canvas.getContext('2d', { willReadFrequently: params.has('grab') });
const playButton = document.getElementById('play');
const seekBar = document.getElementById('seek');
const statusLine = document.getElementById('status');
const errorBox = document.getElementById('error');
const statsBox = document.getElementById('stats');
const grabList = new Set((params.get('grab') || '').split(',').filter((s) => s !== '').map(Number));

window.aeplay = { stats: null, grabs: {}, playback: null };

let session = null;

function showError(message) {
    errorBox.textContent = message;
    errorBox.hidden = false;
}

class Playback {
    constructor(src, start = 0) {
        this.src = src;
        this.opened = performance.now();
        this.info = null;
        this.queue = [];
        this.handled = 0;
        this.presented = 0;
        this.dropped = 0;
        this.stalls = 0;
        this.stalledMs = 0;
        this.clockStart = null;
        this.firstFrameMs = null;
        this.paused = false;
        this.pausedAt = null;
        this.timer = null;
        this.ended = false;
        // The worker's counters, from its 'end' or 'error' message.
        this.counters = null;
        this.errors = [];
        this.pendingError = null;
        this.finished = false;
        this.models = [];
        this.worker = new Worker('worker.js', { type: 'module' });
        this.worker.onmessage = (e) => this.onMessage(e.data);
        this.worker.onerror = (e) => this.fail(`the decoder could not run: ${e.message || 'worker error'}`);
        const chunk = Number(params.get('chunk')) || undefined;
        this.worker.postMessage({ type: 'open', src, start, ahead: 16, chunk });
        statusLine.textContent = `opening ${src}`;
    }

    onMessage(m) {
        if (this.finished) return;
        if (m.type === 'header') {
            this.info = m.info;
            this.interval = 1000 / m.info.frame_rate;
            canvas.width = m.info.width;
            canvas.height = m.info.height;
            seekBar.max = String(m.info.frame_count / m.info.frame_rate);
            seekBar.step = String(1 / m.info.frame_rate);
            seekBar.disabled = false;
            const ladder = m.info.renditions ? `, a ladder of ${m.info.renditions} renditions` : '';
            statusLine.textContent = `${m.info.width}×${m.info.height}, ${m.info.frame_count} frames at ${m.info.frame_rate.toFixed(2)} fps${ladder}`;
        } else if (m.type === 'model') {
            this.models.push({ id: m.id, bytes: m.bytes, cached: m.cached });
        } else if (m.type === 'frame') {
            this.queue.push(m);
            this.schedule();
        } else if (m.type === 'end') {
            this.ended = true;
            this.counters = m;
            this.schedule();
        } else if (m.type === 'error') {
            // The frames decoded before the failure still play; then the error shows.
            this.pendingError = m.message;
            this.counters = m;
            this.schedule();
        }
    }

    schedule(delay = 0) {
        if (this.timer === null && !this.paused && !this.finished) {
            this.timer = setTimeout(() => { this.timer = null; this.tick(); }, delay);
        }
    }

    // Presents, drops or waits for the next frame.
    tick() {
        if (this.paused || this.finished) return;
        if (this.queue.length === 0) {
            if (this.pendingError) this.fail(this.pendingError);
            else if (this.ended) this.finish();
            return; // the next frame's arrival schedules again
        }
        const now = performance.now();
        if (this.clockStart === null) this.clockStart = now;
        const due = this.clockStart + this.handled * this.interval;
        if (now > due + this.interval && this.presented > 0) {
            if (this.queue.length > 1) {
                this.queue.shift();
                this.consumed(false);
                this.schedule();
                return;
            }
            this.stalls += 1;
            this.stalledMs += now - due;
            this.clockStart += now - due;
        } else if (due > now + 1) {
            this.schedule(due - now);
            return;
        }
        this.present(this.queue.shift());
        this.consumed(true);
        this.schedule();
    }

    present(frame) {
        const { width, height } = this.info;
        this.lastRendition = frame.rendition;
        const image = new ImageData(new Uint8ClampedArray(frame.rgba.buffer), frame.width, frame.height);
        if (frame.width === width && frame.height === height) {
            context.putImageData(image, 0, 0);
        } else {
            // A ladder's lower rendition, scaled to the largest one's size.
            if (!this.scratch || this.scratch.width !== frame.width || this.scratch.height !== frame.height) {
                this.scratch = new OffscreenCanvas(frame.width, frame.height);
            }
            this.scratch.getContext('2d').putImageData(image, 0, 0);
            context.drawImage(this.scratch, 0, 0, width, height);
        }
        if (this.firstFrameMs === null) this.firstFrameMs = performance.now() - this.opened;
        if (grabList.has(frame.index)) {
            const shown = context.getImageData(0, 0, width, height).data;
            let text = '';
            for (let i = 0; i < shown.length; i += 0x8000) {
                text += String.fromCharCode.apply(null, shown.subarray(i, i + 0x8000));
            }
            window.aeplay.grabs[frame.index] = btoa(text);
        }
    }

    consumed(shown) {
        this.handled += 1;
        if (!seekBar.matches(':active')) {
            seekBar.value = String((this.info.first_frame + this.handled) / this.info.frame_rate);
        }
        if (shown) this.presented += 1; else this.dropped += 1;
        this.worker.postMessage({ type: 'presented', count: this.handled });
        if (this.handled % 25 === 0) {
            const rendition = this.lastRendition === undefined || !this.info.renditions ? ''
                : `, rendition ${this.lastRendition + 1} of ${this.info.renditions}`;
            statusLine.textContent = `frame ${this.info.first_frame + this.handled} of ${this.info.frame_count}, ${this.dropped} dropped${rendition}`;
        }
    }

    togglePause() {
        if (this.finished) return;
        this.paused = !this.paused;
        if (this.paused) {
            this.pausedAt = performance.now();
            if (this.timer !== null) { clearTimeout(this.timer); this.timer = null; }
        } else {
            if (this.clockStart !== null) this.clockStart += performance.now() - this.pausedAt;
            this.schedule();
        }
        playButton.textContent = this.paused ? 'Play' : 'Pause';
    }

    fail(message) {
        if (this.finished) return;
        this.errors.push(message);
        showError(message);
        this.finish();
    }

    stats() {
        const end = this.counters || {};
        return {
            src: this.src,
            // The frames from the one playback started at (an intra frame) to the end.
            start_frame: this.info ? this.info.first_frame : 0,
            frames: this.info ? this.info.frame_count - this.info.first_frame : 0,
            presented: this.presented,
            dropped: this.dropped,
            stalls: this.stalls,
            stalled_ms: Math.round(this.stalledMs),
            decode_fps: end.decodeMs ? end.decoded / (end.decodeMs / 1000) : 0,
            first_frame_ms: this.firstFrameMs === null ? null : Math.round(this.firstFrameMs),
            bytes_fetched: end.bytesFetched || 0,
            model_bytes_fetched: end.modelBytesFetched || 0,
            models: this.models,
            // Milliseconds from the decoding worker's start: decoder_ready, header, models,
            // started, first_frame (decoded).
            startup: end.startup || {},
            // A ladder's segments as played: {segment, rendition, reason}.
            segments: end.segments || [],
            errors: this.errors,
        };
    }

    finish() {
        if (this.finished) return;
        this.finished = true;
        this.worker.terminate();
        const stats = this.stats();
        window.aeplay.stats = stats;
        statsBox.textContent = JSON.stringify(stats);
        statsBox.hidden = false;
        playButton.textContent = 'Play again';
        if (!stats.errors.length) {
            statusLine.textContent = `played ${stats.presented} of ${stats.frames} frames, ${stats.dropped} dropped, decoding at ${stats.decode_fps.toFixed(1)} fps`;
        }
    }
}

function play(src, start = 0) {
    errorBox.hidden = true;
    statsBox.hidden = true;
    window.aeplay.stats = null;
    if (session && !session.finished) session.finish();
    session = new Playback(src, start);
    window.aeplay.playback = session;
    playButton.disabled = false;
    playButton.textContent = 'Pause';
}

// The keys of aeplay's window: space pauses, left and right seek 5 seconds.
document.addEventListener('keydown', (event) => {
    if (!session || event.target instanceof HTMLInputElement) return;
    if (event.key === ' ') {
        session.togglePause();
    } else if ((event.key === 'ArrowLeft' || event.key === 'ArrowRight') && session.info) {
        const now = (session.info.first_frame + session.handled) / session.info.frame_rate;
        const duration = session.info.frame_count / session.info.frame_rate;
        const to = Math.min(Math.max(now + (event.key === 'ArrowLeft' ? -5 : 5), 0), duration);
        play(session.src, to);
    } else {
        return;
    }
    event.preventDefault();
});

// Seeking starts the stream again from the intra frame at or before the time asked for, and
// shows frames from that time on.
seekBar.addEventListener('change', () => {
    if (session) play(session.src, Number(seekBar.value));
});

playButton.addEventListener('click', () => {
    if (!session) return;
    if (session.finished) play(session.src); else session.togglePause();
});

async function loadCatalog() {
    const list = document.getElementById('titles');
    try {
        const response = await fetch('catalog.json');
        if (!response.ok) throw new Error(`the server answered ${response.status}`);
        const titles = await response.json();
        list.replaceChildren(...titles.map((t) => {
            const item = document.createElement('li');
            const link = document.createElement('a');
            link.href = `?src=${encodeURIComponent(t.url)}&autoplay=1`;
            link.textContent = t.title;
            const about = document.createElement('span');
            about.textContent = ` ${t.width}×${t.height}, ${t.duration_s.toFixed(1)} s, ${(t.bytes / 1024).toFixed(0)} KiB${t.renditions ? `, ${t.renditions} renditions` : ''}`;
            item.append(link, about);
            return item;
        }));
        if (!titles.length) list.textContent = 'No titles on this server.';
    } catch (e) {
        list.textContent = `The catalog could not be loaded (${e.message}).`;
    }
}

loadCatalog();
const src = params.get('src');
if (src) {
    if (params.get('autoplay') === '1') {
        play(src, Number(params.get('t')) || 0);
    } else {
        playButton.disabled = false;
        playButton.textContent = 'Play';
        playButton.addEventListener('click', () => { if (!session) play(src); }, { once: true });
    }
}
