//! `aecodec encode` and `aecodec ladder`.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::Instant;

use aecodec::container::{ContainerWriter, Header};
use aecodec::ladder::{default_ladder, Manifest, RenditionFile, RenditionSpec};
use aecodec::output::{check_output, AtomicFile, StagedDir};
use aecodec::pipeline::{encode_stream, FrameEncoder};
use aecodec::ratecontrol::{encode_stream_at_rate, RateTarget};
use aecodec::registry::CoderRequest;
use aecodec::video::VideoReader;
use anyhow::{bail, Result};

use crate::*;

/// What `encode` does beside choosing coders.
#[derive(Default)]
pub(crate) struct EncodeOptions {
    /// Encode at most this many frames.
    pub(crate) frames: Option<u64>,
    /// The longest group of pictures, in frames (default: about 10 s at one quality,
    /// 2 s under rate control).
    pub(crate) gop: Option<u32>,
    /// Scale frames to this size first.
    pub(crate) size: Option<(u32, u32)>,
    /// Replace an existing output.
    pub(crate) force: bool,
    /// The built-in level asked for, recorded in the header (0: none).
    pub(crate) level: u8,
    /// No bidirectional frames: each packet is coded as its frame arrives.
    pub(crate) low_delay: bool,
}

/// Encodes `input` to `output`.
pub(crate) fn encode(
    input: &Path,
    output: &Path,
    plan: &EncodePlan,
    options: &EncodeOptions,
) -> Result<()> {
    let max_frames = options.frames;
    check_output(output, &[input], options.force)?;
    if let EncodePlan::AtRate { target, .. } = plan {
        target.validate()?;
    }
    let mut reader = VideoReader::open(input)?;
    if let Some((w, h)) = options.size {
        reader.scale_to(w, h);
    }
    let info = *reader.info();
    let gop = options.gop.unwrap_or_else(|| match plan {
        EncodePlan::Fixed(_) => aecodec::pipeline::default_gop(info.frame_rate),
        EncodePlan::AtRate { .. } => aecodec::pipeline::segment_gop(info.frame_rate),
    });
    let tools = match plan {
        EncodePlan::Fixed(spec) => std::slice::from_ref(spec.as_ref()),
        EncodePlan::AtRate { tools, .. } => tools.as_slice(),
    };
    let mut encoder =
        FrameEncoder::with_tools(tools, info.width, info.height, info.frame_rate, gop)?;
    if options.low_delay {
        encoder = encoder.low_delay();
    }
    if matches!(plan, EncodePlan::Fixed(_)) {
        encoder = encoder.with_scene_cuts();
    }
    let mut file = AtomicFile::create(output)?;
    let header = Header {
        level: options.level,
        ..encoder.header().clone()
    };
    let mut writer = ContainerWriter::new(BufWriter::new(file.file()), header)?;
    let total = match (info.frame_count_hint, max_frames) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    };
    let bar = progress_bar(total, "encoding");
    let start = Instant::now();
    let (frames, report) = match plan {
        EncodePlan::Fixed(_) => {
            let frames = encode_stream(
                &mut reader,
                &mut encoder,
                &mut writer,
                max_frames,
                |_, _| until_interrupted(&bar),
            )
            .map_err(stream_error)?;
            (frames, None)
        }
        EncodePlan::AtRate { target, .. } => {
            let report = encode_stream_at_rate(
                &mut reader,
                &mut encoder,
                &mut writer,
                max_frames,
                *target,
                |_, _| until_interrupted(&bar),
            )
            .map_err(stream_error)?;
            (report.frames, Some(report))
        }
    };
    bar.finish_and_clear();
    if frames == 0 {
        bail!("{} has no frames to encode", input.display());
    }
    let (_, header) = writer.finish()?;
    file.commit()?;
    let secs = start.elapsed().as_secs_f64();
    let bytes = std::fs::metadata(output)?.len();
    let bpp = bytes as f64 * 8.0 / (frames as f64 * f64::from(header.width * header.height));
    let kbps = bytes as f64 * 8.0 / header.duration_s() / 1000.0;
    eprintln!(
        "encoded {frames} frames of {}x{} in {secs:.1} s ({:.1} fps): {bytes} bytes, {bpp:.3} bits/pixel, {kbps:.0} kbit/s",
        header.width,
        header.height,
        frames as f64 / secs,
    );
    if let (Some(report), EncodePlan::AtRate { target, .. }) = (report, plan) {
        report_rate(&report, target, kbps, &header);
    }
    Ok(())
}

/// Encodes every rendition of a ladder at its bitrate and writes the manifest.
pub(crate) fn ladder(
    input: &Path,
    dir: &Path,
    renditions: Option<Vec<RenditionSpec>>,
    options: &EncodeOptions,
) -> Result<()> {
    let info = *VideoReader::open(input)?.info();
    let specs = renditions.unwrap_or_else(|| default_ladder(info.width, info.height));
    let manifest_path = dir.join("manifest.json");
    check_output(&manifest_path, &[input], options.force)?;
    aecodec::ladder::check_replaceable(dir)?;
    // The whole ladder is written beside `dir` and put in its place at the end: a reader
    // sees the old ladder or the new one, and an interruption leaves the old one as it was.
    let staged = StagedDir::create(dir)?;
    let options = EncodeOptions {
        gop: Some(
            options
                .gop
                .unwrap_or_else(|| aecodec::pipeline::segment_gop(info.frame_rate)),
        ),
        ..*options
    };
    let tools = CoderRequest::default().rate_tools().map_err(with_flag)?;
    let mut files = Vec::with_capacity(specs.len());
    for spec in &specs {
        let file = spec.file_name();
        eprintln!(
            "rendition {file}: {}x{} at {:.0} kbit/s",
            spec.width,
            spec.height,
            spec.bitrate / 1000.0
        );
        let plan = EncodePlan::AtRate {
            tools: tools.clone(),
            target: RateTarget {
                bitrate: spec.bitrate,
                maxrate: None,
                bufsize: None,
            },
        };
        let options = EncodeOptions {
            size: Some((spec.width, spec.height)),
            ..options
        };
        encode(input, &staged.path().join(&file), &plan, &options)?;
        files.push(RenditionFile::read(staged.path(), spec)?);
    }
    let manifest = Manifest::new(files)?;
    let mut out = AtomicFile::create(&staged.path().join("manifest.json"))?;
    {
        let mut w = BufWriter::new(out.file());
        serde_json::to_writer_pretty(&mut w, &manifest)?;
        w.flush()?;
    }
    out.commit()?;
    staged.commit()?;
    outln!("{}", manifest_path.display());
    Ok(())
}

/// Tells how close rate control came and which tools it used.
pub(crate) fn report_rate(
    report: &aecodec::ratecontrol::RateReport,
    target: &RateTarget,
    kbps: f64,
    header: &aecodec::container::Header,
) {
    let asked = target.bitrate / 1000.0;
    eprintln!(
        "rate control: asked {asked:.0} kbit/s, got {kbps:.0} ({:+.1} %); {} trial encodes of {} groups of pictures; groups per tool:",
        (kbps / asked - 1.0) * 100.0,
        report.trials,
        report.group_tools.len()
    );
    for (tool, n) in report
        .groups_per_tool(header.tools.len())
        .iter()
        .enumerate()
    {
        if *n > 0 {
            eprintln!("  {n:>5}  {:?}", header.tools[tool].coding);
        }
    }
    if report.overflows > 0 {
        eprintln!(
            "warning: {} groups of pictures needed more than --maxrate/--bufsize allow even at the lowest quality",
            report.overflows
        );
    }
}
