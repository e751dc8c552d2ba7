//! The default learned models, embedded in the binary so that encoding and decoding need no
//! model file, and the quality levels built from them. `samples/models/README.md` says how each
//! model was trained. This is the one list of them: the command line's defaults ([`PATHS`]) and
//! the embedded bytes come from the same names.
//!
//! The levels (`aecodec encode --quality`, rate control's choices): level 1 is the learned
//! model of quality [`LADDER_MODEL`] alone; each level above adds a detail layer
//! (`crate::coders::detail`) at the next of [`DETAIL_STEPS`]. The learned models of higher
//! quality stay built in for the files coded with them, but no level uses them: a detail layer
//! over the lowest model gives more quality for fewer bits than they do (CHANGELOG.md, "The detail
//! layer").

use std::sync::{Arc, OnceLock};

use super::CoderSpec;
use crate::learned::LearnedModel;
use crate::model_file::{ModelError, ModelId};

/// Number of built-in learned models (`learned-q1.model` ...).
pub const QUALITIES: u8 = 4;

/// The learned model (by its quality) that every level codes its base layer with.
pub const LADDER_MODEL: u8 = 1;

/// Detail layer steps of levels 2 and up, coarsest first.
pub const DETAIL_STEPS: [f32; 6] = [64.0, 44.0, 30.0, 20.0, 14.0, 10.0];

/// The detail steps `aecodec eval` sweeps by default: the levels' and two coarser ones,
/// which `aecodec encode --detail-step` reaches. They trace the codec's curve below level 2,
/// where JPEG and PCA still have points, but no level has them: on camera video's intra frames
/// they come out below level 1's quality (`bikes`, 4 frames: 31.0 and 34.1 dB against 36.9).
pub const EVAL_DETAIL_STEPS: [f32; 8] = {
    let mut steps = [128.0, 90.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let mut i = 0;
    while i < DETAIL_STEPS.len() {
        steps[2 + i] = DETAIL_STEPS[i];
        i += 1;
    }
    steps
};

/// Number of quality levels.
pub const LEVELS: u8 = 1 + DETAIL_STEPS.len() as u8;

/// The default level of `aecodec encode`.
pub const DEFAULT_QUALITY: u8 = 4;

/// The coder of quality level `level` (1..=[`LEVELS`]).
pub fn level(level: u8) -> Result<CoderSpec, ModelError> {
    if !(1..=LEVELS).contains(&level) {
        return Err(ModelError::BadConfig(format!(
            "quality {level} is not 1..={LEVELS}"
        )));
    }
    ladder(
        usize::from(level)
            .checked_sub(2)
            .and_then(|i| DETAIL_STEPS.get(i).copied()),
    )
}

/// The levels' learned model ([`LADDER_MODEL`]) with a detail layer at `detail_step`, if any:
/// a level, or a step of the user's own (`aecodec encode --detail-step`).
pub fn ladder(detail_step: Option<f32>) -> Result<CoderSpec, ModelError> {
    Ok(CoderSpec::Learned {
        model: model(LADDER_MODEL)?,
        detail_step,
        latent_step: crate::learned::LatentStep::UNIT,
    })
}

/// Declares the built-in models once: their paths in the repository, and (with the feature
/// `builtin-models`) their bytes.
macro_rules! builtin_models {
    ($($name:literal),* $(,)?) => {
        /// The built-in models' files in the repository, quality 1 first (for tools that take
        /// model paths, such as `aecodec eval`'s defaults).
        pub const PATHS: [&str; QUALITIES as usize] = [$(concat!("samples/models/", $name)),*];

        #[cfg(feature = "builtin-models")]
        static FILES: &[&[u8]] = &[$(include_bytes!(concat!("../../../samples/models/", $name))),*];
    };
}

builtin_models!(
    "learned-q1.model",
    "learned-q2.model",
    "learned-q3.model",
    "learned-q4.model",
);

/// The file of the ladder's learned model.
pub const LADDER_PATH: &str = PATHS[LADDER_MODEL as usize - 1];

/// A build without the `builtin-models` feature (the trainer's GPU kit, which must travel
/// small) has none: every model comes from a file.
#[cfg(not(feature = "builtin-models"))]
static FILES: &[&[u8]] = &[];

/// The embedded file of a learned model by its quality (1..=[`QUALITIES`]).
pub fn model_file(quality: u8) -> Option<&'static [u8]> {
    FILES.get(usize::from(quality).checked_sub(1)?).copied()
}

/// The built-in learned model of a quality (1..=[`QUALITIES`]), parsed once.
pub fn model(quality: u8) -> Result<Arc<LearnedModel>, ModelError> {
    static MODELS: [OnceLock<Arc<LearnedModel>>; QUALITIES as usize] =
        [const { OnceLock::new() }; QUALITIES as usize];
    let index = usize::from(quality)
        .checked_sub(1)
        .filter(|&i| i < FILES.len())
        .ok_or_else(|| {
            ModelError::BadConfig(if FILES.is_empty() {
                "this build has no built-in models (feature builtin-models)".into()
            } else {
                format!("quality {quality} is not 1..={QUALITIES}")
            })
        })?;
    if let Some(m) = MODELS[index].get() {
        return Ok(m.clone());
    }
    let m = Arc::new(LearnedModel::from_bytes(FILES[index])?);
    Ok(MODELS[index].get_or_init(|| m).clone())
}

/// The default model with this id, if it is one.
pub fn find(id: &ModelId) -> Option<Arc<LearnedModel>> {
    static IDS: OnceLock<Vec<ModelId>> = OnceLock::new();
    let ids = IDS.get_or_init(|| FILES.iter().map(|f| ModelId::of_bytes(f)).collect());
    let quality = ids.iter().position(|i| i == id)? as u8 + 1;
    model(quality).ok()
}

// Every level decoding real frames, each better and larger than the one below, is
// `tests/cli.rs` (`every_built_in_quality_decodes_and_costs_more_bits_at_higher_levels`).
#[cfg(all(test, feature = "builtin-models"))]
mod tests {
    use super::*;

    #[test]
    fn levels_outside_the_ladder_are_refused_and_detail_steps_get_finer() {
        assert!(level(0).is_err() && level(LEVELS + 1).is_err());
        let steps: Vec<Option<f32>> = (1..=LEVELS)
            .map(|q| match level(q).unwrap() {
                CoderSpec::Learned { detail_step, .. } => detail_step,
                _ => panic!("level {q} is not learned"),
            })
            .collect();
        assert_eq!(steps[0], None);
        assert!(steps[1..].windows(2).all(|w| w[0] > w[1]), "{steps:?}");
    }
}
