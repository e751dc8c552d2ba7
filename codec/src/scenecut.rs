//! Scene cuts: where the encoder starts a group of pictures early because a frame shares too
//! little with the one before it to be predicted from it.
//!
//! A predicted frame across a cut costs about what an intra frame costs and leaves a worse
//! reference for the frames after it; an intra frame there also lets long groups of pictures
//! (the default, as x264's) follow the content instead of the clock. The test is x264's in
//! spirit: on a quarter-size luma-like plane (R + 2G + B), each 32×32 block's cost as a moved
//! block (the least mean-removed difference over a small search, plus a little for the change
//! of its mean) against its cost alone (its deviation from its own mean); a frame is a cut when
//! moving the picture saves less than a fraction of what coding it alone costs. That fraction
//! shrinks toward the last intra frame, so cuts come rarely right after one, and never on the
//! first frame after it.

use crate::RgbFrame;

/// The plane is the frame scaled down by this factor in each direction.
const SCALE: usize = 4;
/// Side of a block on the scaled plane (32 pixels of the frame).
const BLOCK: usize = 8;
/// Search range on the scaled plane, each way (24 pixels of the frame).
const RANGE: i32 = 6;
/// Added to every block's cost alone: the noise floor, so that flat pictures (black frames,
/// titles) do not count as new scenes for any small change.
const FLOOR: i64 = 4 * (BLOCK * BLOCK) as i64;
/// What a unit of change in a block's mean adds to its moved cost per pixel: the detail layer
/// codes a block's mean change with its DC, far cheaper than the change at every sample, so
/// fades and flashes cost little as moved blocks.
const MEAN_CHANGE_WEIGHT: i64 = 2;
/// The most a moved frame may save over coding it alone and still count as a cut, as a
/// fraction of the cost alone: right after an intra frame, and at the longest group.
const SAVING_NEAR: f64 = 0.2;
const SAVING_FAR: f64 = 0.4;

/// A frame's quarter-size luma-like plane.
#[derive(Debug, Clone)]
struct Plane {
    w: usize,
    h: usize,
    data: Vec<i32>,
}

impl Plane {
    fn of(frame: &RgbFrame) -> Self {
        let (fw, fh) = (frame.width as usize, frame.height as usize);
        let (w, h) = (fw / SCALE, fh / SCALE);
        let mut data = vec![0; w * h];
        for (y, row) in data.chunks_exact_mut(w.max(1)).enumerate().take(h) {
            for (x, out) in row.iter_mut().enumerate() {
                let mut sum = 0i32;
                for dy in 0..SCALE {
                    let line = ((y * SCALE + dy) * fw + x * SCALE) * 3;
                    for p in frame.data[line..line + SCALE * 3].chunks_exact(3) {
                        sum += i32::from(p[0]) + 2 * i32::from(p[1]) + i32::from(p[2]);
                    }
                }
                *out = sum / (SCALE * SCALE) as i32;
            }
        }
        Self { w, h, data }
    }

    fn at(&self, x: i32, y: i32) -> i32 {
        let x = x.clamp(0, self.w as i32 - 1) as usize;
        let y = y.clamp(0, self.h as i32 - 1) as usize;
        self.data[y * self.w + x]
    }

    /// The block at (`bx`, `by`) (top-left sample) moved by `(dx, dy)`, as samples.
    fn block(&self, bx: usize, by: usize, (dx, dy): (i32, i32)) -> [i32; BLOCK * BLOCK] {
        let mut out = [0; BLOCK * BLOCK];
        for (i, v) in out.iter_mut().enumerate() {
            let (x, y) = ((bx + i % BLOCK) as i32 + dx, (by + i / BLOCK) as i32 + dy);
            *v = self.at(x, y);
        }
        out
    }
}

/// Sum of the block, and sum of its samples' distances from its mean.
fn deviation(block: &[i32; BLOCK * BLOCK]) -> (i64, i64) {
    let sum: i64 = block.iter().map(|&v| i64::from(v)).sum();
    let n = (BLOCK * BLOCK) as i64;
    let spread = block
        .iter()
        .map(|&v| (i64::from(v) * n - sum).abs())
        .sum::<i64>()
        / n;
    (sum, spread)
}

/// What coding a frame costs, estimated: alone, and as the frame before it moved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FrameCosts {
    pub alone: i64,
    pub moved: i64,
}

impl FrameCosts {
    fn between(previous: &Plane, current: &Plane) -> Self {
        let n = (BLOCK * BLOCK) as i64;
        let (mut alone, mut moved) = (0, 0);
        for by in (0..current.h.saturating_sub(BLOCK - 1)).step_by(BLOCK) {
            for bx in (0..current.w.saturating_sub(BLOCK - 1)).step_by(BLOCK) {
                let block = current.block(bx, by, (0, 0));
                let (sum, spread) = deviation(&block);
                let own = spread + FLOOR;
                let mut best = own;
                for dy in -RANGE..=RANGE {
                    for dx in -RANGE..=RANGE {
                        let reference = previous.block(bx, by, (dx, dy));
                        let ref_sum: i64 = reference.iter().map(|&v| i64::from(v)).sum();
                        let mean_change = sum - ref_sum;
                        // Mean-removed difference, in units of the samples (sums over n).
                        let difference = block
                            .iter()
                            .zip(&reference)
                            .map(|(&a, &b)| ((i64::from(a) - i64::from(b)) * n - mean_change).abs())
                            .sum::<i64>()
                            / n;
                        let cost = difference + MEAN_CHANGE_WEIGHT * mean_change.abs() / n;
                        best = best.min(cost);
                    }
                }
                alone += own;
                moved += best;
            }
        }
        Self { alone, moved }
    }

    /// Whether a frame `distance` frames after the last intra frame, in groups of at most
    /// `gop` frames, is better started anew: moving the picture saves less than the
    /// fraction of coding it alone that the distance allows.
    pub fn is_cut(&self, distance: u32, gop: u32) -> bool {
        if distance < 2 || self.alone <= 0 {
            return false;
        }
        let reach = f64::from(distance) / f64::from(gop.max(2));
        let saving = SAVING_NEAR + (SAVING_FAR - SAVING_NEAR) * reach.min(1.0);
        (self.alone - self.moved) as f64 <= saving * self.alone as f64
    }
}

/// Looks at each frame in display order and says whether it is a cut.
#[derive(Debug, Clone, Default)]
pub struct SceneCuts {
    previous: Option<Plane>,
}

impl SceneCuts {
    pub fn new() -> Self {
        Self::default()
    }

    /// The costs of `frame` after the frame last looked at (none for the first); remembers
    /// `frame` for the next.
    pub fn look(&mut self, frame: &RgbFrame) -> Option<FrameCosts> {
        let plane = Plane::of(frame);
        let previous = self.previous.replace(plane);
        let (previous, current) = (previous?, self.previous.as_ref().expect("just set"));
        (previous.w == current.w && previous.h == current.h)
            .then(|| FrameCosts::between(&previous, current))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "ffmpeg")]
    fn clip(name: &str, frames: usize, size: Option<(u32, u32)>) -> Vec<RgbFrame> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../samples")
            .join(name);
        let mut reader = crate::video::VideoReader::open(&path).unwrap();
        if let Some((w, h)) = size {
            reader.scale_to(w, h);
        }
        (0..frames)
            .map(|_| reader.next_frame().unwrap().unwrap())
            .collect()
    }

    /// Consecutive frames of a camera clip are no cut, at any distance from the intra frame;
    /// a frame of another clip after them is one, even right after an intra frame.
    #[test]
    #[cfg(feature = "ffmpeg")]
    fn a_change_of_clip_is_a_cut_and_the_clip_going_on_is_not() {
        let bikes = clip("bikes.mp4", 12, None);
        let size = (bikes[0].width, bikes[0].height);
        let other = clip("carphone_pristine.mp4", 1, Some(size));
        let mut cuts = SceneCuts::new();
        assert_eq!(cuts.look(&bikes[0]), None);
        for frame in &bikes[1..] {
            let costs = cuts.look(frame).unwrap();
            assert!(costs.moved < costs.alone / 2, "{costs:?}");
            assert!(!costs.is_cut(250, 250), "{costs:?}");
        }
        let costs = cuts.look(&other[0]).unwrap();
        assert!(costs.is_cut(2, 250), "{costs:?}");
        // The same frame again is no cut.
        assert!(!cuts.look(&other[0]).unwrap().is_cut(250, 250));
    }

    /// The encoder starts a group at a cut, whether the cut falls on the first or the second
    /// frame of a bidirectional pair, and not without scene cuts.
    #[test]
    #[cfg(feature = "ffmpeg")]
    fn the_encoder_starts_a_group_at_a_cut() {
        use crate::container::{FrameType, Rational};
        use crate::pipeline::FrameEncoder;
        use crate::registry::CoderRequest;
        let bikes = clip("bikes.mp4", 6, None);
        let size = (bikes[0].width, bikes[0].height);
        let other = clip("carphone_pristine.mp4", 6, Some(size));
        let spec = CoderRequest {
            model: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../samples/models/pca8.model"),
            ),
            ..CoderRequest::default()
        }
        .spec()
        .unwrap();
        let intra_frames = |cut_at: usize, cuts: bool| {
            let frames: Vec<&RgbFrame> = bikes[..cut_at].iter().chain(&other).collect();
            let mut encoder = FrameEncoder::new(&spec, size.0, size.1, Rational::new(25, 1), 250);
            if cuts {
                encoder = encoder.with_scene_cuts();
            }
            let mut types = Vec::new();
            let mut i = 0;
            while i < frames.len() {
                if encoder.pairs_next() && i + 1 < frames.len() {
                    let (a, b) = encoder.encode_pair(frames[i], frames[i + 1]).unwrap();
                    types.extend([a.frame_type, b.frame_type]);
                    i += 2;
                } else {
                    types.push(encoder.encode(frames[i]).unwrap().frame_type);
                    i += 1;
                }
            }
            (0..types.len())
                .filter(|&i| types[i] == FrameType::Intra)
                .collect::<Vec<_>>()
        };
        // Pairs are frames 1–2, 3–4, 5–6: a cut at 6 ends one, a cut at 5 starts one.
        assert_eq!(intra_frames(6, true), [0, 6]);
        assert_eq!(intra_frames(5, true), [0, 5]);
        assert_eq!(intra_frames(6, false), [0]);
    }

    /// A flat picture whose brightness steps (a fade from black) is no cut, nor are its
    /// first frames right after an intra frame.
    #[test]
    fn fades_are_no_cuts_and_the_frame_after_an_intra_frame_never_is() {
        let mut cuts = SceneCuts::new();
        let flat = |v: u8| RgbFrame::from_data(64, 64, vec![v; 64 * 64 * 3]).unwrap();
        cuts.look(&flat(0));
        for v in [12, 24, 36, 48] {
            let costs = cuts.look(&flat(v)).unwrap();
            assert!(!costs.is_cut(100, 100), "{v}: {costs:?}");
        }
        let costs = FrameCosts {
            alone: 100,
            moved: 100,
        };
        assert!(!costs.is_cut(1, 100) && costs.is_cut(2, 100));
        // Frames of another size are not compared.
        assert_eq!(cuts.look(&flat(48).padded(128, 64)), None);
    }
}
