//! Decode throughput with the synthesis on a burn device (`aetrain bench-decode`), for the GPU
//! path: the entropy decoding stays the codec's own, on the CPU and bit-exact; only the
//! synthesis (the latent to pixels) moves to the device, and its pixels are compared with the
//! codec's CPU synthesis of the same latents.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;
use std::time::Instant;

use aecodec::coders::LatentFrame;
use aecodec::container::{ContainerError, ContainerReader};
use aecodec::learned::{LatentShape, LearnedModel};
use aecodec::pipeline::FrameDecoder;
use aecodec::registry::{Model, ModelStore};
use aecodec::RgbFrame;
use burn::tensor::{Device, Tensor, TensorData};
use serde::Serialize;

use crate::device::TrainDevice;
use crate::model::LearnedNet;

/// Why the bench could not run.
#[derive(Debug, thiserror::Error)]
pub enum DecodeBenchError {
    #[error("reading the file")]
    Io(#[from] std::io::Error),
    #[error("reading the container")]
    Container(#[from] ContainerError),
    #[error("decoding")]
    Coder(#[from] aecodec::coders::CoderError),
    #[error("loading the model")]
    Model(#[from] aecodec::model_file::ModelError),
    #[error("the stream's model {0} is not a learned model that was given or cached")]
    NoLearnedModel(String),
    #[error("the stream switches between {0} coding tools; this benchmark takes a stream of one learned model")]
    SeveralTools(usize),
    #[error(transparent)]
    Device(#[from] crate::device::DeviceError),
}

/// What `aetrain bench-decode` measured. Rates are frames per second of the time spent in that
/// stage over all frames; the device figures include copying the latent in and the pixels out.
#[derive(Debug, Clone, Serialize)]
pub struct DecodeBenchReport {
    pub file: String,
    pub width: u32,
    pub height: u32,
    pub frames: u64,
    pub device: String,
    /// Entropy decoding on the CPU (the codec's own parser).
    pub entropy_fps: f64,
    /// The codec's CPU synthesis, on the first `compared_frames` frames.
    pub cpu_synthesis_fps: f64,
    /// Synthesis on the device, after `warmup` frames not counted.
    pub device_synthesis_fps: f64,
    pub warmup: usize,
    /// Frames whose device pixels were compared with the CPU decoder's.
    pub compared_frames: usize,
    /// The largest difference of one RGB sample between the two, in code values.
    pub max_pixel_diff: u8,
    /// The share of samples that differ at all.
    pub differing_samples: f64,
}

/// Decodes `path` (a learned stream) with the synthesis on `device`; compares the first
/// `compare` frames with the CPU decoder.
pub fn bench_decode(
    path: &Path,
    models: &ModelStore,
    device: TrainDevice,
    compare: usize,
) -> Result<DecodeBenchReport, DecodeBenchError> {
    let mut reader = ContainerReader::new(BufReader::new(File::open(path)?))?;
    let header = reader.header().clone();
    // One device synthesis is set up, so the stream must use one learned model throughout.
    let tool = match header.tools.as_slice() {
        [tool] => tool,
        _ => return Err(DecodeBenchError::SeveralTools(header.tools.len())),
    };
    let model = match models.find(&tool.model_id)? {
        Some(Model::Learned(m)) => m,
        _ => return Err(DecodeBenchError::NoLearnedModel(tool.model_id.hex())),
    };
    let mut decoder = FrameDecoder::new(&header, models)?;
    let mut latents = Vec::new();
    let started = Instant::now();
    while let Some(packet) = reader.next_packet()? {
        latents.push(decoder.parse(&packet)?);
    }
    let entropy_s = started.elapsed().as_secs_f64();

    let compared = compare.min(latents.len());
    let started = Instant::now();
    let cpu: Vec<RgbFrame> = latents[..compared]
        .iter()
        .map(|l| decoder.synthesize(l))
        .collect();
    let cpu_s = started.elapsed().as_secs_f64();

    let burn_device = device.burn()?;
    let synthesis = DeviceSynthesis::new(&model, &header, &burn_device);
    let warmup = 2.min(latents.len());
    for latent in &latents[..warmup] {
        synthesis.frame(&latent.latent);
    }
    let started = Instant::now();
    let mut on_device = Vec::with_capacity(compared);
    for (i, latent) in latents.iter().enumerate() {
        let frame = synthesis.frame(&latent.latent);
        if i < compared {
            on_device.push(frame);
        }
    }
    let device_s = started.elapsed().as_secs_f64();

    let (mut max_diff, mut differing, mut samples) = (0u8, 0u64, 0u64);
    for (a, b) in cpu.iter().zip(&on_device) {
        for (x, y) in a.data.iter().zip(&b.data) {
            let d = x.abs_diff(*y);
            max_diff = max_diff.max(d);
            differing += u64::from(d > 0);
        }
        samples += a.data.len() as u64;
    }
    let n = latents.len() as f64;
    Ok(DecodeBenchReport {
        file: path.display().to_string(),
        width: header.width,
        height: header.height,
        frames: latents.len() as u64,
        device: device.to_string(),
        entropy_fps: n / entropy_s.max(1e-9),
        cpu_synthesis_fps: compared as f64 / cpu_s.max(1e-9),
        device_synthesis_fps: n / device_s.max(1e-9),
        warmup,
        compared_frames: compared,
        max_pixel_diff: max_diff,
        differing_samples: differing as f64 / samples.max(1) as f64,
    })
}

/// The model's synthesis as a burn network on one device.
struct DeviceSynthesis {
    net: LearnedNet,
    device: Device,
    /// The latent, how many pixels one of its elements spans, and the display size the coded
    /// frame is cut to.
    latent: LatentShape,
    stride: usize,
    display: (u32, u32),
}

impl DeviceSynthesis {
    fn new(model: &LearnedModel, header: &aecodec::container::Header, device: &Device) -> Self {
        let arch = &model.info.arch;
        let stride = header.tools[0].coding.stride();
        let latent = LatentShape {
            channels: usize::from(arch.latent_channels),
            height: (header.coded_height / stride) as usize,
            width: (header.coded_width / stride) as usize,
        };
        Self {
            net: LearnedNet::from_weights(arch, &model.weights, device),
            device: device.clone(),
            latent,
            stride: stride as usize,
            display: (header.width, header.height),
        }
    }

    /// One frame: the latent in, the synthesis, pixels rounded as the codec rounds them, out.
    fn frame(&self, latent: &LatentFrame) -> RgbFrame {
        let LatentShape {
            channels: c,
            height: h,
            width: w,
        } = self.latent;
        let values: Vec<f32> = latent.values.iter().map(|&v| v as f32).collect();
        let y = Tensor::<4>::from_data(TensorData::new(values, [1, c, h, w]), &self.device);
        let planes: Vec<f32> = self
            .net
            .synthesize(y)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("f32 pixels");
        let map = aecodec::learned::conv::FeatureMap {
            channels: 3,
            height: self.stride * h,
            width: self.stride * w,
            data: planes,
        };
        aecodec::learned::map_to_frame(&map).cropped(self.display.0, self.display.1)
    }
}
