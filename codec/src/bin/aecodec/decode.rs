//! `aecodec decode`.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use aecodec::container::ContainerReader;
use aecodec::output::check_output;
use aecodec::pipeline::{decode_stream, FrameDecoder};
use aecodec::registry::ModelStore;
use aecodec::video::open_output;
use anyhow::{bail, Context, Result};

use crate::*;

pub(crate) fn decode(
    input: &Path,
    output: &Path,
    models: &[PathBuf],
    force: bool,
    strict: bool,
) -> Result<ExitCode> {
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let mut reader = ContainerReader::new(BufReader::new(file))
        .with_context(|| format!("reading {}", input.display()))?;
    let header = reader.header().clone();
    let models = ModelStore::with_files(models)?;
    let mut decoder = FrameDecoder::new(&header, &models)?;
    let to_stdout = output.as_os_str() == "-";
    if !to_stdout {
        check_output(output, &[input], force)?;
    }
    let mut sink = open_output(output, header.width, header.height, header.frame_rate)?;
    let bar = progress_bar(Some(u64::from(header.frame_count)), "decoding");
    let start = Instant::now();
    let decoded = decode_stream(&mut reader, &mut decoder, sink.as_mut(), |_| {
        until_interrupted(&bar)
    })
    .map_err(stream_error)?;
    bar.finish_and_clear();
    if let (0, Some(damage)) = (decoded.frames, &decoded.damage) {
        // Nothing to keep: the output is not written.
        bail!("{}: no frame decodes: {damage}", input.display());
    }
    sink.finish()?;
    let (frames, secs) = (decoded.frames, start.elapsed().as_secs_f64());
    eprintln!(
        "decoded {frames} frames in {secs:.1} s ({:.1} fps)",
        frames as f64 / secs
    );
    if let Some(e) = decoded.damage {
        eprintln!(
            "warning: {}: {e}; stopped after {frames} good frames",
            input.display()
        );
        if strict {
            return Ok(ExitCode::from(2));
        }
    }
    if !to_stdout {
        outln!("{}", output.display());
    }
    Ok(ExitCode::SUCCESS)
}
