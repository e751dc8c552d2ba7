//! Decode throughput of an `.aez` file, stage by stage, with FFmpeg's x264 decoding the same
//! content as a yardstick (`aecodec bench`).

use std::path::Path;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::container::ContainerReader;
use crate::model_file::ModelStore;
use crate::pipeline::FrameDecoder;
use crate::video::{create_writer, OutputFormat, VideoReader};

/// What `aecodec bench` measures. Rates are frames per second of time spent in that stage;
/// each figure is the median over the runs.
#[derive(Debug, Clone, Serialize)]
pub struct BenchReport {
    pub file: String,
    pub file_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub runs: usize,
    /// Threads the synthesis kernels use (`AECODEC_THREADS`, default one per core); the
    /// stages themselves run one after another, not overlapped as in the player.
    pub threads: usize,
    /// Container reading and CRC checks.
    pub container_fps: f64,
    /// Entropy decoding to the latent.
    pub entropy_fps: f64,
    /// Synthesis from the latent to RGB.
    pub synthesis_fps: f64,
    /// The whole path from `.aez` bytes to RGB frames.
    pub total_fps: f64,
    /// FFmpeg decoding an x264 (CRF 18, medium, 4:2:0) encode of the same decoded frames to RGB.
    pub x264_decode_fps: Option<f64>,
    pub x264_bytes: Option<u64>,
    /// Peak resident memory of the process (VmHWM), MiB.
    pub peak_memory_mib: Option<f64>,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn fps(frames: u64, time: Duration) -> f64 {
    frames as f64 / time.as_secs_f64().max(1e-9)
}

/// Peak resident set size from `/proc/self/status`, where there is one.
pub fn peak_memory_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Benchmarks decoding `path` (read into memory first) `runs` times; `work_dir` holds the
/// x264 yardstick file.
pub fn bench_file(
    path: &Path,
    models: &ModelStore,
    runs: usize,
    work_dir: &Path,
) -> Result<BenchReport, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let header = ContainerReader::new(bytes.as_slice())
        .map_err(|e| e.to_string())?
        .header()
        .clone();
    let x264_path = work_dir.join("yardstick.mp4");
    let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut frames = 0;
    for run in 0..runs.max(1) {
        let mut reader = ContainerReader::new(bytes.as_slice()).map_err(|e| e.to_string())?;
        let mut decoder = FrameDecoder::new(&header, models).map_err(|e| e.to_string())?;
        // The first run also writes the yardstick's input.
        let mut yardstick = if run == 0 {
            Some(
                create_writer(
                    OutputFormat::X264Mp4,
                    &x264_path,
                    header.width,
                    header.height,
                    header.frame_rate,
                )
                .map_err(|e| e.to_string())?,
            )
        } else {
            None
        };
        let (mut read, mut parse, mut synth) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        frames = 0;
        loop {
            let t = Instant::now();
            let Some(packet) = reader.next_packet().map_err(|e| e.to_string())? else {
                break;
            };
            let t1 = Instant::now();
            let latent = decoder.parse(&packet).map_err(|e| e.to_string())?;
            let t2 = Instant::now();
            let frame = decoder.synthesize(&latent);
            let t3 = Instant::now();
            (read, parse, synth) = (read + (t1 - t), parse + (t2 - t1), synth + (t3 - t2));
            frames += 1;
            if let Some(w) = yardstick.as_mut() {
                w.write_frame(&frame).map_err(|e| e.to_string())?;
            }
        }
        if let Some(w) = yardstick {
            w.finish().map_err(|e| e.to_string())?;
        }
        for (s, t) in samples
            .iter_mut()
            .zip([read, parse, synth, read + parse + synth])
        {
            s.push(fps(frames, t));
        }
    }
    let [container, entropy, synthesis, total] = samples.map(median);
    let x264 = yardstick_fps(&x264_path, runs);
    Ok(BenchReport {
        file: path.display().to_string(),
        file_bytes: bytes.len() as u64,
        width: header.width,
        height: header.height,
        frames,
        runs: runs.max(1),
        threads: crate::learned::conv::threads(),
        container_fps: container,
        entropy_fps: entropy,
        synthesis_fps: synthesis,
        total_fps: total,
        x264_decode_fps: x264.as_ref().ok().copied(),
        x264_bytes: std::fs::metadata(&x264_path).ok().map(|m| m.len()),
        peak_memory_mib: peak_memory_mib(),
    })
}

/// Median frames/s of FFmpeg decoding the x264 file to RGB.
fn yardstick_fps(path: &Path, runs: usize) -> Result<f64, String> {
    let mut samples = Vec::new();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let mut reader = VideoReader::open(path).map_err(|e| e.to_string())?;
        let mut n = 0;
        while reader.next_frame().map_err(|e| e.to_string())?.is_some() {
            n += 1;
        }
        samples.push(fps(n, start.elapsed()));
    }
    Ok(median(samples))
}
