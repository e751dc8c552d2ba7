//! Any bytes as a ladder's `manifest.json`, beside a real ladder's renditions (`fuzz/ladder/`,
//! two renditions of three segments): the manifest's checks, every rendition's header against
//! it, then every segment fetched by the byte range the manifest claims and its packets
//! checked. Errors are fine; panics, hangs and allocations sized by a claimed length are not.
//!
//! `RUSTC_BOOTSTRAP=1 cargo fuzz run -O manifest corpus/manifest ladder`
#![no_main]

use std::path::PathBuf;

use aeplay::adaptive::Ladder;
use libfuzzer_sys::fuzz_target;

/// A directory holding the real renditions, made once per fuzzing process.
fn ladder_dir() -> &'static PathBuf {
    static DIR: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("aez-fuzz-ladder-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let files: [(&str, &[u8]); 2] = [
            ("96x80-50k.aez", include_bytes!("../ladder/96x80-50k.aez")),
            ("176x144-170k.aez", include_bytes!("../ladder/176x144-170k.aez")),
        ];
        for (name, bytes) in files {
            std::fs::write(dir.join(name), bytes).expect("rendition written");
        }
        dir
    })
}

fuzz_target!(|data: &[u8]| {
    let manifest = ladder_dir().join("manifest.json");
    std::fs::write(&manifest, data).expect("manifest written");
    let Ok(ladder) = Ladder::open(manifest.to_str().expect("UTF-8 temp path")) else {
        return;
    };
    let manifest = &ladder.manifest;
    for r in 0..manifest.renditions.len() {
        for k in 0..manifest.segments.len() {
            let _ = ladder.fetch(r, k);
        }
    }
});
