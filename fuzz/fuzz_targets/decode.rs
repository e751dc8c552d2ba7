//! Any bytes through the container reader and the frame decoder the header selects (the
//! built-in pixel coder, the shipped 8×8 PCA model, the built-in learned models, or the first
//! default learned model that the oldest seeds were coded with; intra and predicted frames).
#![no_main]

use aecodec::container::ContainerReader;
use aecodec::pipeline::FrameDecoder;
use aecodec::registry::ModelStore;
use libfuzzer_sys::fuzz_target;

fn models() -> &'static ModelStore {
    static STORE: std::sync::OnceLock<ModelStore> = std::sync::OnceLock::new();
    STORE.get_or_init(|| {
        let mut store = ModelStore::new();
        let bytes = include_bytes!("../../samples/models/pca8.model");
        store.add(aecodec::registry::Model::from_bytes(bytes).expect("shipped model"));
        let first = include_bytes!("../../codec/tests/models/learned-q1-f7a6efd0.model");
        store.add(aecodec::registry::Model::from_bytes(first).expect("kept model"));
        store
    })
}

fuzz_target!(|data: &[u8]| {
    // One kernel thread: a scoped worker frees gemm's thread-local scratch only after the
    // scope has returned, which LeakSanitizer's per-input check reports as a leak. The band
    // split across threads is covered by the unit tests.
    aecodec::threads::set_threads(1);
    let Ok(mut reader) = ContainerReader::new(data) else { return };
    // Keep each run fast: the fuzzer explores parsing, not huge frames.
    let h = reader.header();
    if u64::from(h.coded_width) * u64::from(h.coded_height) > 256 * 256 {
        return;
    }
    let Ok(mut decoder) = FrameDecoder::new(h, models()) else { return };
    while let Ok(Some(packet)) = reader.next_packet() {
        let _ = decoder.decode(&packet);
    }
});
