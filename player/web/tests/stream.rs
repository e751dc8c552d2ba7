//! The web decoder against the native one, on committed `.aez` files, with their bytes
//! arriving in pieces as a page's fetches deliver them.

use std::path::{Path, PathBuf};

use aecodec::prelude::{ContainerReader, FrameDecoder, ModelId, ModelStore};
use aeplay_web::{rgb_to_rgba, Next, StreamState};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Every frame as the native decoder makes it (built-in models), as RGBA.
fn native_frames(file: &Path) -> Vec<Vec<u8>> {
    let mut reader = ContainerReader::new(std::fs::File::open(file).unwrap()).unwrap();
    let old = repo().join("codec/tests/models/learned-q1-f7a6efd0.model");
    let models = ModelStore::with_files(&[old]).unwrap();
    let mut decoder = FrameDecoder::new(reader.header(), &models).unwrap();
    let mut frames = Vec::new();
    while let Some(packet) = reader.next_packet().unwrap() {
        frames.push(rgb_to_rgba(&decoder.decode(&packet).unwrap().data));
    }
    frames
}

/// The model file with this id, from the built-in ones (`samples/models`) or the old one
/// the earliest test files were coded with, as the server would send it.
fn model_bytes(id: &str) -> Vec<u8> {
    let want = ModelId::from_hex(id).unwrap();
    ["samples/models", "codec/tests/models"]
        .iter()
        .flat_map(|dir| std::fs::read_dir(repo().join(dir)).unwrap())
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "model"))
        .map(|p| std::fs::read(p).unwrap())
        .find(|bytes| ModelId::of_bytes(bytes) == want)
        .unwrap_or_else(|| panic!("no model {id} in samples/models"))
}

/// Decodes `bytes` fed `chunk` bytes at a time, fetching the next piece whenever the
/// decoder asks for data; returns the frames and how many times it asked.
fn web_frames(bytes: &[u8], chunk: usize) -> (Vec<Vec<u8>>, usize) {
    let mut state = StreamState::new();
    let mut pieces = bytes.chunks(chunk).peekable();
    let mut feed = |state: &mut StreamState| {
        let piece = pieces.next().expect("the decoder asked past the end");
        state.push(piece, pieces.peek().is_none());
    };
    let info = loop {
        if let Some(info) = state.header().unwrap() {
            break info;
        }
        feed(&mut state);
    };
    for m in &info.models {
        assert_eq!(
            state.add_model(&m.id, &model_bytes(&m.id)).unwrap(),
            m.bytes
        );
    }
    state.start().unwrap();
    let (mut frames, mut waits) = (Vec::new(), 0);
    loop {
        match state.next_frame().unwrap() {
            Next::Frame(f) => {
                assert_eq!(f.index, frames.len() as u64);
                frames.push(f.rgba);
            }
            Next::NeedData => {
                waits += 1;
                feed(&mut state);
            }
            Next::End => return (frames, waits),
        }
    }
}

#[test]
fn pieces_of_any_size_decode_to_the_native_decoders_frames() {
    for name in [
        "carphone-6frames-v10-deblocked.aez",
        "bikes-strip-learned-motion.aez",
        "tiny-lossless.aez",
    ] {
        let file = repo().join("fuzz/seeds").join(name);
        let bytes = std::fs::read(&file).unwrap();
        let native = native_frames(&file);
        assert!(!native.is_empty());
        for chunk in [7, 1000, bytes.len()] {
            let (frames, waits) = web_frames(&bytes, chunk);
            assert_eq!(frames.len(), native.len(), "{name}, pieces of {chunk}");
            assert!(frames == native, "{name}, pieces of {chunk}: frames differ");
            if chunk < bytes.len() / 2 {
                assert!(
                    waits > 1,
                    "{name}: never waited for data with {chunk}-byte pieces"
                );
            }
        }
    }
}

#[test]
fn a_damaged_payload_or_a_truncated_file_is_an_error_not_a_wait() {
    let bytes =
        std::fs::read(repo().join("fuzz/seeds/carphone-6frames-v10-deblocked.aez")).unwrap();
    // Flip a byte in the middle of the file: some packet's CRC fails.
    let mut damaged = bytes.clone();
    let mid = damaged.len() / 2;
    damaged[mid] ^= 0x55;
    // The file cut short, and told complete.
    let truncated = &bytes[..bytes.len() - 40];
    for (what, input) in [("damaged", &damaged[..]), ("truncated", truncated)] {
        let mut state = StreamState::new();
        state.push(input, true);
        let info = state.header().unwrap().unwrap();
        for m in &info.models {
            state.add_model(&m.id, &model_bytes(&m.id)).unwrap();
        }
        state.start().unwrap();
        let outcome = loop {
            match state.next_frame() {
                Ok(Next::Frame(_)) => continue,
                Ok(Next::NeedData) => panic!("{what}: waits for data after the file's end"),
                Ok(Next::End) => panic!("{what}: decoded to the end"),
                Err(e) => break e.to_string(),
            }
        };
        assert!(!outcome.is_empty(), "{what}");
    }
}

#[test]
fn a_model_whose_bytes_do_not_hash_to_its_id_is_refused() {
    // Coded with a model that is not built in: the decoder cannot start without it.
    let bytes = std::fs::read(repo().join("fuzz/seeds/tiny-learned-3frames.aez")).unwrap();
    let mut state = StreamState::new();
    state.push(&bytes, true);
    let info = state.header().unwrap().unwrap();
    let id = &info.models[0].id;
    let mut model = model_bytes(id);
    model[100] ^= 1;
    let err = state.add_model(id, &model).unwrap_err().to_string();
    assert!(err.contains("refused"), "{err}");
    let err = state.start().unwrap_err().to_string();
    assert!(err.contains(&id[..8]), "{err}");
    state.add_model(id, &model_bytes(id)).unwrap();
    state.start().unwrap();
    assert!(matches!(state.next_frame().unwrap(), Next::Frame(_)));
}

#[test]
fn seeking_through_the_index_restarts_at_an_intra_frame_with_the_same_frames() {
    let file = repo().join("fuzz/seeds/carphone-6frames-v10-deblocked.aez");
    let bytes = std::fs::read(&file).unwrap();
    let native = native_frames(&file);
    let mut state = StreamState::new();
    // Only the header has arrived, as when a page seeks before playing.
    state.push(&bytes[..400], false);
    let info = state.header().unwrap().unwrap();
    for m in &info.models {
        state.add_model(&m.id, &model_bytes(&m.id)).unwrap();
    }
    state.start().unwrap();
    let len = bytes.len() as u64;
    let index_at = state.index_offset(&bytes[bytes.len() - 16..], len).unwrap();
    // Not enough of the end: the footer's index is not all there.
    assert!(state
        .seek(0.1, &bytes[bytes.len() - 16..], len - 16)
        .is_err());
    let (offset, frame, shown) = state
        .seek(0.1, &bytes[index_at as usize..], index_at)
        .unwrap();
    // One group of pictures: the only intra frame is the first. At 29.97 frames/s, frame 2
    // (from 0.067 s) is on screen at 0.1 s.
    assert_eq!(frame, 0);
    assert_eq!(shown, 2);
    state.push(&bytes[offset as usize..], true);
    let mut frames = Vec::new();
    while let Next::Frame(f) = state.next_frame().unwrap() {
        frames.push(f.rgba);
    }
    assert!(frames == native);
}
