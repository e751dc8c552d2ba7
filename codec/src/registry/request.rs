//! What a user asks to code with, checked once: a request names a model file, the pixel coder
//! or a built-in level, with the steps that go with it, and becomes the [`CoderSpec`] (or, for
//! rate control, the several specs) that encode, ladder and eval use. Every bound it checks is
//! the format's own ([`crate::container`]) or the coder's, named once there.

use std::path::PathBuf;

use super::{builtin, CoderSpec, Model};
use crate::coders::{pca, BasePolicy, CoderError};
use crate::container::{CodingParams, MAX_DETAIL_STEP, MAX_TOOLS, MIN_DETAIL_STEP, PIXEL_STEPS};
use crate::learned::LatentStep;
use crate::model_file::ModelError;

/// The latent steps a learned model of the shallow kind codes at (the grid's ends, e^±4, are
/// just beyond).
pub const LATENT_STEPS: std::ops::RangeInclusive<f32> = 0.02..=50.0;

/// The pixel coder's default step.
const PIXEL_DEFAULT_STEP: f32 = 4.0;
/// A PCA model's default quantizer step.
const PCA_DEFAULT_STEP: f32 = 8.0;

/// Why a request cannot be coded.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("the detail step must be from {MIN_DETAIL_STEP} to {MAX_DETAIL_STEP}, got {0}")]
    DetailStep(f32),
    #[error("the step must be a positive number, got {0}")]
    Step(f32),
    #[error("the pixel coder's step is an integer from {min} to {max}, got {0}", min = PIXEL_STEPS.start(), max = PIXEL_STEPS.end())]
    PixelStep(f32),
    #[error("a learned model's latent step is from {min} to {max}, got {0}", min = LATENT_STEPS.start(), max = LATENT_STEPS.end())]
    LatentStep(f32),
    #[error("a step or a component count needs the pixel coder or a PCA model; the built-in levels take a quality level")]
    StepForLevels,
    #[error("the learned picture alone has no detail layer, and so no detail step")]
    DetailLearnedOnly,
    #[error("a component count needs a PCA model")]
    ComponentsNeedPca,
    #[error("a detail layer goes over a learned model, not a PCA one")]
    DetailOverPca,
    #[error("this learned model's quality is fixed by its training: a step and a component count are for PCA models and learned models of the shallow kind (add a detail layer instead)")]
    StepForFixedModel,
    #[error("rate control switches between models or steps: it takes the built-in levels or a PCA model, not one learned model")]
    RateNeedsChoices,
    #[error("an encoder effort refines a learned model's latents: the pixel coder and PCA models have none")]
    EffortNeedsLearned,
    #[error("loading model {path}")]
    Model {
        path: PathBuf,
        #[source]
        cause: ModelError,
    },
    #[error("loading the built-in models")]
    BuiltIn(#[source] ModelError),
    #[error(transparent)]
    Coder(#[from] CoderError),
}

/// Checks a detail layer's quantizer step against the format's bounds.
pub fn check_detail_step(step: f32) -> Result<(), RequestError> {
    if (MIN_DETAIL_STEP..=MAX_DETAIL_STEP).contains(&step) {
        Ok(())
    } else {
        Err(RequestError::DetailStep(step))
    }
}

/// What to code with, as asked: a model file, else the pixel coder, else the built-in level.
#[derive(Debug, Clone, Default)]
pub struct CoderRequest {
    pub model: Option<PathBuf>,
    pub pixel: bool,
    /// The built-in quality (1 to [`builtin::LEVELS`], whole numbers being the levels and
    /// numbers between them coding between them) when neither a model nor the pixel coder is
    /// asked for.
    pub quality: f32,
    /// The quantizer step: the pixel coder's, a PCA model's, or a shallow model's latent step.
    pub step: Option<f32>,
    /// PCA components to keep.
    pub components: Option<u16>,
    /// A detail layer over a learned model, at this step.
    pub detail_step: Option<f32>,
    /// Where the encoder puts the learned picture when there is a detail layer.
    pub policy: BasePolicy,
    /// The built-in level's learned picture alone, without the detail layer.
    pub learned_only: bool,
    /// Gradient steps of latent refinement per intra frame (learned coders; 0: none).
    pub effort: u16,
}

impl CoderRequest {
    /// The built-in level the request names, or 0 (a model of one's own, the pixel coder, a
    /// detail step of one's own, a quality between two levels).
    pub fn level(&self) -> u8 {
        let builtin =
            self.model.is_none() && !self.pixel && self.detail_step.is_none() && !self.learned_only;
        let whole = self.quality.fract() == 0.0 && (1.0..=255.0).contains(&self.quality);
        if builtin && whole {
            self.quality as u8
        } else {
            0
        }
    }

    /// The one coder the request names.
    pub fn spec(&self) -> Result<CoderSpec, RequestError> {
        let spec = self.named_spec()?;
        if self.effort > 0 && !matches!(spec, CoderSpec::Learned { .. }) {
            return Err(RequestError::EffortNeedsLearned);
        }
        Ok(spec)
    }

    /// [`Self::spec`] before the effort is checked against it.
    fn named_spec(&self) -> Result<CoderSpec, RequestError> {
        if let Some(s) = self.detail_step {
            check_detail_step(s)?;
        }
        if let Some(s) = self.step {
            if !(s.is_finite() && s > 0.0) {
                return Err(RequestError::Step(s));
            }
        }
        let Some(path) = &self.model else {
            return self.builtin_spec();
        };
        let model = load(path)?;
        match &model {
            Model::Pca(m) => {
                if self.detail_step.is_some() {
                    return Err(RequestError::DetailOverPca);
                }
                let params = CodingParams::Pca {
                    block: m.block,
                    components: self.components.unwrap_or(m.components),
                    step: self.step.unwrap_or(PCA_DEFAULT_STEP),
                };
                Ok(model.coder(params)?)
            }
            Model::Learned(m) => {
                if self.components.is_some() || (self.step.is_some() && !m.has_latent_step()) {
                    return Err(RequestError::StepForFixedModel);
                }
                let latent_step = match self.step {
                    Some(s) if !LATENT_STEPS.contains(&s) => {
                        return Err(RequestError::LatentStep(s))
                    }
                    Some(s) => LatentStep::nearest(f64::from(s)).expect("a positive step"),
                    None => LatentStep::UNIT,
                };
                Ok(CoderSpec::Learned {
                    model: m.clone(),
                    detail_step: self.detail_step,
                    latent_step,
                    policy: self.policy,
                    effort: self.effort,
                })
            }
        }
    }

    /// The pixel coder, or a built-in level (or the levels' model under a detail step).
    fn builtin_spec(&self) -> Result<CoderSpec, RequestError> {
        if self.pixel {
            let step = self.step.unwrap_or(PIXEL_DEFAULT_STEP);
            let whole = (step.fract() == 0.0 && step >= 0.0 && step <= f32::from(u8::MAX))
                .then_some(step as u8);
            if !whole.is_some_and(|s| PIXEL_STEPS.contains(&s)) {
                return Err(RequestError::PixelStep(step));
            }
            if self.components.is_some() {
                return Err(RequestError::ComponentsNeedPca);
            }
            return Ok(CoderSpec::Pixel { step: step as u8 });
        }
        if self.step.is_some() || self.components.is_some() {
            return Err(RequestError::StepForLevels);
        }
        match (self.detail_step, self.learned_only) {
            (Some(_), true) => Err(RequestError::DetailLearnedOnly)?,
            (Some(_), false) => builtin::ladder(self.detail_step),
            (None, true) => builtin::learned_only_quality(self.quality),
            (None, false) => builtin::quality(self.quality),
        }
        .map(|spec| spec.with_policy(self.policy).with_effort(self.effort))
        .map_err(RequestError::BuiltIn)
    }

    /// The coders rate control chooses among, coarsest first: the built-in levels and the
    /// steps above the top ([`builtin::rate_tools`]), or 16 quantizer steps of a PCA model from 724 down to 4, a factor of √2 apart.
    pub fn rate_tools(&self) -> Result<Vec<CoderSpec>, RequestError> {
        let Some(path) = &self.model else {
            if self.components.is_some() {
                return Err(RequestError::ComponentsNeedPca);
            }
            return Ok(builtin::rate_tools(self.learned_only)
                .map_err(RequestError::BuiltIn)?
                .into_iter()
                .map(|spec| spec.with_policy(self.policy).with_effort(self.effort))
                .collect());
        };
        let model = load(path)?;
        let Model::Pca(m) = &model else {
            return Err(RequestError::RateNeedsChoices);
        };
        if self.effort > 0 {
            return Err(RequestError::EffortNeedsLearned);
        }
        (0..MAX_TOOLS as i32)
            .rev()
            .map(|k| {
                let step = 2f32.powf(2.0 + k as f32 / 2.0);
                debug_assert!((pca::MIN_STEP..=pca::MAX_STEP).contains(&step));
                let params = CodingParams::Pca {
                    block: m.block,
                    components: self.components.unwrap_or(m.components),
                    step,
                };
                Ok(model.coder(params)?)
            })
            .collect()
    }
}

fn load(path: &std::path::Path) -> Result<Model, RequestError> {
    Model::load(path).map_err(|cause| RequestError::Model {
        path: path.to_path_buf(),
        cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec_err(request: CoderRequest) -> RequestError {
        match request.spec() {
            Ok(_) => panic!("accepted {request:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn bounds_are_the_formats_and_each_misuse_has_its_error() {
        let level = |detail_step| CoderRequest {
            quality: 4.0,
            detail_step,
            ..CoderRequest::default()
        };
        assert!(level(Some(MIN_DETAIL_STEP)).spec().is_ok());
        assert!(level(Some(MAX_DETAIL_STEP)).spec().is_ok());
        assert!(matches!(
            spec_err(level(Some(MAX_DETAIL_STEP + 1.0))),
            RequestError::DetailStep(_)
        ));
        assert!(matches!(
            spec_err(level(Some(MIN_DETAIL_STEP / 2.0))),
            RequestError::DetailStep(_)
        ));
        let pixel = |step| CoderRequest {
            pixel: true,
            step,
            ..CoderRequest::default()
        };
        assert!(matches!(
            pixel(None).spec(),
            Ok(CoderSpec::Pixel { step: 4 })
        ));
        assert!(matches!(
            spec_err(pixel(Some(2.5))),
            RequestError::PixelStep(_)
        ));
        assert!(matches!(
            spec_err(pixel(Some(65.0))),
            RequestError::PixelStep(_)
        ));
        // An effort refines learned latents only.
        assert!(matches!(
            spec_err(CoderRequest {
                effort: 5,
                ..pixel(None)
            }),
            RequestError::EffortNeedsLearned
        ));
        let pca = CoderRequest {
            model: Some(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("../samples/models/pca8.model"),
            ),
            effort: 5,
            ..CoderRequest::default()
        };
        assert!(matches!(
            spec_err(pca.clone()),
            RequestError::EffortNeedsLearned
        ));
        assert!(matches!(
            pca.rate_tools(),
            Err(RequestError::EffortNeedsLearned)
        ));
        assert!(CoderRequest {
            quality: 4.0,
            effort: 5,
            ..CoderRequest::default()
        }
        .spec()
        .is_ok());
        assert!(matches!(
            spec_err(CoderRequest {
                quality: 4.0,
                step: Some(2.0),
                ..CoderRequest::default()
            }),
            RequestError::StepForLevels
        ));
        assert!(matches!(
            spec_err(CoderRequest {
                step: Some(f32::NAN),
                ..CoderRequest::default()
            }),
            RequestError::Step(_)
        ));
        let pca =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../samples/models/pca8.model");
        assert!(matches!(
            spec_err(CoderRequest {
                model: Some(pca.clone()),
                detail_step: Some(20.0),
                ..CoderRequest::default()
            }),
            RequestError::DetailOverPca
        ));
        let tools = CoderRequest {
            model: Some(pca),
            ..CoderRequest::default()
        }
        .rate_tools()
        .unwrap();
        assert_eq!(tools.len(), MAX_TOOLS);
        assert!(matches!(
            CoderRequest {
                model: Some("no-such.model".into()),
                ..CoderRequest::default()
            }
            .spec(),
            Err(RequestError::Model { .. })
        ));
    }
}
