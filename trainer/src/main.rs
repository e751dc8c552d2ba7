//! `aetrain`: fits aecodec's models.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "aetrain",
    version,
    about = "Fit aecodec models (PCA baselines and learned autoencoders)"
)]
struct Cli {}

fn main() {
    Cli::parse();
    eprintln!(
        "aetrain has no commands yet: model fitting lands with the PCA and learned-codec work"
    );
    std::process::exit(2);
}
