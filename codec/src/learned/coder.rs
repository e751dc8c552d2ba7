//! The learned frame coder: the frame state that ties the latent codecs together. Intra
//! frames go through the hyperprior latent codec ([`super::intra`]); predicted frames code
//! the change of the rounded latent from the previous frame's, moved by a motion field where
//! that is cheaper ([`super::motion`]), under context-chosen tables ([`super::predicted`]).
//! The decoder rebuilds exactly the integer latent the encoder had, so nothing drifts.

use std::sync::Arc;

use super::coded::{CodedLatent, EntropyCost};
use super::context::ChannelContext;
use super::conv::FeatureMap;
use super::intra::HyperpriorCodec;
use super::motion::MotionField;
use super::predicted::{self, PredictionContext, ReferenceFrame, RefineWeights};
use super::refine::{self, RefineParams};
use super::{round_element, LatentShape, LatentStep, LearnedModel};
use crate::coders::{
    check_frame_size, round_near, CoderError, EncodedFrame, FrameCoder, LatentFrame,
};
use crate::container::FrameType;
use crate::entropy::{self, ScaleBank, StreamEnd};
use crate::RgbFrame;

/// Codes frames of one size with a learned model.
pub struct LearnedCoder {
    model: Arc<LearnedModel>,
    width: u32,
    height: u32,
    latent: LatentShape,
    side: LatentShape,
    /// The last frame coded or parsed (for predicted frames).
    reference: Option<ReferenceFrame>,
    /// The entropy cost of the last frame encoded.
    last_cost: Option<EntropyCost>,
    stream_end: StreamEnd,
    /// The latent step intra frames are coded at (encoder), or the one the last intra
    /// frame parsed carried (decoder): its group's predicted frames share it.
    step: LatentStep,
    /// Whether intra payloads carry a channel context ([`super::context`]; this build
    /// writes one, files before version 7 have none).
    context: bool,
    /// Whether intra payloads with a channel context carry an activity context after it
    /// ([`super::activity`]; files before version 14 have none).
    activity: bool,
    /// The step intra frames are coded at when the rate asked for is 0 ([`INTRA_RATES`]).
    own_step: LatentStep,
    /// The last frame analysed and its latent: a frame coded at several rates is analysed
    /// once.
    analysed: Option<(RgbFrame, FeatureMap<f32>)>,
    /// Gradient steps of latent refinement per intra frame ([`super::refine`]; 0: none).
    effort: usize,
}

/// The rates of a model with a latent step that [`FrameCoder::set_intra_rate`] chooses
/// from, as offsets of [`LatentStep`]'s index from the coder's own step: the step itself, √2
/// times finer, √2 and 2 times coarser. At the levels (step 32) the coarsest took 11.5 % off
/// game art and 1–3 % off screen text and drawn UI (two frames of each of seven training
/// sources, against the first three alone), and changed no camera video.
const INTRA_RATES: [i16; 4] = [0, -11, 11, 22];

impl LearnedCoder {
    /// A coder for frames of `width`×`height` (multiples of the architecture's
    /// [`downsampling`](super::LearnedArch::downsampling)).
    pub fn new(model: Arc<LearnedModel>, width: u32, height: u32) -> Self {
        let arch = model.info.arch;
        let factor = arch.downsampling();
        let (lh, lw) = ((height / factor) as usize, (width / factor) as usize);
        let ha = arch.hyper_analysis();
        let side_size = |n: usize| ha.iter().fold(n, |s, l| l.conv_output_size(s));
        Self {
            latent: LatentShape {
                channels: usize::from(arch.latent_channels),
                height: lh,
                width: lw,
            },
            side: LatentShape {
                channels: usize::from(arch.side_channels),
                height: side_size(lh),
                width: side_size(lw),
            },
            model,
            width,
            height,
            reference: None,
            last_cost: None,
            stream_end: StreamEnd::WRITTEN,
            step: LatentStep::UNIT,
            context: true,
            activity: true,
            own_step: LatentStep::UNIT,
            analysed: None,
            effort: 0,
        }
    }

    /// Codes with the latent quantized at `step` (a model of the shallow kind; others have
    /// one step, and this changes nothing for them).
    pub fn with_latent_step(mut self, step: LatentStep) -> Self {
        if self.model.has_latent_step() {
            self.step = step;
            self.own_step = step;
        }
        self
    }

    /// Refines each intra frame's latent with `effort` gradient steps before coding it
    /// ([`super::refine`]; 0: none). Decoders are unaffected.
    pub fn with_effort(mut self, effort: u16) -> Self {
        self.effort = usize::from(effort);
        self
    }

    /// The latent step intra frames are coded at from now on (see [`Self::with_latent_step`]).
    pub fn set_latent_step(&mut self, step: LatentStep) {
        if self.model.has_latent_step() {
            self.step = step;
            self.own_step = step;
        }
    }

    /// The size of the coder's latent.
    pub fn latent_shape(&self) -> LatentShape {
        self.latent
    }

    /// The latent step of the coder's intra frames.
    pub fn latent_step(&self) -> LatentStep {
        self.step
    }

    /// The entropy coder's cost for the last frame this coder encoded (`None` before the first).
    pub fn last_entropy_cost(&self) -> Option<EntropyCost> {
        self.last_cost
    }

    /// The integer latent the last frame this coder encoded was coded with, which is what the
    /// decoder parses (`None` before the first).
    pub fn last_latent(&self) -> Option<&[i32]> {
        self.reference.as_ref().map(|r| r.latent.as_slice())
    }

    /// The intra frames' latent codec.
    fn intra(&self) -> HyperpriorCodec<'_> {
        HyperpriorCodec {
            model: &self.model,
            latent: self.latent,
            side: self.side,
            step: self.step,
            context: self.context,
            activity: self.activity,
            end: self.stream_end,
        }
    }

    /// Codes the frame whose unrounded latent is `exact` against `reference`, with or without
    /// motion compensation, whichever costs fewer bits.
    fn encode_predicted(
        &self,
        exact: &[f32],
        reference: &ReferenceFrame,
    ) -> Result<CodedLatent, CoderError> {
        let bank = ScaleBank::get();
        let code = |prediction: &[i32], motion: Option<&MotionField>| {
            let context = PredictionContext {
                prediction,
                previous: reference.tables.as_ref(),
                shape: self.latent,
            };
            let mut latent = round_near(exact, prediction, TEMPORAL_DEAD_ZONE);
            // The tables the dead zone's latent would get price each element's choice; the
            // tables are then chosen again for the refined latent.
            let first = context.choose_tables(&latent);
            let weights = RefineWeights {
                lambda: RATE_WEIGHT,
                max_keep: MAX_KEPT_ERROR,
            };
            context.refine(&mut latent, exact, &first, weights);
            let coded = context.encode_items(&latent, motion, bank);
            let bits = 8.0 * coded.leading.len() as f64
                + entropy::information_content(coded.items.iter().copied());
            (bits, coded, latent)
        };
        let mut best = code(&reference.latent, None);
        let field = MotionField::estimate(exact, &reference.latent, self.latent);
        if !field.is_zero() {
            let moved = code(&field.compensate(&reference.latent), Some(&field));
            if moved.0 < best.0 {
                best = moved;
            }
        }
        let (_, coded, latent) = best;
        let state = ReferenceFrame {
            latent,
            tables: Some(coded.choice),
        };
        CodedLatent::finish(coded.leading, coded.items, state, self.stream_end)
    }

    /// Codes a latent `y` computed elsewhere (by another backend, say): only its rounding and
    /// entropy coding happen here. `y` must have the coder's latent size.
    pub fn encode_analyzed(
        &mut self,
        y_map: &FeatureMap<f32>,
        frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError> {
        self.encode_latent(y_map, frame_type, None)
    }

    /// [`Self::encode_analyzed`], with the intra frame's latent refined against `frame`
    /// (the one `y_map` was analysed from) when the coder has an effort.
    fn encode_latent(
        &mut self,
        y_map: &FeatureMap<f32>,
        frame_type: FrameType,
        frame: Option<&RgbFrame>,
    ) -> Result<EncodedFrame, CoderError> {
        let LatentShape {
            channels: c,
            height: h,
            width: w,
        } = self.latent;
        if (y_map.channels, y_map.height, y_map.width) != (c, h, w) {
            return Err(CoderError::Payload(format!(
                "latent is {}x{}x{}, the coder expects {c}x{h}x{w}",
                y_map.channels, y_map.height, y_map.width
            )));
        }
        // The latent in units of the step (the hyperprior's side latent is the model's own,
        // from the latent as trained).
        let step = self.step.value();
        let scaled: std::borrow::Cow<'_, [f32]> = if step == 1.0 {
            y_map.data.as_slice().into()
        } else {
            y_map.data.iter().map(|&v| v / step).collect()
        };
        let (frame_type, coded) = match (frame_type, &self.reference) {
            (FrameType::Predicted, Some(reference)) => (
                FrameType::Predicted,
                self.encode_predicted(&scaled, reference)?,
            ),
            _ => {
                let z = round_latent(&self.model.hyper_analyze(y_map));
                let plain = self.intra().encode(&scaled, &z)?;
                let coded = match frame.filter(|_| self.effort > 0) {
                    Some(frame) => self.refined_if_cheaper(frame, &scaled, &z, plain)?,
                    None => plain,
                };
                (FrameType::Intra, coded)
            }
        };
        self.reference = Some(coded.reference);
        self.last_cost = Some(coded.cost);
        Ok(EncodedFrame {
            frame_type,
            payload: coded.payload,
        })
    }
}

impl LearnedCoder {
    /// The intra frame `plain` (coded from the analysis's latent `scaled`, in units of the
    /// step) or the same frame coded from that latent refined against `frame` under the
    /// tables the side latent `z` gives it (with `z`, or with the side latent of the refined
    /// latent: on `bikes` and `ukui-wallpapers`, 1 frame, effort 20, −0.9 % more), whichever
    /// costs less in real terms: the payload's
    /// bits plus [`refine::choice_weight`] times the squared error of the picture the decoder
    /// will show. The refinement descends a smooth stand-in for that cost; the rounding and
    /// the channel context after it can undo what it gained.
    fn refined_if_cheaper(
        &self,
        frame: &RgbFrame,
        scaled: &[f32],
        z: &[i32],
        plain: CodedLatent,
    ) -> Result<CodedLatent, CoderError> {
        let intra = self.intra();
        let step = intra.coded_step();
        let prior = intra.prior(z.to_vec(), step);
        let indices = &prior.tables;
        let params = RefineParams::for_model(self.effort, self.model.info.lambda, step.value());
        let mut u = self.latent.map(scaled.to_vec());
        // Priced as the plain frame's channel context codes it (which channels are predicted
        // from their neighbours, and their tables' shifts).
        let context = match intra.uses_context() {
            true => {
                let coded = prior.centred(&plain.reference.latent);
                ChannelContext::choose(&coded, indices, self.latent)
            }
            false => ChannelContext::plain(self.latent.channels),
        };
        let rate = refine::LatentRate::new(&prior, &context, self.latent);
        let target = super::frame_to_map(frame);
        if !refine::refine(&self.model, &target, &mut u, step.value(), &rate, params) {
            return Ok(plain);
        }
        // The side latent of the refined latent fits its tables to what the refinement
        // moved; the analysis's may still cost less. Both are tried.
        let y = self
            .latent
            .map(u.data.iter().map(|&v| v * step.value()).collect());
        let z_refined = round_latent(&self.model.hyper_analyze(&y));
        let candidates = [
            intra.encode(&u.data, z)?,
            intra.encode(&u.data, &z_refined)?,
        ];
        // The weight is per squared error in 0..=1 units; `squared_error` counts code values.
        let choice = refine::choice_weight(self.model.info.lambda, step.value()) / 255.0 / 255.0;
        let cost = |coded: &CodedLatent| {
            let latent = self.latent.map(coded.reference.latent.clone());
            let shown = self.model.synthesize(&latent, step.value());
            let (sse, _) = crate::metrics::squared_error(&shown, frame);
            8.0 * coded.payload.len() as f64 + choice * sse as f64
        };
        let mut best = (cost(&plain), plain);
        for coded in candidates {
            let c = cost(&coded);
            if c < best.0 {
                best = (c, coded);
            }
        }
        Ok(best.1)
    }
}

/// The encoder's first pass over a predicted frame: how far the latent may move from its
/// prediction before the change is coded. Plain rounding changes the value past 0.5; the small
/// back-and-forth changes between 0.5 and this (mostly noise) cost bits and buy little. The
/// error is measured from the unrounded latent of the frame itself, so it cannot accumulate
/// over a group of pictures (the second pass, [`RATE_WEIGHT`], keeps that). Chosen on `bikes`
/// and `carphone_pristine` (BD-rate of the predicted streams against plain rounding, 30 frames:
/// 0.55: −8.8 % / −9.8 %; 0.6: −10.6 % / −14.9 %; 0.7: −6.0 % / −15.6 %), checked on 20
/// frames of `motion` (−18.9 %) and `cockatoo` (−3.5 %).
pub const TEMPORAL_DEAD_ZONE: f32 = 0.6;

/// Squared latent error one bit is worth in the encoder's second pass over a predicted frame
/// (`predicted::refine`): with the first pass's tables, each element keeps its predicted
/// value or takes its rounded one, whichever costs less. Unlike the dead zone alone, this keeps
/// more where a change is dear (a narrow table: the scene is still around it) and less where
/// it is cheap. BD-rate of predicted against intra-only streams, 30 frames, dead zone alone →
/// with this pass at 0.04 / 0.08 / 0.15: `cockatoo` −36.9 → −37.2 / −40.1 / −42.2 %; `bikes`
/// −68.5 → −69.3 / −69.9 / −69.9 %; `carphone_pristine` −66.6 → −66.0 / −67.1 / −66.6 %.
/// 0.15 costs `cockatoo` 1.6 dB at q1 against intra only, 0.08 costs 1.0 dB. Over longer
/// runs (BD-rate of the predicted streams with this pass against without, 0.08 / 0.04):
/// `bikes`, 250 frames (5 GOPs), −1.6 / +0.3 %; `cockatoo`, 100 frames, −2.8 / −0.8 %.
pub const RATE_WEIGHT: f64 = 0.08;

/// The farthest the second pass may leave an element from its unrounded latent, which bounds
/// each predicted frame's error whatever its place in the GOP (0.8 and 1.0 gave the same
/// BD-rate on `cockatoo`).
pub const MAX_KEPT_ERROR: f32 = 0.8;

/// Rounds a float latent to integers, clamping absurd values.
fn round_latent(map: &FeatureMap<f32>) -> Vec<i32> {
    map.data.iter().map(|&v| round_element(v)).collect()
}

impl FrameCoder for LearnedCoder {
    fn supports_prediction(&self) -> bool {
        true
    }

    fn encode(
        &mut self,
        frame: &RgbFrame,
        frame_type: FrameType,
    ) -> Result<EncodedFrame, CoderError> {
        check_frame_size(frame, self.width, self.height)?;
        let (analysed, y_map) = match self.analysed.take() {
            Some((analysed, y_map)) if analysed.data == frame.data => (analysed, y_map),
            _ => (frame.clone(), self.model.analyze(frame)),
        };
        let coded = self.encode_latent(&y_map, frame_type, Some(frame));
        self.analysed = Some((analysed, y_map));
        coded
    }

    fn intra_rates(&self) -> usize {
        match self.model.has_latent_step() {
            true => INTRA_RATES.len(),
            false => 1,
        }
    }

    fn set_intra_rate(&mut self, rate: usize) {
        if let Some(&offset) = INTRA_RATES
            .get(rate)
            .filter(|_| self.model.has_latent_step())
        {
            let index = (i16::from(self.own_step.index()) + offset).clamp(0, 255) as u8;
            self.step = LatentStep::from_index(index);
        }
    }

    fn read_streams_as(&mut self, end: StreamEnd) {
        self.stream_end = end;
    }

    fn read_version(&mut self, version: u16) {
        self.context = version >= crate::container::FIRST_CONTEXT_VERSION;
        self.activity = version >= crate::container::FIRST_ACTIVITY_VERSION;
    }

    fn parse(&mut self, frame_type: FrameType, payload: &[u8]) -> Result<LatentFrame, CoderError> {
        let state = match frame_type {
            FrameType::Intra => {
                let (latent, step) = self.intra().parse(payload, self.stream_end)?;
                self.step = step;
                ReferenceFrame {
                    latent,
                    tables: None,
                }
            }
            FrameType::Predicted => {
                let reference = self.reference.as_ref().ok_or(CoderError::NoReference)?;
                predicted::parse(payload, reference, self.latent, self.stream_end)?
            }
        };
        debug_assert_eq!(state.latent.len(), self.latent.elements());
        let values = state.latent.clone();
        self.reference = Some(state);
        Ok(LatentFrame {
            values,
            scale: self.step.value(),
        })
    }

    fn synthesize(&mut self, latent: &LatentFrame) -> RgbFrame {
        self.model
            .synthesize(&self.latent.map(latent.values.clone()), latent.scale)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::learned::intra::{round_intra, INTRA_RATE_WEIGHT};
    use crate::learned::{new_info, LearnedArch, LearnedWeights};

    const SMALL: LearnedArch = LearnedArch {
        kind: crate::learned::ArchKind::PixelShuffle,
        analysis_channels: 8,
        latent_channels: 8,
        synthesis_channels: [8, 8, 8],
        hyper_channels: 8,
        side_channels: 4,
        means: false,
    };

    /// A small shallow-kind architecture.
    pub(crate) const SMALL_SHALLOW: LearnedArch = LearnedArch {
        kind: crate::learned::ArchKind::Shallow,
        analysis_channels: 16,
        latent_channels: 8,
        synthesis_channels: [24, 0, 0],
        hyper_channels: 8,
        side_channels: 4,
        means: false,
    };

    /// A model with deterministic pseudo-random weights (scaled so latents are a few units).
    fn random_model() -> Arc<LearnedModel> {
        random_model_of(SMALL)
    }

    pub(crate) fn random_model_of(arch: LearnedArch) -> Arc<LearnedModel> {
        let mut state = 99u64;
        let mut weights = LearnedWeights::default();
        for (name, shape) in LearnedWeights::expected_shapes(&arch) {
            let fan_in: usize = shape.iter().skip(1).product::<usize>().max(1);
            let gain = if name.starts_with("g_a") { 6.0 } else { 2.0 };
            let values = (0..shape.iter().product::<usize>())
                .map(|_| {
                    state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
                    let u = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                    u * gain / (fan_in as f32).sqrt()
                })
                .collect();
            weights.insert(name, values);
        }
        let info = new_info(arch, 0.01, 1);
        let bytes = LearnedModel::file_bytes_for(&info, &weights);
        Arc::new(LearnedModel::from_bytes(&bytes).unwrap())
    }

    /// One shallow model codes at every latent step: the step rides in the intra payload,
    /// its group's predicted frames keep it, a larger step spends fewer bits, and the decoder
    /// rebuilds `ŷ · step` from exactly the encoder's integers.
    #[test]
    fn a_shallow_model_codes_at_the_step_its_intra_frame_names() {
        let model = random_model_of(SMALL_SHALLOW);
        assert!(model.has_latent_step() && !random_model().has_latent_step());
        let (w, h) = (96, 80);
        let mut sizes = Vec::new();
        for index in [96u8, 128, 160] {
            let step = LatentStep::from_index(index);
            let mut enc = LearnedCoder::new(model.clone(), w, h).with_latent_step(step);
            let mut dec = LearnedCoder::new(model.clone(), w, h);
            let mut bytes = 0;
            for (i, frame_type) in [FrameType::Intra, FrameType::Predicted]
                .into_iter()
                .enumerate()
            {
                let frame = test_frame(w, h, i as u32 * 4);
                let coded = enc.encode(&frame, frame_type).unwrap();
                if frame_type == FrameType::Intra {
                    assert_eq!(coded.payload[0], index, "the step leads the intra payload");
                }
                bytes += coded.payload.len();
                let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
                assert_eq!(Some(latent.values.as_slice()), enc.last_latent());
                assert_eq!(latent.scale, step.value(), "frame {i}");
                // The synthesis reads the latent times the step.
                let y = FeatureMap {
                    channels: 8,
                    height: h as usize / 16,
                    width: w as usize / 16,
                    data: latent.values.clone(),
                };
                assert_eq!(dec.synthesize(&latent), model.synthesize(&y, step.value()));
            }
            sizes.push(bytes);
        }
        assert!(sizes[0] > sizes[1] && sizes[1] > sizes[2], "{sizes:?}");
        // A model without a step ignores one asked for, and its payload has no step byte.
        let plain = random_model();
        let mut a =
            LearnedCoder::new(plain.clone(), w, h).with_latent_step(LatentStep::from_index(160));
        let mut b = LearnedCoder::new(plain, w, h);
        let frame = test_frame(w, h, 0);
        assert_eq!(
            a.encode(&frame, FrameType::Intra).unwrap().payload,
            b.encode(&frame, FrameType::Intra).unwrap().payload
        );
    }

    /// Files before version 14 carry no activity context: a coder told so writes and reads
    /// intra payloads without it.
    #[test]
    fn intra_payloads_of_files_before_the_activity_context_have_none() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (96, 80);
        let frame = test_frame(w, h, 3);
        let old = crate::container::FIRST_ACTIVITY_VERSION - 1;
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let mut dec = LearnedCoder::new(model.clone(), w, h);
        enc.read_version(old);
        dec.read_version(old);
        let coded = enc.encode(&frame, FrameType::Intra).unwrap();
        let latent = dec.parse(FrameType::Intra, &coded.payload).unwrap();
        assert_eq!(Some(latent.values.as_slice()), enc.last_latent());
        let mut new = LearnedCoder::new(model.clone(), w, h);
        let with_activity = new.encode(&frame, FrameType::Intra).unwrap();
        assert_ne!(with_activity.payload, coded.payload);
        let latent = LearnedCoder::new(model, w, h)
            .parse(FrameType::Intra, &with_activity.payload)
            .unwrap();
        assert_eq!(Some(latent.values.as_slice()), new.last_latent());
    }

    /// A mean-and-scale model: with its means at zero it writes exactly the scale-only
    /// model's payloads; with means it codes each element around its mean, and the decoder
    /// rebuilds exactly the encoder's latent at every step, refined or not, in intra and
    /// predicted frames.
    #[test]
    fn a_mean_and_scale_model_codes_each_element_around_its_mean() {
        let plain = random_model_of(SMALL_SHALLOW);
        let arch = LearnedArch {
            means: true,
            ..SMALL_SHALLOW
        };
        let layer = arch.log_scale_layer();
        let mut weights = plain.weights.clone();
        let (w_name, b_name) = (layer.weight_name(), layer.bias_name());
        let mut w_means = weights.get(&w_name).to_vec();
        let mut b_means = weights.get(&b_name).to_vec();
        w_means.extend(vec![0.0; w_means.len()]);
        b_means.extend(vec![0.0; b_means.len()]);
        weights.insert(w_name.clone(), w_means.clone());
        weights.insert(b_name.clone(), b_means.clone());
        // The hyper-analysis reads the signed latent too: those weights at zero.
        let first = &arch.hyper_analysis()[0];
        let row = first.weight_shape()[1..].iter().product::<usize>() / 2;
        let read: Vec<f32> = weights
            .get(&first.weight_name())
            .chunks(row)
            .flat_map(|r| r.iter().copied().chain(std::iter::repeat_n(0.0, row)))
            .collect();
        weights.insert(first.weight_name(), read);
        let model_of = |weights: &LearnedWeights| {
            let bytes = LearnedModel::file_bytes_for(&new_info(arch, 0.01, 1), weights);
            Arc::new(LearnedModel::from_bytes(&bytes).unwrap())
        };
        let (w, h) = (96, 80);
        let frame = test_frame(w, h, 2);
        let zero_means = model_of(&weights);
        let payload = |model: &Arc<LearnedModel>| {
            let mut enc = LearnedCoder::new(model.clone(), w, h);
            enc.encode(&frame, FrameType::Intra).unwrap().payload
        };
        assert_eq!(payload(&zero_means), payload(&plain));

        // Means of a few steps: the mean rows copy the scale rows, times 8.
        let half = w_means.len() / 2;
        let (scales, means) = w_means.split_at_mut(half);
        means
            .iter_mut()
            .zip(scales.iter())
            .for_each(|(m, s)| *m = 8.0 * s);
        weights.insert(w_name, w_means);
        let model = model_of(&weights);
        let coder = LearnedCoder::new(model.clone(), w, h);
        let z = round_latent(&model.hyper_analyze(&model.analyze(&frame)));
        let prior = coder.intra().prior(z, LatentStep::UNIT);
        assert!(prior.offsets.iter().filter(|&&m| m != 0).count() > prior.offsets.len() / 4);
        assert_ne!(payload(&model), payload(&plain));
        for (index, effort) in [(128u8, 0u16), (160, 0), (128, 20)] {
            let step = LatentStep::from_index(index);
            let mut enc = LearnedCoder::new(model.clone(), w, h)
                .with_latent_step(step)
                .with_effort(effort);
            let mut dec = LearnedCoder::new(model.clone(), w, h);
            for (i, frame_type) in [FrameType::Intra, FrameType::Predicted]
                .into_iter()
                .enumerate()
            {
                let coded = enc
                    .encode(&test_frame(w, h, i as u32 * 3), frame_type)
                    .unwrap();
                let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
                assert_eq!(
                    Some(latent.values.as_slice()),
                    enc.last_latent(),
                    "{index} {i}"
                );
            }
        }
    }

    /// Refinement pays in real bitstreams: the refined intra frame costs less in bits plus
    /// weighted squared error (the trade the encoder chooses by) than the analysis's latent,
    /// and the decoder still parses exactly what the encoder kept.
    #[test]
    fn refined_intra_frames_cost_less_and_decode_exactly() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (96, 80);
        let frame = test_frame(w, h, 3);
        let step = LatentStep::UNIT;
        let weight = super::refine::choice_weight(model.info.lambda, step.value()) / 255.0 / 255.0;
        let cost = |effort: u16| {
            let mut enc = LearnedCoder::new(model.clone(), w, h)
                .with_latent_step(step)
                .with_effort(effort);
            let coded = enc.encode(&frame, FrameType::Intra).unwrap();
            let mut dec = LearnedCoder::new(model.clone(), w, h);
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            assert_eq!(Some(latent.values.as_slice()), enc.last_latent());
            let (sse, _) = crate::metrics::squared_error(&dec.synthesize(&latent), &frame);
            (
                8.0 * coded.payload.len() as f64 + weight * sse as f64,
                latent.values,
            )
        };
        let (plain, plain_latent) = cost(0);
        let (refined, refined_latent) = cost(40);
        assert_ne!(plain_latent, refined_latent, "the refinement moved nothing");
        assert!(refined < plain, "refined {refined:.0}, plain {plain:.0}");
    }

    pub(crate) fn test_frame(w: u32, h: u32, shift: u32) -> RgbFrame {
        let data = (0..w * h)
            .flat_map(|i| {
                let (x, y) = (i % w + shift, i / w);
                [(x * 3) as u8, (y * 5) as u8, ((x ^ y) * 7) as u8]
            })
            .collect();
        RgbFrame::from_data(w, h, data).unwrap()
    }

    #[test]
    fn the_decoder_parses_exactly_the_encoders_latent() {
        let model = random_model();
        let (w, h) = (96, 80);
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let mut dec = LearnedCoder::new(model.clone(), w, h);
        for (i, frame_type) in [FrameType::Intra, FrameType::Predicted, FrameType::Predicted]
            .into_iter()
            .enumerate()
        {
            let frame = test_frame(w, h, i as u32 * 4);
            let coded = enc.encode(&frame, frame_type).unwrap();
            assert_eq!(coded.frame_type, frame_type);
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            assert_eq!(
                Some(latent.values.as_slice()),
                enc.last_latent(),
                "frame {i}"
            );
            let exact = model.analyze(&frame);
            if frame_type == FrameType::Intra {
                // Each element is rounded to nearest or one step nearer zero.
                for (&v, nearest) in latent.values.iter().zip(round_latent(&exact)) {
                    assert!(
                        v == nearest || v == nearest - nearest.signum(),
                        "{v} {nearest}"
                    );
                }
            }
            let decoded = dec.synthesize(&latent);
            assert_eq!((decoded.width, decoded.height), (w, h));
        }
    }

    /// On a real frame, rate–distortion rounding spends fewer bits than rounding to nearest
    /// for a little more latent error, and with no weight on the bits it is rounding to nearest.
    #[test]
    #[cfg(feature = "ffmpeg")]
    fn intra_rounding_trades_a_little_error_for_fewer_bits() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/bikes.mp4");
        let frame = crate::video::VideoReader::open(&path)
            .unwrap()
            .next_frame()
            .unwrap()
            .unwrap();
        let model = crate::registry::builtin::model(3).unwrap();
        let coder = LearnedCoder::new(model.clone(), frame.width, frame.height);
        let exact = model.analyze(&frame);
        let z = round_latent(&model.hyper_analyze(&exact));
        let indices = coder.intra().table_indices(z, LatentStep::UNIT);
        let bank = ScaleBank::get();
        let measure = |latent: &[i32]| {
            let bits: f64 = latent
                .iter()
                .zip(&indices)
                .map(|(&v, &t)| bank.bits(t, v))
                .sum();
            let error: f64 = latent
                .iter()
                .zip(&exact.data)
                .map(|(&v, &f)| (f64::from(f) - f64::from(v)).powi(2))
                .sum();
            (bits, error)
        };
        assert_eq!(
            round_intra(&exact.data, &indices, 0.0),
            round_latent(&exact)
        );
        let (near_bits, near_error) = measure(&round_latent(&exact));
        let (rd_bits, rd_error) = measure(&round_intra(&exact.data, &indices, INTRA_RATE_WEIGHT));
        println!(
            "nearest {near_bits:.0} bits, error {near_error:.0}; rd {rd_bits:.0}, {rd_error:.0}"
        );
        assert!(rd_bits < 0.95 * near_bits);
        assert!(rd_error > near_error);
        // Every bit saved costs less squared error than the weight says a bit is worth.
        assert!(rd_error - near_error < INTRA_RATE_WEIGHT * (near_bits - rd_bits));
    }

    #[test]
    fn an_unchanged_frame_costs_a_few_bytes() {
        let model = random_model();
        let (w, h) = (64, 64);
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let frame = test_frame(w, h, 0);
        let intra = enc.encode(&frame, FrameType::Intra).unwrap();
        let still = enc.encode(&frame, FrameType::Predicted).unwrap();
        assert!(still.payload.len() <= 9, "{} bytes", still.payload.len());
        assert!(still.payload.len() < intra.payload.len());
        let mut fresh = LearnedCoder::new(model, w, h);
        assert!(matches!(
            fresh.parse(FrameType::Predicted, &still.payload),
            Err(CoderError::NoReference)
        ));
    }

    #[test]
    fn a_pan_is_coded_with_motion_and_decodes_exactly() {
        let model = random_model();
        let (w, h) = (128, 96);
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let mut dec = LearnedCoder::new(model, w, h);
        // The picture moves 16 pixels (one latent element) left per frame.
        let mut moved = 0;
        for i in 0..3u32 {
            let frame_type = if i == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            let coded = enc.encode(&test_frame(w, h, 16 * i), frame_type).unwrap();
            if frame_type == FrameType::Predicted {
                moved += usize::from(coded.payload[0] & predicted::MOTION_FLAG != 0);
            }
            let latent = dec.parse(coded.frame_type, &coded.payload).unwrap();
            assert_eq!(
                Some(latent.values.as_slice()),
                enc.last_latent(),
                "frame {i}"
            );
        }
        assert_eq!(moved, 2, "both predicted frames should send motion");
    }

    #[test]
    fn payloads_that_end_before_their_symbols_are_errors() {
        let model = random_model();
        let (w, h) = (128, 96);
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let coded = enc.encode(&test_frame(w, h, 0), FrameType::Intra).unwrap();
        let side = enc.side.channels;
        let words = (coded.payload.len() - side) / 4;
        assert!(words > 2, "the test frame should need several words");
        let mut dec = LearnedCoder::new(model, w, h);
        dec.parse(FrameType::Intra, &coded.payload).unwrap();
        // Every whole-word truncation, from either end of the ANS words.
        for keep in 0..words {
            let front = [&coded.payload[..side + 4 * keep]].concat();
            let back = [
                &coded.payload[..side],
                &coded.payload[coded.payload.len() - 4 * keep..],
            ]
            .concat();
            for cut in [front, back] {
                assert!(
                    dec.parse(FrameType::Intra, &cut).is_err(),
                    "{keep} of {words} words parsed without an error"
                );
            }
        }
    }

    #[test]
    fn corrupt_payloads_are_errors_not_panics() {
        let model = random_model();
        let (w, h) = (64, 48);
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let coded = enc.encode(&test_frame(w, h, 0), FrameType::Intra).unwrap();
        let mut dec = LearnedCoder::new(model, w, h);
        assert!(dec.parse(FrameType::Intra, &coded.payload[..2]).is_err());
        let mut bad = coded.payload.clone();
        bad[0] = 200;
        assert!(dec.parse(FrameType::Intra, &bad).is_err());
        for cut in [coded.payload.len() / 2, coded.payload.len() - 1] {
            let _ = dec.parse(FrameType::Intra, &coded.payload[..cut]);
        }
        let mut flipped = coded.payload.clone();
        let n = flipped.len();
        flipped[n - 3] ^= 0x5a;
        let _ = dec.parse(FrameType::Intra, &flipped);
    }

    /// The target: the coded size within 1% of the ideal information content, on real
    /// frames with the default models. Prints the figures (`-- --nocapture`).
    #[test]
    #[cfg(feature = "ffmpeg")]
    fn real_frames_code_within_one_percent_of_their_information_content() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/bikes.mp4");
        let mut reader = crate::video::VideoReader::open(&path).unwrap();
        let frames: Vec<RgbFrame> = (0..4)
            .map(|_| reader.next_frame().unwrap().unwrap())
            .collect();
        let (w, h) = (frames[0].width, frames[0].height);
        for quality in 1..=crate::registry::builtin::QUALITIES {
            let model = crate::registry::builtin::model(quality).unwrap();
            let mut enc = LearnedCoder::new(model, w, h);
            let (mut ideal, mut coded) = (0.0, 0);
            for (i, frame) in frames.iter().enumerate() {
                let frame_type = if i == 0 {
                    FrameType::Intra
                } else {
                    FrameType::Predicted
                };
                enc.encode(frame, frame_type).unwrap();
                let cost = enc.last_entropy_cost().unwrap();
                // A stream ends in a partly filled word: allow that beyond the 1%.
                assert!(
                    cost.coded_bits as f64 <= cost.ideal_bits * 1.01 + 32.0,
                    "q{quality} frame {i}: {cost:?}"
                );
                ideal += cost.ideal_bits;
                coded += cost.coded_bits;
            }
            println!(
                "q{quality}: {coded} bits coded, {ideal:.0} ideal, overhead {:.2}%",
                100.0 * (coded as f64 / ideal - 1.0)
            );
        }
    }

    #[test]
    fn predicted_latents_stay_within_the_kept_error_of_each_frame() {
        let model = random_model();
        let (w, h) = (64, 64);
        let mut enc = LearnedCoder::new(model.clone(), w, h);
        let (mut kept, mut total) = (0, 0);
        for i in 0..12u32 {
            let frame_type = if i == 0 {
                FrameType::Intra
            } else {
                FrameType::Predicted
            };
            // Slow drift: most changes are small, so many stay out, yet the error of every
            // frame stays bounded, however long the run of predicted frames.
            let frame = test_frame(w, h, i / 2);
            let previous = enc.last_latent().unwrap_or_default().to_vec();
            enc.encode(&frame, frame_type).unwrap();
            let exact = model.analyze(&frame);
            let coded = enc.last_latent().unwrap();
            for (j, (&v, &f)) in coded.iter().zip(&exact.data).enumerate() {
                assert!(
                    (v as f32 - f).abs() <= MAX_KEPT_ERROR,
                    "frame {i}: {v} for {f}"
                );
                if let Some(&p) = previous.get(j) {
                    total += 1;
                    kept += usize::from(v == p && v != f.round() as i32);
                }
            }
        }
        assert!(kept > 0 && kept < total, "{kept} of {total} kept");
    }

    #[test]
    fn thread_count_does_not_change_the_bitstream() {
        let model = random_model();
        let (w, h) = (128, 96);
        let frame = test_frame(w, h, 3);
        let code = |threads: usize| {
            crate::threads::set_threads(threads);
            let mut enc = LearnedCoder::new(model.clone(), w, h);
            let coded = enc.encode(&frame, FrameType::Intra).unwrap();
            let mut dec = LearnedCoder::new(model.clone(), w, h);
            let latent = dec.parse(FrameType::Intra, &coded.payload).unwrap();
            (coded.payload, latent)
        };
        let one = code(1);
        let two = code(2);
        crate::threads::set_threads(0);
        assert_eq!(one, two);
    }
}
