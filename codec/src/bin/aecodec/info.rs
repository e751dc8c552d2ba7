//! `aecodec info`.

use std::fs::File;
use std::io::{BufReader, Write};
use std::path::Path;

use aecodec::container::{ContainerReader, FileStats, SeekableReader};
use anyhow::{Context, Result};
use serde::Serialize;

/// What `aecodec info` reports: the file's name beside its statistics.
#[derive(Serialize)]
pub(crate) struct InfoReport {
    file: String,
    #[serde(flatten)]
    stats: FileStats,
}

pub(crate) fn info_report(input: &Path) -> Result<InfoReport> {
    let file = File::open(input).with_context(|| format!("cannot open {}", input.display()))?;
    let file_bytes = file.metadata()?.len();
    let reader = SeekableReader::new(BufReader::new(file))
        .with_context(|| format!("reading {}", input.display()))?;
    let mut stats = FileStats::of(&reader, file_bytes);
    // Which bytes are whose layer: the packets themselves, front to back.
    let mut packets = ContainerReader::new(BufReader::new(File::open(input)?))
        .with_context(|| format!("reading {}", input.display()))?;
    let header = packets.header().clone();
    while let Ok(Some(packet)) = packets.next_packet() {
        let coding = header
            .tools
            .get(usize::from(packet.tool))
            .map(|t| &t.coding);
        stats.add_packet(aecodec::coders::packet_layers(coding, &packet.payload));
    }
    Ok(InfoReport {
        file: input.display().to_string(),
        stats,
    })
}

pub(crate) fn info(input: &Path, json: bool) -> Result<()> {
    let report = info_report(input)?;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &report)?;
        writeln!(out)?;
        return Ok(());
    }
    let r = &report.stats;
    writeln!(out, "file         {} ({} bytes)", report.file, r.file_bytes)?;
    writeln!(
        out,
        "size         {}x{} (coded {}x{})",
        r.width, r.height, r.coded_width, r.coded_height
    )?;
    writeln!(
        out,
        "frames       {} at {} fps ({:.3} fps), {:.2} s, {} intra",
        r.frame_count, r.frame_rate, r.frame_rate_fps, r.duration_s, r.intra_frames
    )?;
    writeln!(out, "color        {}", r.color)?;
    if r.level > 0 {
        writeln!(
            out,
            "level        {} (the built-in quality level it was coded at)",
            r.level
        )?;
    }
    for (i, t) in r.tools.iter().enumerate() {
        let name = if r.tools.len() == 1 {
            String::new()
        } else {
            format!(" {i}")
        };
        writeln!(out, "coding{name:<7}{}", t.coding)?;
        writeln!(
            out,
            "model{name:<8}{} ({} bytes, fetched once)",
            t.model_id, t.model_bytes
        )?;
    }
    writeln!(
        out,
        "latents      {} bytes; container overhead {} bytes",
        r.latent_bytes, r.container_bytes
    )?;
    writeln!(
        out,
        "layers       learned {} bytes ({} of {} frames), detail {} bytes, other {} bytes",
        r.layer_bytes.learned,
        r.learned_frames,
        r.frame_count,
        r.layer_bytes.detail,
        r.layer_bytes.other
    )?;
    writeln!(
        out,
        "motion       {} of {} frames move the previous picture",
        r.motion_frames, r.frame_count
    )?;
    writeln!(
        out,
        "per frame    mean {:.0} bytes, min {}, max {}",
        r.bytes_per_frame_mean, r.bytes_per_frame_min, r.bytes_per_frame_max
    )?;
    writeln!(
        out,
        "bitrate      {:.1} kbit/s, {:.4} bits/pixel",
        r.bitrate_kbps, r.bits_per_pixel
    )?;
    Ok(())
}
