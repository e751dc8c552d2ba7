//! Decode throughput of an `.aez` file, stage by stage, with FFmpeg's x264 decoding the same
//! content as a yardstick (`aecodec bench`).

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::coders::CoderError;
use crate::container::{ContainerError, ContainerReader};
use crate::pipeline::{decode_stream, FrameDecoder, FrameSink, StreamError};
use crate::registry::ModelStore;
use crate::video::{create_writer, OutputFormat, VideoError, VideoReader, VideoSink};
use crate::RgbFrame;

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

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        cause: std::io::Error,
    },
    #[error(transparent)]
    Container(#[from] ContainerError),
    #[error(transparent)]
    Coder(#[from] CoderError),
    #[error(transparent)]
    Stream(#[from] StreamError<VideoError>),
    #[error("the file is damaged")]
    Damaged(#[source] crate::pipeline::StreamDamage),
    #[error(transparent)]
    Video(#[from] VideoError),
}

/// Frames go nowhere: the runs after the first measure decoding alone.
struct Discard;

impl FrameSink for Discard {
    type Error = VideoError;
    fn write_frame(&mut self, _: &RgbFrame) -> Result<(), VideoError> {
        Ok(())
    }
}

/// Benchmarks decoding `path` (read into memory first) `runs` times; `work_dir` holds the
/// x264 yardstick file.
pub fn bench_file(
    path: &Path,
    models: &ModelStore,
    runs: usize,
    work_dir: &Path,
) -> Result<BenchReport, BenchError> {
    let bytes = std::fs::read(path).map_err(|cause| BenchError::Read {
        path: path.to_path_buf(),
        cause,
    })?;
    let header = ContainerReader::new(bytes.as_slice())?.header().clone();
    let x264_path = work_dir.join("yardstick.mp4");
    let mut samples = [Vec::new(), Vec::new(), Vec::new(), Vec::new()];
    let mut frames = 0;
    for run in 0..runs.max(1) {
        let mut reader = ContainerReader::new(bytes.as_slice())?;
        let mut decoder = FrameDecoder::new(&header, models)?;
        // The first run also writes the yardstick's input; its time is not counted.
        let mut sink: VideoSink = if run == 0 {
            let (w, h, rate) = (header.width, header.height, header.frame_rate);
            create_writer(OutputFormat::X264Mp4, &x264_path, w, h, rate)?
        } else {
            Box::new(Discard)
        };
        let stream = decode_stream(&mut reader, &mut decoder, sink.as_mut(), |_| {
            ControlFlow::Continue(())
        })?;
        sink.finish()?;
        if let Some(damage) = stream.damage {
            return Err(BenchError::Damaged(damage));
        }
        frames = stream.frames;
        let t = stream.times;
        for (s, t) in samples.iter_mut().zip([
            t.read,
            t.parse,
            t.synthesize,
            t.read + t.parse + t.synthesize,
        ]) {
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
        threads: crate::threads::threads(),
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
fn yardstick_fps(path: &Path, runs: usize) -> Result<f64, VideoError> {
    let mut samples = Vec::new();
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let mut reader = VideoReader::open(path)?;
        let mut n = 0;
        while reader.next_frame()?.is_some() {
            n += 1;
        }
        samples.push(fps(n, start.elapsed()));
    }
    Ok(median(samples))
}
