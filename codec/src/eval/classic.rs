//! Classic codecs, run through the `ffmpeg` command on a lossless copy of the reference and
//! decoded back by the codec's own FFmpeg reader.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::{CodedClip, PointError};
use crate::video::VideoReader;

#[derive(Debug, Clone, Copy)]
pub(super) enum Classic {
    /// Motion JPEG, 4:4:4 (`-q:v` setting).
    Jpeg,
    /// x264 medium preset, 4:2:0 (`-crf` setting).
    X264,
    /// x264 medium, every frame intra (`-g 1`).
    X264Intra,
    /// x265 medium preset, 4:2:0 (`-crf` setting).
    X265,
}

impl Classic {
    pub(super) fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "jpeg" => Classic::Jpeg,
            "x264" => Classic::X264,
            "x264-intra" => Classic::X264Intra,
            "x265" => Classic::X265,
            _ => return None,
        })
    }

    pub(super) fn name(self) -> &'static str {
        match self {
            Classic::Jpeg => "jpeg",
            Classic::X264 => "x264",
            Classic::X264Intra => "x264-intra",
            Classic::X265 => "x265",
        }
    }

    pub(super) fn settings(self) -> &'static [&'static str] {
        match self {
            Classic::Jpeg => &["2", "3", "5", "8", "12", "20", "31"],
            Classic::X264 | Classic::X264Intra => &["14", "20", "26", "32", "38", "44"],
            Classic::X265 => &["16", "22", "28", "34", "40", "46"],
        }
    }

    fn arguments(self, setting: &str) -> Vec<String> {
        let args: Vec<&str> = match self {
            Classic::Jpeg => vec!["-c:v", "mjpeg", "-pix_fmt", "yuvj444p", "-q:v", setting],
            Classic::X264 => vec![
                "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p", "-crf", setting,
            ],
            Classic::X264Intra => {
                vec![
                    "-c:v", "libx264", "-preset", "medium", "-pix_fmt", "yuv420p", "-g", "1",
                    "-crf", setting,
                ]
            }
            Classic::X265 => vec![
                "-c:v",
                "libx265",
                "-preset",
                "medium",
                "-pix_fmt",
                "yuv420p",
                "-x265-params",
                "log-level=error",
                "-crf",
                setting,
            ],
        };
        args.into_iter().map(String::from).collect()
    }

    /// Encodes the reference at `setting` to `out` (extension added) and decodes it back.
    pub(super) fn run(
        self,
        reference: &Path,
        setting: &str,
        out: &Path,
    ) -> Result<CodedClip, PointError> {
        let out: PathBuf = out.with_extension("mkv");
        let start = Instant::now();
        let result = Command::new("ffmpeg")
            .args(["-v", "error", "-nostdin", "-y", "-i"])
            .arg(reference)
            .args(self.arguments(setting))
            .arg(&out)
            .output()
            .map_err(PointError::FfmpegMissing)?;
        if !result.status.success() {
            return Err(PointError::Ffmpeg(
                String::from_utf8_lossy(&result.stderr).trim().to_string(),
            ));
        }
        let encode_s = start.elapsed().as_secs_f64();
        let bytes = std::fs::metadata(&out)?.len();
        let start = Instant::now();
        let mut reader = VideoReader::open(&out)?;
        let mut decoded = Vec::new();
        while let Some(f) = reader.next_frame()? {
            decoded.push(f);
        }
        Ok(CodedClip {
            bytes,
            decoded,
            encode_s,
            decode_s: start.elapsed().as_secs_f64(),
        })
    }
}
