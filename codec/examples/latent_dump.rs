//! Writes, per frame of a clip, the rounded latent, the frame and the synthesis output as
//! little-endian f32 planes, for the least-squares probes of docs/experiments/carphone-cap
//! (probe 3). Frames are cropped to a multiple of 16.
//!
//! `cargo run --release -p aecodec --example latent_dump -- MODEL CLIP OUT.f32 FRAMES`

use std::io::Write;

use aecodec::learned::{frame_to_map, LearnedModel};
use aecodec::video::VideoReader;
use anyhow::{bail, Context, Result};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [model, clip, out, frames] = args.as_slice() else {
        bail!("usage: latent_dump MODEL CLIP OUT.f32 FRAMES");
    };
    let model = LearnedModel::from_bytes(&std::fs::read(model).context("reading MODEL")?)?;
    let frames: usize = frames.parse().context("FRAMES")?;
    let mut reader = VideoReader::open(std::path::Path::new(clip))?;
    let mut out = std::io::BufWriter::new(std::fs::File::create(out).context("creating OUT")?);
    let mut written = 0;
    while written < frames {
        let Some(frame) = reader.next_frame()? else {
            break;
        };
        let frame = frame.cropped(frame.width / 16 * 16, frame.height / 16 * 16);
        let mut y = model.analyze(&frame);
        y.data.iter_mut().for_each(|v| *v = v.round());
        let x_hat = model.synthesize_map(y.clone());
        for plane in [&y.data, &frame_to_map(&frame).data, &x_hat.data] {
            let bytes: Vec<u8> = plane.iter().flat_map(|v| v.to_le_bytes()).collect();
            out.write_all(&bytes)?;
        }
        written += 1;
    }
    out.flush()?;
    eprintln!("{written} frames");
    Ok(())
}
