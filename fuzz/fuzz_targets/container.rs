//! Any bytes through both container readers: errors are fine, panics and huge allocations
//! are not.
#![no_main]

use std::io::Cursor;

use aecodec::container::{ContainerReader, SeekableReader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(mut reader) = ContainerReader::new(data) {
        while let Ok(Some(_)) = reader.next_packet() {}
    }
    if let Ok(mut reader) = SeekableReader::new(Cursor::new(data)) {
        for i in 0..reader.index().len() as u64 {
            let _ = reader.read_packet(i);
        }
    }
});
