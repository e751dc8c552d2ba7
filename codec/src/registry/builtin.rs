//! The default learned models, embedded in the binary so that encoding and decoding need no
//! model file. Quality 1 makes the smallest files, [`QUALITIES`] the best-looking ones.
//! `samples/models/README.md` says how each was trained. This is the one list of them: the
//! command line's defaults ([`PATHS`]) and the embedded bytes come from the same names.

use std::sync::{Arc, OnceLock};

use crate::learned::LearnedModel;
use crate::model_file::{ModelError, ModelId};

/// Number of default quality levels.
pub const QUALITIES: u8 = 4;

/// The default quality of `aecodec encode`.
pub const DEFAULT_QUALITY: u8 = 3;

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

/// A build without the `builtin-models` feature (the trainer's GPU kit, which must travel
/// small) has none: every model comes from a file.
#[cfg(not(feature = "builtin-models"))]
static FILES: &[&[u8]] = &[];

/// The embedded file of a quality level (1..=[`QUALITIES`]).
pub fn model_file(quality: u8) -> Option<&'static [u8]> {
    FILES.get(usize::from(quality).checked_sub(1)?).copied()
}

/// The default model of a quality level, parsed once.
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
