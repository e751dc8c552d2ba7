//! Any bytes through the container reader and the frame decoder the header selects.
#![no_main]

use aecodec::container::ContainerReader;
use aecodec::model_file::ModelStore;
use aecodec::pipeline::FrameDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(mut reader) = ContainerReader::new(data) else { return };
    // Keep each run fast: the fuzzer explores parsing, not huge frames.
    let h = reader.header();
    if u64::from(h.coded_width) * u64::from(h.coded_height) > 256 * 256 {
        return;
    }
    let Ok(mut decoder) = FrameDecoder::new(h, &ModelStore::new()) else { return };
    while let Ok(Some(packet)) = reader.next_packet() {
        let _ = decoder.decode(&packet);
    }
});
