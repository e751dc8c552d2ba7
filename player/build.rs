//! Embeds the browser player's decoder (`scripts/web` builds it into `target/web/pkg`) when it
//! has been built; without it `aeplay serve` still serves the page, which then says how to
//! build the decoder.

use std::path::PathBuf;

const DECODER_FILES: [&str; 2] = ["aeplay_web.js", "aeplay_web_bg.wasm"];

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    let pkg = manifest.join("../target/web/pkg");
    println!("cargo::rustc-check-cfg=cfg(web_decoder)");
    println!("cargo::rerun-if-changed={}", pkg.display());
    let built = DECODER_FILES.iter().all(|f| pkg.join(f).is_file());
    for file in DECODER_FILES {
        let bytes = if built {
            std::fs::read(pkg.join(file)).expect("readable decoder file")
        } else {
            Vec::new()
        };
        std::fs::write(out.join(file), bytes).expect("writable OUT_DIR");
    }
    if built {
        println!("cargo::rustc-cfg=web_decoder");
    } else {
        println!(
            "cargo::warning=the browser player's decoder is not built (run scripts/web): \
             aeplay serve will serve the page without it"
        );
    }
}
