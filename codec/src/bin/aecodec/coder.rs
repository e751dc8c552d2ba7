//! Which coder a command line asks for: a model, the pixel coder or a built-in level, fixed or
//! under rate control. The checks are the library's ([`aecodec::registry::CoderRequest`]);
//! this only names the flag a refusal is about.

use aecodec::ratecontrol::RateTarget;
use aecodec::registry::{CoderRequest, CoderSpec, RequestError};
use anyhow::Result;

/// The latent steps `eval` runs a shallow learned model at by default: half to four times the
/// trained step, about 1.4x apart.
pub(crate) const DEFAULT_EVAL_LATENT_STEPS: [f32; 7] = [0.5, 0.7, 1.0, 1.4, 2.0, 2.8, 4.0];

/// How `encode` codes: with one coder, or at a bitrate, choosing among several per group of
/// pictures.
pub(crate) enum EncodePlan {
    Fixed(Box<CoderSpec>),
    AtRate {
        tools: Vec<CoderSpec>,
        target: RateTarget,
    },
}

impl EncodePlan {
    /// The plan for `request`, at `bitrate` if one is given.
    pub(crate) fn new(request: &CoderRequest, bitrate: Option<RateTarget>) -> Result<Self> {
        let plan = match bitrate {
            None => request.spec().map(|spec| EncodePlan::Fixed(Box::new(spec))),
            Some(target) => request
                .rate_tools()
                .map(|tools| EncodePlan::AtRate { tools, target }),
        };
        plan.map_err(with_flag)
    }
}

/// A refused request, with the flag it is about.
pub(crate) fn with_flag(e: RequestError) -> anyhow::Error {
    let flag = match &e {
        RequestError::DetailStep(_) | RequestError::DetailOverPca => "--detail-step",
        RequestError::Step(_)
        | RequestError::PixelStep(_)
        | RequestError::LatentStep(_)
        | RequestError::StepForLevels
        | RequestError::StepForFixedModel => "--step",
        RequestError::ComponentsNeedPca => "--components",
        RequestError::DetailLearnedOnly => "--learned-only",
        RequestError::RateNeedsChoices => "--bitrate",
        RequestError::EffortNeedsLearned => "--effort",
        RequestError::Model { .. } => "--model",
        RequestError::BuiltIn(_) | RequestError::Coder(_) => {
            return anyhow::Error::new(e);
        }
    };
    anyhow::Error::new(e).context(flag)
}
