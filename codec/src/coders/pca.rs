//! Block PCA: the linear autoencoder, fitted in closed form. The honest baseline for what a
//! nonlinear, learned transform buys.
//!
//! A frame is cut into `block`×`block` RGB patches (vectors of D = 3·block² samples,
//! row-major, R G B interleaved). Each patch is centred by the mean patch and projected on the
//! first `components` principal directions; the coefficients are uniformly quantized with
//! `step` and coded with the scale bank: components are grouped by rank (1, 2, 4, 8, ...) and
//! each group of a frame gets one bank index, written before the ANS words.
//!
//! Payload: `group index bytes (one per group)` then the ANS words.

use std::sync::Arc;

use super::{CoderError, EncodedFrame, FrameCoder, LatentFrame};
use crate::container::FrameType;
use crate::entropy::{self, ScaleBank, StreamEnd, SymbolDecoder};
use crate::model_file::{
    write_model_bytes, ModelError, ModelFile, ModelId, NamedTensor, TrainingInfo,
};
use crate::RgbFrame;

/// A fitted block PCA.
pub struct PcaModel {
    pub block: u8,
    /// Number of principal directions stored.
    pub components: u16,
    /// Mean patch, D values.
    pub mean: Vec<f32>,
    /// Principal directions as rows, `components` × D, strongest first.
    pub basis: Vec<f32>,
    pub training: TrainingInfo,
    /// The model file's id.
    pub id: ModelId,
    pub file_bytes: u64,
}

/// A PCA model's configuration in its file (beside the kind and format version).
#[derive(serde::Serialize, serde::Deserialize)]
struct PcaConfig {
    block: u8,
    components: u16,
    training: TrainingInfo,
}

/// Sample count of one patch.
pub fn patch_dims(block: u8) -> usize {
    3 * usize::from(block) * usize::from(block)
}

/// Group of component `i`: 0 for the first, 1 for the next two, 2 for the next four...
fn group_of(i: usize) -> usize {
    (usize::BITS - (i + 1).leading_zeros() - 1) as usize
}

impl PcaModel {
    /// The `kind` of PCA model files.
    pub const KIND: &'static str = "pca";

    /// Fits the PCA of `patches` (each `patch_dims(block)` long, values 0..=255) by an
    /// eigendecomposition of their covariance, keeping every component.
    pub fn fit(block: u8, patches: &[f32], training: TrainingInfo) -> Self {
        let d = patch_dims(block);
        let n = patches.len() / d;
        assert!(n > 1, "need at least two patches");
        let mut mean = vec![0f64; d];
        for p in patches.chunks_exact(d) {
            for (m, &v) in mean.iter_mut().zip(p) {
                *m += f64::from(v);
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        // Covariance = (X - mean)^T (X - mean) / n, accumulated in chunks with a GEMM.
        let mut cov = vec![0f64; d * d];
        let chunk = 4096;
        let mut centred = vec![0f64; chunk * d];
        for rows in patches.chunks(chunk * d) {
            let r = rows.len() / d;
            for (dst, (i, &v)) in centred.iter_mut().zip(rows.iter().enumerate()) {
                *dst = f64::from(v) - mean[i % d];
            }
            // cov += C^T C where C is r × d, row-major.
            unsafe {
                matrixmultiply::dgemm(
                    d,
                    r,
                    d,
                    1.0,
                    centred.as_ptr(),
                    1,
                    d as isize,
                    centred.as_ptr(),
                    d as isize,
                    1,
                    1.0,
                    cov.as_mut_ptr(),
                    d as isize,
                    1,
                );
            }
        }
        cov.iter_mut().for_each(|c| *c /= n as f64);
        let eig = nalgebra::SymmetricEigen::new(nalgebra::DMatrix::from_row_slice(d, d, &cov));
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut basis = Vec::with_capacity(d * d);
        for &k in &order {
            basis.extend(eig.eigenvectors.column(k).iter().map(|&v| v as f32));
        }
        Self {
            block,
            components: d as u16,
            mean: mean.iter().map(|&m| m as f32).collect(),
            basis,
            training,
            id: ModelId::default(),
            file_bytes: 0,
        }
        .with_identity()
    }

    /// Sets the id and size from the model file this model serializes to.
    pub fn with_identity(mut self) -> Self {
        let bytes = self.to_bytes();
        self.id = ModelId::of_bytes(&bytes);
        self.file_bytes = bytes.len() as u64;
        self
    }

    /// The model file.
    pub fn to_bytes(&self) -> Vec<u8> {
        let d = patch_dims(self.block);
        let config = PcaConfig {
            block: self.block,
            components: self.components,
            training: self.training.clone(),
        };
        write_model_bytes(
            Self::KIND,
            &config,
            &[
                NamedTensor {
                    name: "mean",
                    shape: vec![d],
                    values: &self.mean,
                },
                NamedTensor {
                    name: "basis",
                    shape: vec![usize::from(self.components), d],
                    values: &self.basis,
                },
            ],
        )
    }

    pub(crate) fn from_file(file: &ModelFile<'_>) -> Result<Self, ModelError> {
        if file.kind() != Self::KIND {
            return Err(ModelError::BadConfig("not a PCA model".into()));
        }
        let PcaConfig {
            block,
            components,
            training,
        } = &file.config()?;
        if !matches!(block, 4 | 8 | 16 | 32) {
            return Err(ModelError::BadConfig(format!(
                "PCA block {block} is not 4, 8, 16 or 32"
            )));
        }
        let d = patch_dims(*block);
        if *components == 0 || usize::from(*components) > d {
            return Err(ModelError::BadConfig(format!(
                "{components} components of {d}-sample patches"
            )));
        }
        Ok(Self {
            block: *block,
            components: *components,
            mean: file.tensor("mean", &[d])?,
            basis: file.tensor("basis", &[usize::from(*components), d])?,
            training: training.clone(),
            id: file.id,
            file_bytes: file.file_bytes,
        })
    }
}

/// The finest quantizer step coded: a coefficient is at most 255·√(3·32²) ≈ 14,130 in
/// magnitude, so at this step every quantized value stays far inside the coder's range (no
/// clamping), and 8-bit pixels gain nothing from a finer one.
pub const MIN_STEP: f32 = 0.01;
/// The coarsest step: beyond it every coefficient of every block quantizes to zero.
pub const MAX_STEP: f32 = 100_000.0;

/// Codes frames with a [`PcaModel`].
pub struct PcaCoder {
    model: Arc<PcaModel>,
    components: usize,
    step: f32,
    width: u32,
    height: u32,
    /// Quantized coefficients of the last frame coded or decoded: what P-frames predict from.
    reference: Option<Vec<i32>>,
    stream_end: StreamEnd,
}

impl PcaCoder {
    /// `components` ≤ the model's; `width` and `height` multiples of the block size.
    pub fn new(model: Arc<PcaModel>, components: u16, step: f32, width: u32, height: u32) -> Self {
        let components = usize::from(components.min(model.components)).max(1);
        Self {
            model,
            components,
            step,
            width,
            height,
            reference: None,
            stream_end: StreamEnd::WRITTEN,
        }
    }

    fn blocks(&self) -> (usize, usize) {
        let b = u32::from(self.model.block);
        ((self.width / b) as usize, (self.height / b) as usize)
    }

    fn groups(&self) -> usize {
        group_of(self.components - 1) + 1
    }

    /// Patches of a frame, each centred by the mean: (blocks × D), block-raster order.
    fn centred_patches(&self, frame: &RgbFrame) -> Vec<f32> {
        let d = patch_dims(self.model.block);
        let mut out = patches(frame, self.model.block);
        for patch in out.chunks_exact_mut(d) {
            for (v, &m) in patch.iter_mut().zip(&self.model.mean) {
                *v -= m;
            }
        }
        out
    }
}

/// The whole `block`×`block` patches of a frame (edges that do not fill a block are left
/// out), in block-raster order, each `patch_dims(block)` values 0..=255.
pub fn patches(frame: &RgbFrame, block: u8) -> Vec<f32> {
    let b = usize::from(block);
    let d = patch_dims(block);
    let (bw, bh) = (frame.width as usize / b, frame.height as usize / b);
    let row = 3 * frame.width as usize;
    let mut out = vec![0f32; bw * bh * d];
    for (k, patch) in out.chunks_exact_mut(d).enumerate() {
        let (bx, by) = (k % bw, k / bw);
        for y in 0..b {
            let src = &frame.data[(by * b + y) * row + 3 * bx * b..][..3 * b];
            for (o, &v) in patch[3 * b * y..3 * b * (y + 1)].iter_mut().zip(src) {
                *o = f32::from(v);
            }
        }
    }
    out
}

impl PcaCoder {
    /// Quantized coefficients of a frame: blocks × components, block-raster order.
    fn quantize(&self, frame: &RgbFrame) -> Vec<i32> {
        let d = patch_dims(self.model.block);
        let k = self.components;
        let patches = self.centred_patches(frame);
        let n = patches.len() / d;
        // coeffs (n × k) = patches (n × d) · basis^T (d × k), scaled by 1/step
        let mut coeffs = vec![0f32; n * k];
        unsafe {
            matrixmultiply::sgemm(
                n,
                d,
                k,
                1.0 / self.step,
                patches.as_ptr(),
                d as isize,
                1,
                self.model.basis.as_ptr(),
                1,
                d as isize,
                0.0,
                coeffs.as_mut_ptr(),
                k as isize,
                1,
            );
        }
        coeffs
            .iter()
            .map(|&c| c.round().clamp(-1e9, 1e9) as i32)
            .collect()
    }

    /// Entropy-codes values (coefficients, or their change from the reference): one bank
    /// index per component group, the best of those near the group's mean magnitude.
    fn code_values(&self, values: &[i32]) -> Result<Vec<u8>, CoderError> {
        let k = self.components;
        let bank = ScaleBank::get();
        let mut indices = vec![0u8; self.groups()];
        for (g, index) in indices.iter_mut().enumerate() {
            let members: Vec<i32> = values
                .iter()
                .enumerate()
                .filter(|(i, _)| group_of(i % k) == g)
                .map(|(_, &v)| v)
                .collect();
            *index = bank.index_near_mean(&members);
        }
        let mut items = Vec::with_capacity(values.len());
        for (i, &v) in values.iter().enumerate() {
            bank.push_symbols(indices[group_of(i % k)], v, &mut items);
        }
        let mut payload = indices;
        let words = entropy::encode(items.into_iter())?;
        entropy::write_stream(&mut payload, &words, self.stream_end);
        Ok(payload)
    }

    /// Parses what [`code_values`](Self::code_values) wrote.
    fn parse_values(&self, payload: &[u8]) -> Result<Vec<i32>, CoderError> {
        let (indices, words) = entropy::split_table_indices(payload, self.groups())?;
        let (bw, bh) = self.blocks();
        let k = self.components;
        let bank = ScaleBank::get();
        let mut decoder = SymbolDecoder::new(words, self.stream_end)?;
        let mut values = vec![0i32; bw * bh * k];
        for (i, v) in values.iter_mut().enumerate() {
            *v = bank.decode(indices[group_of(i % k)], &mut decoder)?;
        }
        decoder.finish()?;
        Ok(values)
    }

    /// The frame that quantized coefficients describe.
    fn reconstruct(&self, q: &[i32]) -> RgbFrame {
        let d = patch_dims(self.model.block);
        let k = self.components;
        let (bw, bh) = self.blocks();
        let n = bw * bh;
        let coeffs: Vec<f32> = q.iter().map(|&v| v as f32 * self.step).collect();
        // patches (n × d) = coeffs (n × k) · basis (k × d)
        let mut patches = vec![0f32; n * d];
        unsafe {
            matrixmultiply::sgemm(
                n,
                k,
                d,
                1.0,
                coeffs.as_ptr(),
                k as isize,
                1,
                self.model.basis.as_ptr(),
                d as isize,
                1,
                0.0,
                patches.as_mut_ptr(),
                d as isize,
                1,
            );
        }
        let b = usize::from(self.model.block);
        let row = 3 * self.width as usize;
        let mut frame = RgbFrame::new(self.width, self.height);
        for (idx, patch) in patches.chunks_exact(d).enumerate() {
            let (bx, by) = (idx % bw, idx / bw);
            for y in 0..b {
                let dst = &mut frame.data[(by * b + y) * row + 3 * bx * b..][..3 * b];
                let src = &patch[3 * b * y..3 * b * (y + 1)];
                let mean = &self.model.mean[3 * b * y..3 * b * (y + 1)];
                for ((o, &v), &m) in dst.iter_mut().zip(src).zip(mean) {
                    *o = (v + m).round().clamp(0.0, 255.0) as u8;
                }
            }
        }
        frame
    }
}

impl FrameCoder for PcaCoder {
    fn supports_prediction(&self) -> bool {
        true
    }

    fn read_streams_as(&mut self, end: StreamEnd) {
        self.stream_end = end;
    }

    fn encode(
        &mut self,
        frame: &RgbFrame,
        frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError> {
        super::check_frame_size(frame, self.width, self.height)?;
        let q = self.quantize(frame);
        let payload = match (frame_type, &self.reference) {
            (FrameType::Intra, _) => self.code_values(&q)?,
            // A predicted frame codes the change of every quantized coefficient: integers on
            // both sides, so the decoder lands on exactly these coefficients (no drift), and
            // an unchanged block costs almost nothing.
            (FrameType::Predicted, Some(reference)) => {
                let change: Vec<i32> = q
                    .iter()
                    .zip(reference)
                    .map(|(&a, &b)| a.saturating_sub(b))
                    .collect();
                self.code_values(&change)?
            }
            (FrameType::Predicted, None) => return Err(CoderError::NoReference),
        };
        self.reference = Some(q);
        Ok(EncodedFrame {
            frame_type,
            payload,
        })
    }

    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError> {
        let values = self.parse_values(payload)?;
        let q = match frame_type {
            FrameType::Intra => values,
            FrameType::Predicted => {
                let reference = self.reference.as_ref().ok_or(CoderError::NoReference)?;
                super::add_changes(reference, &values, "coefficient")?
            }
        };
        self.reference = Some(q.clone());
        Ok(LatentFrame::plain(q))
    }

    fn synthesize(&mut self, latent: &LatentFrame) -> RgbFrame {
        let (bw, bh) = self.blocks();
        // The GEMM below reads exactly this many values.
        assert_eq!(
            latent.values.len(),
            bw * bh * self.components,
            "latent from another coder"
        );
        self.reconstruct(&latent.values)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synthetic_frame(w: u32, h: u32) -> RgbFrame {
        let data = (0..3 * w * h)
            .map(|i| {
                let (x, y, c) = ((i / 3) % w, (i / 3) / w, i % 3);
                (128.0 + 60.0 * ((x as f32 * 0.2 + c as f32).sin() * (y as f32 * 0.15).cos())) as u8
            })
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    fn patches_of(frame: &RgbFrame, block: u8) -> Vec<f32> {
        patches(frame, block)
    }

    #[test]
    fn fine_step_with_all_components_is_near_lossless_and_model_file_round_trips() {
        let frame = synthetic_frame(64, 48);
        let model = PcaModel::fit(8, &patches_of(&frame, 8), TrainingInfo::default());
        let bytes = model.to_bytes();
        let loaded = Arc::new(PcaModel::from_file(&ModelFile::parse(&bytes).unwrap()).unwrap());
        assert_eq!(loaded.id, model.id);
        assert_eq!(loaded.basis, model.basis);
        let mut coder = PcaCoder::new(loaded, 192, 0.25, 64, 48);
        let coded = coder.encode(&frame, FrameType::Intra).unwrap();
        let decoded = coder.decode(coded.frame_type, &coded.payload).unwrap();
        assert!(crate::metrics::psnr(&frame, &decoded) > 50.0);
        // Coarser steps cost fewer bytes.
        let coarse = PcaCoder::new(coder.model.clone(), 192, 16.0, 64, 48)
            .encode(&frame, FrameType::Intra)
            .unwrap();
        assert!(coarse.payload.len() < coded.payload.len() / 3);
    }

    #[test]
    fn predicted_frames_code_changes_exactly_and_need_their_reference() {
        let frame = synthetic_frame(64, 48);
        let model = Arc::new(PcaModel::fit(
            8,
            &patches_of(&frame, 8),
            TrainingInfo::default(),
        ));
        let mut moved = frame.clone();
        moved.data[..3 * 64 * 8]
            .iter_mut()
            .for_each(|v| *v = v.wrapping_add(40));
        let mut encoder = PcaCoder::new(model.clone(), 192, 4.0, 64, 48);
        let intra = encoder.encode(&frame, FrameType::Intra).unwrap();
        let still = encoder.encode(&frame, FrameType::Predicted).unwrap();
        let changed = encoder.encode(&moved, FrameType::Predicted).unwrap();
        assert!(
            still.payload.len() * 10 < intra.payload.len(),
            "{} vs {}",
            still.payload.len(),
            intra.payload.len()
        );
        let mut decoder = PcaCoder::new(model.clone(), 192, 4.0, 64, 48);
        let first = decoder.decode(FrameType::Intra, &intra.payload).unwrap();
        assert_eq!(
            decoder
                .decode(FrameType::Predicted, &still.payload)
                .unwrap(),
            first
        );
        // The predicted frame decodes to exactly what intra coding of it gives.
        let via_prediction = decoder
            .decode(FrameType::Predicted, &changed.payload)
            .unwrap();
        let mut alone = PcaCoder::new(model.clone(), 192, 4.0, 64, 48);
        let direct = alone.encode(&moved, FrameType::Intra).unwrap();
        assert_eq!(
            via_prediction,
            alone.decode(FrameType::Intra, &direct.payload).unwrap()
        );
        // Without the frame before, a predicted frame is an error, not garbage.
        let mut fresh = PcaCoder::new(model, 192, 4.0, 64, 48);
        assert!(matches!(
            fresh.decode(FrameType::Predicted, &still.payload),
            Err(CoderError::NoReference)
        ));
    }

    #[test]
    fn corrupt_payloads_are_errors() {
        let frame = synthetic_frame(32, 32);
        let model = Arc::new(PcaModel::fit(
            8,
            &patches_of(&frame, 8),
            TrainingInfo::default(),
        ));
        let mut coder = PcaCoder::new(model, 20, 2.0, 32, 32);
        let coded = coder.encode(&frame, FrameType::Intra).unwrap();
        assert!(coder.decode(FrameType::Intra, &coded.payload[..2]).is_err());
        let mut bad = coded.payload.clone();
        bad[0] = 200;
        assert!(coder.decode(FrameType::Intra, &bad).is_err());
    }
}
