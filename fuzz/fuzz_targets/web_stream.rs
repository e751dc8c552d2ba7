//! Any bytes through the browser player's decoder, arriving in pieces of any size (the first
//! byte sets it) as a page's range requests deliver them: it must never panic, and once the
//! last piece has arrived it must never ask for more.
#![no_main]

use aecodec::model_file::ModelId;
use aeplay_web::{Next, StreamState};
use libfuzzer_sys::fuzz_target;

/// The model files a page could be given beside the built-in ones: the shipped 8×8 PCA and
/// the first default learned model that the oldest seeds were coded with.
fn extra_models() -> &'static [(ModelId, &'static [u8])] {
    static MODELS: std::sync::OnceLock<Vec<(ModelId, &'static [u8])>> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| {
        let files: [&'static [u8]; 2] = [
            include_bytes!("../../samples/models/pca8.model"),
            include_bytes!("../../codec/tests/models/learned-q1-f7a6efd0.model"),
        ];
        files.iter().map(|b| (ModelId::of_bytes(b), *b)).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    // One kernel thread, as in the `decode` target.
    aecodec::threads::set_threads(1);
    let Some((&size, bytes)) = data.split_first() else {
        return;
    };
    let mut pieces = bytes.chunks(usize::from(size) + 1).peekable();
    let mut state = StreamState::new();
    let mut feed = |state: &mut StreamState| match pieces.next() {
        Some(piece) => {
            state.push(piece, pieces.peek().is_none());
            true
        }
        None => false,
    };
    let info = loop {
        match state.header() {
            Ok(Some(info)) => break info,
            Ok(None) => {
                if !feed(&mut state) {
                    return;
                }
            }
            Err(_) => return,
        }
    };
    // Keep each run fast: the fuzzer explores parsing, not huge frames.
    if u64::from(info.width) * u64::from(info.height) > 256 * 256 {
        return;
    }
    for (id, bytes) in extra_models() {
        if info.models.iter().any(|m| m.id == id.hex()) {
            let _ = state.add_hashed_model(*id, bytes);
        }
    }
    if state.start().is_err() {
        return;
    }
    loop {
        match state.next_frame() {
            Ok(Next::Frame(_)) => {}
            Ok(Next::NeedData) => assert!(feed(&mut state), "asks for data after the last byte"),
            Ok(Next::End) | Err(_) => return,
        }
    }
});
