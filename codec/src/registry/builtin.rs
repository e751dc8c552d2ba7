//! The default learned models, embedded in the binary so that encoding and decoding need no
//! model file, and the quality levels built from them. `samples/models/README.md` says how each
//! model was trained. This is the one list of them: the command line's defaults ([`PATHS`]) and
//! the embedded bytes come from the same names.
//!
//! The levels (`aecodec encode --quality`, rate control's choices) all code with one model of
//! the shallow kind ([`LEVELS_PATH`]), whose latent step sets its rate: every intra frame
//! decodes through the learned synthesis, and predicted frames move the picture it made (at
//! level 1 every frame is synthesized from its latent). Level 1 is the learned picture alone; each
//! level above adds a detail layer (`crate::coders::detail`) that refines it ([`LEVEL_STEPS`]).
//! The learned models of the pixel-shuffle kind (q1–q4) stay built in for the files coded
//! with them.

use std::sync::{Arc, OnceLock};

use super::CoderSpec;
use crate::coders::BasePolicy;
use crate::learned::{LatentStep, LearnedModel};
use crate::model_file::{ModelError, ModelId};

/// Number of built-in learned models of the pixel-shuffle kind (`learned-q1.model` ...).
pub const QUALITIES: u8 = 4;

/// Per level, from 1: the learned latent's step and the detail layer's step (none at level 1).
/// Under a detail layer the encoder also tries the latent √2 times finer, √2 and 2 times
/// coarser for each intra frame and keeps the cheapest. Chosen on two frames of each of seven training
/// sources (CHANGELOG.md, "Every level decodes the learned picture"): at every detail step,
/// steps 32 and 45 cost least at equal PSNR (8 to 22 cost more bits on every source). Level
/// 1's step keeps it below level 2 in quality: on `bikes` with predicted frames step 8 alone
/// gave 34.7 dB for 0.018 bpp, level 2 34.4 dB for 0.042.
pub const LEVEL_STEPS: [(f32, Option<f32>); 7] = [
    (16.0, None),
    (32.0, Some(64.0)),
    (32.0, Some(44.0)),
    (32.0, Some(30.0)),
    (32.0, Some(20.0)),
    (32.0, Some(14.0)),
    (32.0, Some(10.0)),
];

/// Per level, the latent step of `aecodec encode --learned-only` (the learned picture alone).
pub const LEARNED_ONLY_STEPS: [f32; 7] = [11.0, 5.6, 2.8, 1.4, 0.7, 0.5, 0.35];

/// Detail steps finer than level 7's that rate control (`--bitrate`, `aecodec ladder`) may
/// also choose, each about √2 finer, over level 7's learned picture. Level 7 keeps 46–49 dB
/// on held-out pictures; these reach 48–55 dB (step 5: 50.5 dB on `marble-data`, 51.5 on
/// `bikes`), so a high bitrate asked of an easy clip is reached instead of stopping at the
/// top level's size. `--quality` stays 1 to 7.
pub const ABOVE_TOP_DETAIL_STEPS: [f32; 4] = [7.0, 5.0, 3.5, 2.5];

/// The coders rate control chooses among, coarsest first: every level, then (with the
/// detail layer) the steps of [`ABOVE_TOP_DETAIL_STEPS`]. The learned picture alone has no
/// steps above its top: its quality stops rising there (35.8 dB on `marble-data` at latent
/// steps 0.35 to 0.12). `alone`: the learned picture alone (`--learned-only`).
pub fn rate_tools(alone: bool) -> Result<Vec<CoderSpec>, ModelError> {
    let level = match alone {
        true => learned_only,
        false => level,
    };
    let mut tools = (1..=LEVELS).map(level).collect::<Result<Vec<_>, _>>()?;
    if !alone {
        let (top_latent, _) = LEVEL_STEPS[usize::from(LEVELS) - 1];
        for &detail in &ABOVE_TOP_DETAIL_STEPS {
            tools.push(levels_coder(top_latent, Some(detail))?);
        }
    }
    Ok(tools)
}

/// The detail steps `aecodec eval` sweeps by default with a learned model of its own.
pub const EVAL_DETAIL_STEPS: [f32; 8] = [128.0, 90.0, 64.0, 44.0, 30.0, 20.0, 14.0, 10.0];

/// Number of quality levels.
pub const LEVELS: u8 = LEVEL_STEPS.len() as u8;

/// The default level of `aecodec encode`.
pub const DEFAULT_QUALITY: u8 = 4;

/// The coder of quality level `level` (1..=[`LEVELS`]).
pub fn level(level: u8) -> Result<CoderSpec, ModelError> {
    let (latent, detail_step) = at_level(&LEVEL_STEPS, level)?;
    levels_coder(latent, detail_step)
}

/// The learned picture alone at quality level `level` (1..=[`LEVELS`]).
pub fn learned_only(level: u8) -> Result<CoderSpec, ModelError> {
    levels_coder(at_level(&LEARNED_ONLY_STEPS, level)?, None)
}

/// The coder of any quality from 1 to [`LEVELS`]: a whole number is that level; between two
/// levels each step is the geometric blend of theirs (so quality rises smoothly with the
/// number). Between 1 and 2 the detail layer goes from level 2's step (64) to
/// [`COARSEST_DETAIL`] as the quality falls towards 1, over level 2's learned picture.
pub fn quality(quality: f32) -> Result<CoderSpec, ModelError> {
    let (below, t) = split_quality(quality)?;
    if t == 0.0 {
        return level(below);
    }
    let (latent_a, detail_a) = LEVEL_STEPS[usize::from(below) - 1];
    let (latent_b, detail_b) = LEVEL_STEPS[usize::from(below)];
    let detail_b = detail_b.expect("every level above 1 has a detail layer");
    let (latent, detail) = match detail_a {
        Some(detail_a) => (blend(latent_a, latent_b, t), blend(detail_a, detail_b, t)),
        None => (latent_b, blend(COARSEST_DETAIL, detail_b, t)),
    };
    levels_coder(latent, Some(detail))
}

/// The learned picture alone at any quality from 1 to [`LEVELS`], its latent step blended
/// geometrically between the levels' as in [`quality`].
pub fn learned_only_quality(quality: f32) -> Result<CoderSpec, ModelError> {
    let (below, t) = split_quality(quality)?;
    let i = usize::from(below) - 1;
    let latent = match t == 0.0 {
        true => LEARNED_ONLY_STEPS[i],
        false => blend(LEARNED_ONLY_STEPS[i], LEARNED_ONLY_STEPS[i + 1], t),
    };
    levels_coder(latent, None)
}

/// The detail step that qualities just above 1 approach: the coarsest `aecodec eval` sweeps.
pub const COARSEST_DETAIL: f32 = 128.0;

/// A quality as the level at or below it and how far it lies towards the next (0 ≤ t < 1).
fn split_quality(quality: f32) -> Result<(u8, f32), ModelError> {
    if !(1.0..=f32::from(LEVELS)).contains(&quality) {
        return Err(ModelError::BadConfig(format!(
            "quality {quality} is not 1..={LEVELS}"
        )));
    }
    let below = quality.floor();
    Ok((below as u8, quality - below))
}

/// `a` at t = 0 to `b` at t = 1, geometrically.
fn blend(a: f32, b: f32, t: f32) -> f32 {
    a * (b / a).powf(t)
}

/// Entry `level` (from 1) of a per-level table.
fn at_level<T: Copy>(table: &[T; LEVELS as usize], level: u8) -> Result<T, ModelError> {
    usize::from(level)
        .checked_sub(1)
        .and_then(|i| table.get(i).copied())
        .ok_or_else(|| ModelError::BadConfig(format!("quality {level} is not 1..={LEVELS}")))
}

/// The levels' model with a detail layer at `detail_step` of the user's own (`aecodec encode
/// --detail-step`), its latent at the default level's step.
pub fn ladder(detail_step: Option<f32>) -> Result<CoderSpec, ModelError> {
    let (latent, _) = LEVEL_STEPS[usize::from(DEFAULT_QUALITY) - 1];
    levels_coder(latent, detail_step)
}

fn levels_coder(latent: f32, detail_step: Option<f32>) -> Result<CoderSpec, ModelError> {
    Ok(CoderSpec::Learned {
        model: levels_model()?,
        detail_step,
        latent_step: LatentStep::nearest(f64::from(latent)).expect("a positive step"),
        policy: BasePolicy::Learned,
        effort: 0,
    })
}

/// Declares the built-in models once: their paths in the repository, and (with the feature
/// `builtin-models`) their bytes.
macro_rules! builtin_models {
    ($($name:literal),* $(,)?) => {
        /// The built-in models' files in the repository, quality 1 first and the levels' model
        /// last (for tools that take model paths, such as `aecodec eval`'s defaults).
        pub const PATHS: [&str; QUALITIES as usize + 1] = [$(concat!("samples/models/", $name)),*];

        #[cfg(feature = "builtin-models")]
        static FILES: &[&[u8]] = &[$(include_bytes!(concat!("../../../samples/models/", $name))),*];
    };
}

builtin_models!(
    "learned-q1.model",
    "learned-q2.model",
    "learned-q3.model",
    "learned-q4.model",
    "learned-shallow.model",
);

/// The file of the levels' model.
pub const LEVELS_PATH: &str = PATHS[LEVELS_INDEX];

/// Where the levels' model is in [`PATHS`].
const LEVELS_INDEX: usize = QUALITIES as usize;

/// A build without the `builtin-models` feature (the trainer's GPU kit, which must travel
/// small) has none: every model comes from a file.
#[cfg(not(feature = "builtin-models"))]
static FILES: &[&[u8]] = &[];

/// The embedded file of a learned model by its quality (1..=[`QUALITIES`]).
pub fn model_file(quality: u8) -> Option<&'static [u8]> {
    FILES
        .get(usize::from(quality).checked_sub(1)?)
        .filter(|_| quality <= QUALITIES)
        .copied()
}

/// The built-in learned model of a quality (1..=[`QUALITIES`]), parsed once.
pub fn model(quality: u8) -> Result<Arc<LearnedModel>, ModelError> {
    let index = usize::from(quality)
        .checked_sub(1)
        .filter(|&i| i < usize::from(QUALITIES))
        .ok_or_else(|| {
            ModelError::BadConfig(format!("quality {quality} is not 1..={QUALITIES}"))
        })?;
    parsed(index)
}

/// The levels' built-in model, parsed once.
pub fn levels_model() -> Result<Arc<LearnedModel>, ModelError> {
    parsed(LEVELS_INDEX)
}

/// The embedded model at `index` of [`PATHS`], parsed once.
fn parsed(index: usize) -> Result<Arc<LearnedModel>, ModelError> {
    static MODELS: [OnceLock<Arc<LearnedModel>>; QUALITIES as usize + 1] =
        [const { OnceLock::new() }; QUALITIES as usize + 1];
    let file = FILES.get(index).ok_or_else(|| {
        ModelError::BadConfig("this build has no built-in models (feature builtin-models)".into())
    })?;
    if let Some(m) = MODELS[index].get() {
        return Ok(m.clone());
    }
    let m = Arc::new(LearnedModel::from_bytes(file)?);
    Ok(MODELS[index].get_or_init(|| m).clone())
}

/// The default model with this id, if it is one.
pub fn find(id: &ModelId) -> Option<Arc<LearnedModel>> {
    parsed(index_of(id)?).ok()
}

/// The embedded file of the default model with this id: what a server sends a client (a web
/// page) that has no built-in models.
pub fn file_of(id: &ModelId) -> Option<&'static [u8]> {
    FILES.get(index_of(id)?).copied()
}

/// Where the embedded model with this id is in [`PATHS`].
fn index_of(id: &ModelId) -> Option<usize> {
    static IDS: OnceLock<Vec<ModelId>> = OnceLock::new();
    let ids = IDS.get_or_init(|| FILES.iter().map(|f| ModelId::of_bytes(f)).collect());
    ids.iter().position(|i| i == id)
}

// Every level decoding real frames, each better and larger than the one below, is
// `tests/cli.rs` (`every_built_in_quality_decodes_and_costs_more_bits_at_higher_levels`).
#[cfg(all(test, feature = "builtin-models"))]
mod tests {
    use super::*;

    #[test]
    fn levels_outside_the_ladder_are_refused_and_every_level_is_learned() {
        assert!(level(0).is_err() && level(LEVELS + 1).is_err());
        assert!(learned_only(0).is_err() && learned_only(LEVELS + 1).is_err());
        for bad in [0.5, 7.01, f32::NAN, f32::INFINITY] {
            assert!(
                quality(bad).is_err() && learned_only_quality(bad).is_err(),
                "{bad}"
            );
        }
        // Between two levels every step lies between theirs; whole numbers are the levels.
        let steps = |spec: CoderSpec| match spec {
            CoderSpec::Learned {
                latent_step,
                detail_step,
                ..
            } => (latent_step.value(), detail_step),
            _ => panic!("not learned"),
        };
        for q in 1..=LEVELS {
            assert_eq!(
                steps(quality(f32::from(q)).unwrap()),
                steps(level(q).unwrap())
            );
            let alone = learned_only_quality(f32::from(q)).unwrap();
            assert_eq!(steps(alone), steps(learned_only(q).unwrap()));
        }
        let mut last = (f32::INFINITY, f32::INFINITY);
        for tenth in 11..=70u8 {
            let q = f32::from(tenth) / 10.0;
            let (latent, detail) = steps(quality(q).unwrap());
            let detail = detail.expect("a detail layer above level 1");
            assert!(
                detail <= last.1 && detail < COARSEST_DETAIL + 1.0,
                "{q}: {detail}"
            );
            let (alone, _) = steps(learned_only_quality(q).unwrap());
            assert!(alone <= last.0, "{q}: latent step {alone} after {}", last.0);
            assert!((16.0..=45.0).contains(&latent), "{q}: {latent}");
            last = (alone, detail);
        }
        let (_, d35) = steps(quality(3.5).unwrap());
        assert!((30.0..44.0).contains(&d35.unwrap()), "{d35:?}");
        let shallow = levels_model().unwrap();
        assert!(shallow.has_latent_step());
        let steps: Vec<(LatentStep, Option<f32>)> = (1..=LEVELS)
            .map(|q| match level(q).unwrap() {
                CoderSpec::Learned {
                    model,
                    detail_step,
                    latent_step,
                    policy,
                    ..
                } => {
                    assert_eq!(model.id, shallow.id, "level {q}");
                    assert_eq!(policy, BasePolicy::Learned, "level {q}");
                    (latent_step, detail_step)
                }
                _ => panic!("level {q} is not learned"),
            })
            .collect();
        assert_eq!(steps[0].1, None);
        let details: Vec<f32> = steps[1..].iter().map(|s| s.1.unwrap()).collect();
        assert!(details.windows(2).all(|w| w[0] > w[1]), "{steps:?}");
        // Learned alone, each level's latent step is finer than the one below.
        let alone: Vec<f32> = (1..=LEVELS)
            .map(|q| match learned_only(q).unwrap() {
                CoderSpec::Learned {
                    detail_step: None,
                    latent_step,
                    ..
                } => latent_step.value(),
                _ => panic!("level {q} of --learned-only has a detail layer"),
            })
            .collect();
        assert!(alone.windows(2).all(|w| w[0] > w[1]), "{alone:?}");
        assert_eq!(find(&shallow.id).map(|m| m.id), Some(shallow.id));
    }

    #[test]
    fn rate_control_goes_on_above_the_top_level_with_the_detail_layer_only() {
        let detail = |spec: &CoderSpec| match spec {
            CoderSpec::Learned { detail_step, .. } => *detail_step,
            _ => panic!("not learned"),
        };
        let tools = rate_tools(false).unwrap();
        assert_eq!(
            tools.len(),
            usize::from(LEVELS) + ABOVE_TOP_DETAIL_STEPS.len()
        );
        for (q, tool) in (1..=LEVELS).zip(&tools) {
            assert_eq!(tool.tool(), level(q).unwrap().tool(), "level {q}");
        }
        let top = usize::from(LEVELS) - 1;
        let finer: Vec<f32> = tools[top..].iter().map(|t| detail(t).unwrap()).collect();
        assert!(finer.windows(2).all(|w| w[0] > w[1]), "{finer:?}");
        assert!(tools.len() <= crate::container::MAX_TOOLS);
        let alone = rate_tools(true).unwrap();
        assert_eq!(alone.len(), usize::from(LEVELS));
        assert!(alone.iter().all(|t| detail(t).is_none()));
    }
}
