//! What a finished `.aez` file holds, from its header and index alone (`aecodec info`).

use std::io::{Read, Seek};

use serde::Serialize;

use super::{payload_len_of, FrameType, SeekableReader};

/// One coding tool of a file.
#[derive(Debug, Clone, Serialize)]
pub struct ToolStats {
    pub coding: String,
    pub model_id: String,
    pub model_bytes: u64,
}

/// A file's size, shape and rates; every byte figure is read from the file, not estimated.
#[derive(Debug, Clone, Serialize)]
pub struct FileStats {
    pub file_bytes: u64,
    pub width: u32,
    pub height: u32,
    pub coded_width: u32,
    pub coded_height: u32,
    pub frame_rate: String,
    pub frame_rate_fps: f64,
    pub frame_count: u32,
    pub intra_frames: usize,
    pub duration_s: f64,
    pub color: String,
    /// The built-in quality level the file was coded at, 0 if none (`Header::level`).
    pub level: u8,
    /// The coding tools packets may use (several when rate control switches between them).
    pub tools: Vec<ToolStats>,
    /// Payload bytes: the coded latents.
    pub latent_bytes: u64,
    /// Everything else: header, packet heads, index, footer.
    pub container_bytes: u64,
    pub bytes_per_frame_mean: f64,
    pub bytes_per_frame_min: u64,
    pub bytes_per_frame_max: u64,
    pub bitrate_kbps: f64,
    pub bits_per_pixel: f64,
    /// Frames whose picture the learned synthesis renders (every frame of a learned tool,
    /// and the frames of a learned + detail tool whose payload has a base layer).
    pub learned_frames: u64,
    /// Predicted frames made by moving the previous picture block by block.
    pub motion_frames: u64,
    /// Payload bytes by layer ([`LayerBytes`]).
    pub layer_bytes: LayerBytes,
}

/// Payload bytes by what they code: the learned latent, the block-transform detail layer,
/// and the other coders (PCA, pixel).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct LayerBytes {
    pub learned: u64,
    pub detail: u64,
    pub other: u64,
}

/// What one packet's payload holds, by layer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketLayers {
    pub bytes: LayerBytes,
    /// Whether the learned synthesis renders this frame's picture.
    pub renders_learned: bool,
    /// Whether the frame is the previous picture moved block by block (plus its layer).
    pub moves_previous: bool,
}

impl FileStats {
    /// The statistics of an opened file of `file_bytes` bytes.
    pub fn of<R: Read + Seek>(reader: &SeekableReader<R>, file_bytes: u64) -> Self {
        let h = reader.header();
        let payloads: Vec<u64> = reader
            .index()
            .iter()
            .map(|e| payload_len_of(h.version, e.pts, u64::from(e.size)).unwrap_or(0))
            .collect();
        let latent_bytes: u64 = payloads.iter().sum();
        let n = payloads.len().max(1) as f64;
        Self {
            file_bytes,
            width: h.width,
            height: h.height,
            coded_width: h.coded_width,
            coded_height: h.coded_height,
            frame_rate: h.frame_rate.to_string(),
            frame_rate_fps: h.frame_rate.as_f64(),
            frame_count: h.frame_count,
            intra_frames: reader
                .index()
                .iter()
                .filter(|e| e.frame_type == FrameType::Intra)
                .count(),
            duration_s: h.duration_s(),
            color: format!("{:?}", h.color),
            level: h.level,
            tools: h
                .tools
                .iter()
                .map(|t| ToolStats {
                    coding: format!("{:?}", t.coding),
                    model_id: t.model_id.hex(),
                    model_bytes: t.model_bytes,
                })
                .collect(),
            latent_bytes,
            container_bytes: file_bytes - latent_bytes,
            bytes_per_frame_mean: latent_bytes as f64 / n,
            bytes_per_frame_min: payloads.iter().copied().min().unwrap_or(0),
            bytes_per_frame_max: payloads.iter().copied().max().unwrap_or(0),
            bitrate_kbps: file_bytes as f64 * 8.0 / h.duration_s().max(1e-9) / 1000.0,
            bits_per_pixel: file_bytes as f64 * 8.0
                / (n * f64::from(h.width) * f64::from(h.height)),
            learned_frames: 0,
            motion_frames: 0,
            layer_bytes: LayerBytes::default(),
        }
    }

    /// Adds one packet's layers (the index alone does not say which bytes are whose; the
    /// coder that wrote the payload does, see `coders::packet_layers`).
    pub fn add_packet(&mut self, layers: PacketLayers) {
        self.learned_frames += u64::from(layers.renders_learned);
        self.motion_frames += u64::from(layers.moves_previous);
        self.layer_bytes.learned += layers.bytes.learned;
        self.layer_bytes.detail += layers.bytes.detail;
        self.layer_bytes.other += layers.bytes.other;
    }
}
