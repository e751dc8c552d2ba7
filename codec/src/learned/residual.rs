//! The learned residual of a motion-compensated frame.
//!
//! A predicted frame starts as the previous picture moved block by block (the detail layer's
//! motion field); what that prediction misses is coded by the intra model's own transforms,
//! as DVC and scale-space flow code it with an autoencoder. The residual is analysed as a
//! picture offset by what the all-zero latent renders, so a latent of zeros stands for
//! "nothing to add": the decoder adds `synthesis(ŷ) − synthesis(0)`, and skips the synthesis
//! when ŷ is all zero, which is exact, not an approximation.
//!
//! Each residual payload is an intra payload of the learned coder (side latent, step byte,
//! latent), so the encoder picks its latent step frame by frame and parsing stays the intra
//! frames' exact integer arithmetic.

use std::sync::{Arc, OnceLock};

use super::conv::FeatureMap;
use super::{LatentStep, LearnedCoder, LearnedModel};
use crate::coders::{CoderError, FrameCoder, LatentFrame, ResidualCoding};
use crate::container::FrameType;
use crate::entropy::StreamEnd;
use crate::RgbFrame;

/// Codes and renders the residuals of frames of one size.
pub struct ResidualCoder {
    model: Arc<LearnedModel>,
    coder: LearnedCoder,
    /// What the all-zero latent renders (frame units, planar), made on first use: a decoder
    /// builds this coder for every stream of the levels, most of which carry no residual,
    /// and the synthesis is its costliest start-up step (a quarter of a second in a browser).
    zero: OnceLock<FeatureMap<f32>>,
    /// The step the encoder's rates are taken around (the intra frames').
    step: LatentStep,
    /// The residual [`ResidualCoding::prepare`] analysed.
    prepared: Option<FeatureMap<f32>>,
}

/// The latent steps the encoder tries for one residual, as offsets of [`LatentStep`]'s index
/// from the intra frames' step: the same, √2 and 2 times coarser.
const STEP_OFFSETS: [u8; 3] = [0, 11, 22];

/// A residual the encoder coded: its payload and the latent the decoder will parse from it.
pub struct CodedResidual {
    pub payload: Vec<u8>,
    pub latent: LatentFrame,
}

impl ResidualCoder {
    /// A coder for `width`×`height` frames (multiples of the model's downsampling) whose
    /// latent steps are taken around `step`.
    pub fn new(model: Arc<LearnedModel>, width: u32, height: u32, step: LatentStep) -> Self {
        Self {
            coder: LearnedCoder::new(model.clone(), width, height),
            model,
            zero: OnceLock::new(),
            step,
            prepared: None,
        }
    }

    /// What the all-zero latent renders.
    fn zero(&self) -> &FeatureMap<f32> {
        self.zero.get_or_init(|| {
            let shape = self.coder.latent_shape();
            self.model
                .synthesize_map(FeatureMap::zeros(shape.channels, shape.height, shape.width))
        })
    }

    /// The latent of what `prediction` misses of `frame`, unrounded: analysed once, then
    /// coded at as many steps as the encoder tries ([`Self::encode`]).
    pub fn analyze(&self, frame: &RgbFrame, prediction: &RgbFrame) -> FeatureMap<f32> {
        let mut input = self.zero().clone();
        let plane = input.height * input.width;
        for (i, (f, p)) in frame
            .data
            .chunks_exact(3)
            .zip(prediction.data.chunks_exact(3))
            .enumerate()
        {
            for c in 0..3 {
                input.data[c * plane + i] += (f32::from(f[c]) - f32::from(p[c])) / 255.0;
            }
        }
        self.model.analyze_map(input)
    }

    /// Codes the analysed residual `y` with the latent quantized at `step`.
    pub fn encode_at(
        &mut self,
        y: &FeatureMap<f32>,
        step: LatentStep,
    ) -> Result<CodedResidual, CoderError> {
        self.coder.set_latent_step(step);
        let coded = self.coder.encode_analyzed(y, FrameType::Intra)?;
        let values = self
            .coder
            .last_latent()
            .expect("the coder just encoded")
            .to_vec();
        Ok(CodedResidual {
            payload: coded.payload,
            latent: LatentFrame {
                values,
                scale: self.coder.latent_step().value(),
            },
        })
    }
}

impl ResidualCoding for ResidualCoder {
    fn prepare(&mut self, frame: &RgbFrame, prediction: &RgbFrame) {
        self.prepared = Some(self.analyze(frame, prediction));
    }

    fn rates(&self) -> usize {
        STEP_OFFSETS.len()
    }

    fn encode(&mut self, rate: usize) -> Result<(Vec<u8>, LatentFrame), CoderError> {
        let y = self
            .prepared
            .take()
            .ok_or_else(|| CoderError::Payload("residual coded before it was prepared".into()))?;
        let offset = STEP_OFFSETS[rate.min(STEP_OFFSETS.len() - 1)];
        let step = LatentStep::from_index(self.step.index().saturating_add(offset));
        let coded = self.encode_at(&y, step);
        self.prepared = Some(y);
        let coded = coded?;
        Ok((coded.payload, coded.latent))
    }

    fn parse(&mut self, payload: &[u8]) -> Result<LatentFrame, CoderError> {
        self.coder.parse(FrameType::Intra, payload)
    }

    fn read_streams_as(&mut self, end: StreamEnd) {
        self.coder.read_streams_as(end);
    }

    fn read_version(&mut self, version: u16) {
        self.coder.read_version(version);
    }

    /// Adds the residual `latent` renders to `frame` (rounded, clamped to bytes).
    fn add_to(&self, frame: &mut RgbFrame, latent: &LatentFrame) {
        if latent.values.iter().all(|&v| v == 0) {
            return;
        }
        let shape = self.coder.latent_shape();
        assert_eq!(
            latent.values.len(),
            shape.elements(),
            "residual latent size"
        );
        let rendered = self.model.synthesize_map(FeatureMap {
            channels: shape.channels,
            height: shape.height,
            width: shape.width,
            data: latent
                .values
                .iter()
                .map(|&v| v as f32 * latent.scale)
                .collect(),
        });
        let plane = rendered.height * rendered.width;
        let zero = self.zero();
        for (i, px) in frame.data.chunks_exact_mut(3).enumerate() {
            for (c, v) in px.iter_mut().enumerate() {
                let added = (rendered.data[c * plane + i] - zero.data[c * plane + i]) * 255.0;
                *v = (f32::from(*v) + added).round().clamp(0.0, 255.0) as u8;
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::coders::{BasePolicy, DetailedCoder};
    use crate::learned::coder::tests::{random_model_of, test_frame, SMALL_SHALLOW};

    /// Each rate parses to exactly the latent the encoder kept, at a step that grows with the
    /// rate's number, and an all-zero latent adds nothing.
    #[test]
    fn residuals_parse_to_the_encoders_latent_and_zero_adds_nothing() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (64, 48);
        let step = LatentStep::from_index(120);
        let mut enc = ResidualCoder::new(model.clone(), w, h, step);
        let mut dec = ResidualCoder::new(model, w, h, step);
        let (frame, prediction) = (test_frame(w, h, 3), test_frame(w, h, 0));
        enc.prepare(&frame, &prediction);
        let mut scales = Vec::new();
        for rate in 0..enc.rates() {
            let (payload, latent) = enc.encode(rate).unwrap();
            assert_eq!(dec.parse(&payload).unwrap(), latent, "rate {rate}");
            assert_eq!(latent.values.len(), dec.coder.latent_shape().elements());
            scales.push(latent.scale);
        }
        assert_eq!(scales[0], step.value());
        assert!(scales.windows(2).all(|s| s[1] > s[0]), "{scales:?}");
        let mut shown = prediction.clone();
        let zero = LatentFrame {
            values: vec![0; dec.coder.latent_shape().elements()],
            scale: 2.0,
        };
        dec.add_to(&mut shown, &zero);
        assert_eq!(shown, prediction);
    }

    /// A learned base with a learned residual under the detail layer, as the levels code.
    pub(crate) fn detailed(
        model: &Arc<LearnedModel>,
        w: u32,
        h: u32,
        detail_step: f32,
    ) -> DetailedCoder {
        let step = LatentStep::from_index(150);
        let base = || -> Box<dyn FrameCoder> {
            Box::new(LearnedCoder::new(model.clone(), w, h).with_latent_step(step))
        };
        DetailedCoder::new(base(), base(), detail_step, w, h)
            .with_policy(BasePolicy::Learned)
            .with_residual(Box::new(ResidualCoder::new(model.clone(), w, h, step)))
    }

    /// A picture with detail at every scale, moving by `t` pixels a frame, with a brightening
    /// patch that motion alone cannot predict.
    pub(crate) fn scene(w: u32, h: u32, t: u32) -> RgbFrame {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w + 3 * t, i / w);
                let wave =
                    (((x as f32) * 0.3).sin() * 60.0 + ((y as f32) * 0.2).cos() * 40.0) as i32;
                let patch = if (20..44).contains(&(i % w)) && (10..34).contains(&y) {
                    25 * t as i32
                } else {
                    0
                };
                let v = |k: i32| (120 + wave / k + patch).clamp(0, 255) as u8;
                [v(1), v(2), ((x * 7 + y * 3) % 200) as u8]
            })
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    /// Under the learned policy every intra frame carries the learned picture and predicted
    /// frames move it; with a learned residual in each (forced here: the intra model's
    /// residuals rarely pay, see the policy), the residual renders what motion missed and the
    /// decoder shows exactly the picture the encoder predicts the next frame from.
    #[cfg(feature = "builtin-models")]
    #[test]
    fn moved_frames_with_a_learned_residual_decode_exactly() {
        let model = crate::registry::builtin::levels_model().unwrap();
        let (w, h) = (96, 64);
        for detail_step in [4.0, 40.0] {
            let mut enc = detailed(&model, w, h, detail_step).always_add_residual();
            let mut dec = detailed(&model, w, h, detail_step);
            for t in 0..5u32 {
                let frame_type = match t {
                    0 => FrameType::Intra,
                    _ => FrameType::Predicted,
                };
                let coded = enc.encode(&scene(w, h, t), frame_type).unwrap();
                assert_eq!(coded.frame_type, frame_type);
                let (base, detail) = DetailedCoder::split(&coded.payload).unwrap();
                assert_eq!(DetailedCoder::moves_previous(detail), t > 0, "frame {t}");
                assert!(!base.is_empty(), "frame {t} has no learned layer");
                let latent = dec.parse(frame_type, &coded.payload).unwrap();
                if t > 0 {
                    // The residual's latent leads the moved frame's values.
                    let (cols, rows) = (w.div_ceil(16) as usize, h.div_ceil(16) as usize);
                    let moved = 2 * cols * rows
                        + 3 * 64 * (w * h / 64) as usize
                        + (w * h / 64) as usize
                        + 2;
                    assert!(latent.values.len() > moved, "frame {t}: no residual latent");
                }
                let shown = dec.synthesize(&latent);
                assert_eq!(Some(&shown), enc.shown(), "step {detail_step}, frame {t}");
            }
        }
    }

    /// The same with a model of random weights, whose residuals rarely pay: whatever the
    /// encoder chooses, the decoder follows it exactly.
    #[test]
    fn decoders_follow_the_encoder_whatever_it_chooses() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (64, 48);
        let mut enc = detailed(&model, w, h, 12.0);
        let mut dec = detailed(&model, w, h, 12.0);
        for t in 0..4u32 {
            let frame_type = match t {
                0 => FrameType::Intra,
                _ => FrameType::Predicted,
            };
            let coded = enc.encode(&test_frame(w, h, 2 * t), frame_type).unwrap();
            let shown = dec.decode(frame_type, &coded.payload).unwrap();
            assert_eq!(Some(&shown), enc.shown(), "frame {t}");
        }
    }
}
