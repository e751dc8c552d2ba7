//! How coarse each predicted frame's layer is: rate allocation between frames.
//!
//! A moved frame's layer is coarser than the intra frame's, since the intra frame's detail
//! carries on through the moved pictures. How far it carries depends on the motion: where the
//! scene holds still, each frame reuses nearly all of the one before and the intra frame's
//! detail lasts the whole group, so the frames after it may be coarse; where it moves fast,
//! the picture renews itself within a few frames and what the intra frame spent soon leaves
//! the screen, so the frames after it must carry the detail themselves. x264's macroblock tree
//! weighs each block by how much later frames reuse it, for the same reason; here the weight
//! is one per frame, from a cheap estimate of how much moving the frame before saves
//! ([`crate::scenecut`]'s quarter-size block match). The step byte is written in each frame, so
//! the decoder needs nothing new.
//!
//! Measured as the change in rate at equal RGB PSNR, the levels with predicted frames against
//! themselves before (`aecodec eval CLIP --frames 30 --codecs levels-p`, PCHIP over the
//! PSNR both span): the fast frames 30–59 of `bikes` −3.1 %, its slow first 30 frames
//! −1.5 %, `cityCC0` −2.6 %, `bikes` frames 137–166 +0.2 %. One step for every moved frame
//! serves only one kind of motion: 1.41 times the intra step, fast frames −3.3 % and
//! `cityCC0` −2.2 %, but frames 137–166 +0.6 %; the intra step itself, −3.8 % and −0.3 %;
//! 2.38 times, the slow frames −0.7 % and the fast ones +2.5 %; 2.83 times, +1.0 % and +6.9 %.

use super::motion;
use crate::scenecut::SceneCuts;
use crate::RgbFrame;

/// The moved cost, as a fraction of the cost alone, at which a moved frame gets
/// [`motion::MOVED_STEP_BYTE`] (twice the intra step). The slow frames of `bikes` measure
/// 0.07–0.12, its fast ones and `cityCC0` 0.16–0.21. At 0.10 (every frame finer): fast frames
/// −3.5 %, slow −0.8 %, `cityCC0` −2.1 %, against −3.1, −1.5 and −2.6 % here.
const TYPICAL_FRACTION: f64 = 0.12;
/// Step bytes per halving of that fraction (16 bytes double the step). At 16: −2.8, −1.0 and
/// −2.5 %.
const BYTES_PER_HALVING: f64 = 12.0;
/// The finest and coarsest step bytes a moved frame gets: the intra step, and 2.4 times it.
const FINEST: u8 = 128;
const COARSEST: u8 = 148;
/// A bidirectional frame's step byte over its anchor's: twice as coarse, since nothing is
/// predicted from it, so what its layer leaves out goes no further (30 frames of `bikes`
/// against x264 medium, anchors at 144: frames between at 152, +38.5 %; 160, +36.0 %; 168,
/// +35.9 %; later, at 152 against 160, the fast frames +1.3 % and the slow +1.7 %).
const BETWEEN_OVER_ANCHOR: u8 = 16;

/// The encoder's estimate of how much each frame reuses of the one before it.
#[derive(Debug, Default)]
pub(super) struct MotionProbe {
    cuts: SceneCuts,
}

impl MotionProbe {
    /// Looks at the next frame in display order (every frame coded, intra ones too): what
    /// moving the frame before it costs, as a fraction of coding it alone; `None` for the
    /// first frame, or one of another size.
    pub(super) fn look(&mut self, frame: &RgbFrame) -> Option<f64> {
        let costs = self.cuts.look(frame)?;
        (costs.alone > 0).then(|| costs.moved as f64 / costs.alone as f64)
    }
}

/// The step byte of a moved frame whose motion from the frame before costs `fraction` of
/// coding it alone ([`MotionProbe::look`]).
pub(super) fn moved_step_byte(fraction: Option<f64>) -> u8 {
    let Some(fraction) = fraction else {
        return motion::MOVED_STEP_BYTE;
    };
    // (A frame that moving the one before predicts exactly is as still as a frame gets.)
    let fraction = fraction.max(1e-3);
    let byte = f64::from(motion::MOVED_STEP_BYTE)
        + BYTES_PER_HALVING * (TYPICAL_FRACTION / fraction).log2();
    byte.round().clamp(f64::from(FINEST), f64::from(COARSEST)) as u8
}

/// The step byte of a bidirectional frame whose anchor has step byte `anchor`.
pub(super) fn between_step_byte(anchor: u8) -> u8 {
    anchor.saturating_add(BETWEEN_OVER_ANCHOR)
}

/// The step byte of an anchor two frames after its reference, the frame between having moved
/// `fractions.0` and the anchor `fractions.1` of the frame before each.
pub(super) fn anchor_step_byte(fractions: (Option<f64>, Option<f64>)) -> u8 {
    match fractions {
        (Some(a), Some(b)) => moved_step_byte(Some((a + b) / 2.0)),
        (a, b) => moved_step_byte(a.or(b)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::coders::{DetailedCoder, FrameCoder};
    use crate::container::FrameType;
    use crate::learned::coder::tests::{random_model_of, SMALL_SHALLOW};
    use crate::learned::residual::tests::{detailed, scene};

    #[test]
    fn the_more_a_frame_moves_the_finer_its_step_within_bounds() {
        let typical = motion::MOVED_STEP_BYTE;
        assert_eq!(moved_step_byte(None), typical);
        assert_eq!(moved_step_byte(Some(TYPICAL_FRACTION)), typical);
        let bytes: Vec<u8> = [0.0, 0.01, 0.06, 0.12, 0.2, 0.3, 0.6, 1.0, 5.0]
            .into_iter()
            .map(|f| moved_step_byte(Some(f)))
            .collect();
        assert!(bytes.windows(2).all(|w| w[0] >= w[1]), "{bytes:?}");
        assert_eq!((bytes[0], bytes[8]), (COARSEST, FINEST));
        assert!(bytes[2] > typical && bytes[4] < typical, "{bytes:?}");
        assert_eq!(between_step_byte(140), 140 + BETWEEN_OVER_ANCHOR);
        assert_eq!(
            anchor_step_byte((Some(0.1), Some(0.3))),
            moved_step_byte(Some(0.2))
        );
        assert_eq!(
            anchor_step_byte((None, Some(0.3))),
            moved_step_byte(Some(0.3))
        );
    }

    /// The step byte of a moved frame's packet (after its mode byte).
    fn step_byte(payload: &[u8]) -> u8 {
        DetailedCoder::split(payload).unwrap().1[1]
    }

    #[test]
    fn a_moving_scene_gets_a_finer_step_than_a_still_one_and_decodes_exactly() {
        let model = random_model_of(SMALL_SHALLOW);
        let (w, h) = (64, 48);
        let mut bytes = Vec::new();
        for speed in [0, 4] {
            let mut enc = detailed(&model, w, h, 6.0);
            let mut dec = detailed(&model, w, h, 6.0);
            for t in 0..3 {
                let frame_type = [FrameType::Intra, FrameType::Predicted][usize::from(t > 0)];
                let packet = enc.encode(&scene(w, h, speed * t), frame_type).unwrap();
                dec.decode(packet.frame_type, &packet.payload).unwrap();
                assert_eq!(dec.shown(), enc.shown(), "speed {speed}, frame {t}");
                if t > 0 {
                    bytes.push(step_byte(&packet.payload));
                }
            }
        }
        assert!(bytes[..2].iter().all(|&b| b == COARSEST), "{bytes:?}");
        assert!(
            bytes[2..].iter().all(|&b| b < motion::MOVED_STEP_BYTE),
            "{bytes:?}"
        );
    }
}
