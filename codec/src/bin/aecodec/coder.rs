//! Which coder a command line asks for: a model, the pixel coder or a built-in level, fixed or
//! under rate control.

use std::path::Path;

use aecodec::learned::LatentStep;
use aecodec::ratecontrol::RateTarget;
use aecodec::registry::{CoderSpec, Model};
use anyhow::{bail, Context, Result};

/// The latent steps `eval` runs a shallow learned model at by default: half to four times the
/// trained step, about 1.4x apart.
pub(crate) const DEFAULT_EVAL_LATENT_STEPS: [f32; 7] = [0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0];

/// The latent steps `encode --step` takes for a learned model (the grid's ends, e^±4, are
/// just beyond).
pub(crate) const LATENT_STEPS: std::ops::RangeInclusive<f32> = 0.02..=50.0;

/// The coder `encode` uses: the model given, the pixel coder, or the built-in learned model.
pub(crate) fn coder_spec(
    model: Option<&Path>,
    pixel: bool,
    quality: u8,
    step: Option<f32>,
    components: Option<u16>,
    detail_step: Option<f32>,
) -> Result<CoderSpec> {
    if let Some(s) = detail_step {
        let (min, max) = (
            aecodec::coders::detail::MIN_STEP,
            aecodec::coders::detail::MAX_STEP,
        );
        if !(min..=max).contains(&s) {
            bail!("--detail-step must be from {min} to {max}, got {s}");
        }
    }
    if let Some(s) = step {
        if !(s.is_finite() && s > 0.0) {
            bail!("--step must be a positive number, got {s}");
        }
    }
    if model.is_none() && !pixel {
        if step.is_some() || components.is_some() {
            bail!("--step and --components need --pixel or a PCA --model; the built-in learned models take --quality");
        }
        let spec = match detail_step {
            Some(_) => aecodec::registry::builtin::ladder(detail_step),
            None => aecodec::registry::builtin::level(quality),
        };
        return spec.context("loading the built-in model");
    }
    let Some(path) = model else {
        let step = step.unwrap_or(4.0);
        if step.fract() != 0.0 || !(1.0..=64.0).contains(&step) {
            bail!("the pixel coder's --step is an integer from 1 to 64, got {step}");
        }
        if components.is_some() {
            bail!("--components needs a PCA --model");
        }
        return Ok(CoderSpec::Pixel { step: step as u8 });
    };
    let model = Model::load(path).with_context(|| format!("loading model {}", path.display()))?;
    match &model {
        Model::Pca(m) => {
            if detail_step.is_some() {
                bail!("--detail-step adds a detail layer to a learned model, not to a PCA one");
            }
            let params = aecodec::container::CodingParams::Pca {
                block: m.block,
                components: components.unwrap_or(m.components),
                step: step.unwrap_or(8.0),
            };
            Ok(model.coder(params)?)
        }
        Model::Learned(m) => {
            if components.is_some() || (step.is_some() && !m.has_latent_step()) {
                bail!("--step and --components are for PCA models and learned models of the shallow kind; this learned model's quality is fixed by its training (add a detail layer with --detail-step)");
            }
            let latent_step = match step {
                Some(s) if !(LATENT_STEPS.contains(&s)) => bail!(
                    "a learned model's --step is from {} to {}, got {s}",
                    LATENT_STEPS.start(),
                    LATENT_STEPS.end()
                ),
                Some(s) => LatentStep::nearest(f64::from(s)).expect("a positive step"),
                None => LatentStep::UNIT,
            };
            Ok(CoderSpec::Learned {
                model: m.clone(),
                detail_step,
                latent_step,
            })
        }
    }
}

/// How `encode` codes: with one coder, or at a bitrate, choosing among several per group of
/// pictures.
pub(crate) enum EncodePlan {
    Fixed(Box<CoderSpec>),
    AtRate {
        tools: Vec<CoderSpec>,
        target: RateTarget,
    },
}

/// The tools rate control chooses among: the built-in learned models, lowest quality first,
/// or a ladder of quantizer steps of a PCA model.
pub(crate) fn rate_tools(model: Option<&Path>, components: Option<u16>) -> Result<Vec<CoderSpec>> {
    let Some(path) = model else {
        if components.is_some() {
            bail!("--components needs a PCA --model");
        }
        return (1..=aecodec::registry::builtin::LEVELS)
            .map(|q| aecodec::registry::builtin::level(q).context("loading the built-in models"))
            .collect();
    };
    let model = Model::load(path).with_context(|| format!("loading model {}", path.display()))?;
    let Model::Pca(m) = &model else {
        bail!("--bitrate switches between models or steps: it takes the built-in learned models or a PCA --model, not one learned model");
    };
    // Steps from 4 to 724, a factor of sqrt(2) apart: coarsest (smallest files) first.
    (0..aecodec::container::MAX_TOOLS as i32)
        .rev()
        .map(|k| {
            let params = aecodec::container::CodingParams::Pca {
                block: m.block,
                components: components.unwrap_or(m.components),
                step: 2f32.powf(2.0 + k as f32 / 2.0),
            };
            Ok(model.coder(params)?)
        })
        .collect()
}
