//! Which models and coders exist and where they come from: a model file parsed into the
//! coder's model ([`Model`]), the coder a stream uses ([`CoderSpec`]), the models a decoder
//! may use ([`ModelStore`]: given files, the built-in ones, the cache directory) and the coder
//! a stream's header calls for. It sits above the coders and [`crate::model_file`], which
//! know nothing of each other's kinds.

pub mod builtin;
mod request;

pub use request::{check_detail_step, CoderRequest, RequestError, LATENT_STEPS};

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::coders::pca::{self, PcaModel};
use crate::coders::{BasePolicy, DetailedCoder};
use crate::coders::{CoderError, FrameCoder, PcaCoder, PixelCoder, PIXEL_MODEL_NAME};
use crate::container::{CodingParams, CodingTool, Header};
use crate::learned::{LatentStep, LearnedCoder, LearnedModel, ResidualCoder};
use crate::model_file::{read_model_file, ModelError, ModelFile, ModelId};

/// A model ready to code with.
#[derive(Clone)]
pub enum Model {
    Pca(Arc<PcaModel>),
    Learned(Arc<LearnedModel>),
}

impl Model {
    /// Parses model file bytes; the id is their SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        Self::from_file(&ModelFile::parse(bytes)?)
    }

    /// Parses model file bytes that the caller has hashed to `id` (see [`ModelFile::parse_as`]).
    pub fn from_bytes_as(bytes: &[u8], id: ModelId) -> Result<Self, ModelError> {
        Self::from_file(&ModelFile::parse_as(bytes, id)?)
    }

    fn from_file(file: &ModelFile) -> Result<Self, ModelError> {
        match file.kind() {
            PcaModel::KIND => Ok(Model::Pca(Arc::new(PcaModel::from_file(file)?))),
            LearnedModel::KIND => Ok(Model::Learned(Arc::new(LearnedModel::from_file(file)?))),
            other => Err(ModelError::BadConfig(format!(
                "unknown model kind {other:?} (this build reads {:?} and {:?})",
                PcaModel::KIND,
                LearnedModel::KIND
            ))),
        }
    }

    /// Reads and parses a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        Self::from_bytes(&read_model_file(path)?)
    }

    pub fn id(&self) -> ModelId {
        match self {
            Model::Pca(m) => m.id,
            Model::Learned(m) => m.id,
        }
    }

    /// Size of the model file: what a client downloads once.
    pub fn file_bytes(&self) -> u64 {
        match self {
            Model::Pca(m) => m.file_bytes,
            Model::Learned(m) => m.file_bytes,
        }
    }

    /// A coder spec for coding with this model at these parameters, checking that they fit.
    pub fn coder(&self, params: CodingParams) -> Result<CoderSpec, CoderError> {
        match (self, params) {
            (
                Model::Pca(m),
                CodingParams::Pca {
                    block,
                    components,
                    step,
                },
            ) if block == m.block
                && components >= 1
                && components <= m.components
                && (pca::MIN_STEP..=pca::MAX_STEP).contains(&step) =>
            {
                Ok(CoderSpec::Pca {
                    model: m.clone(),
                    components,
                    step,
                })
            }
            (Model::Learned(m), CodingParams::Learned { .. }) => Ok(CoderSpec::Learned {
                model: m.clone(),
                detail_step: None,
                latent_step: LatentStep::UNIT,
                policy: BasePolicy::default(),
                effort: 0,
            }),
            (Model::Learned(m), CodingParams::LearnedDetail { detail_step, .. })
                if check_detail_step(detail_step).is_ok() =>
            {
                Ok(CoderSpec::Learned {
                    model: m.clone(),
                    detail_step: Some(detail_step),
                    latent_step: LatentStep::UNIT,
                    policy: BasePolicy::default(),
                    effort: 0,
                })
            }
            (Model::Learned(_), p) => Err(CoderError::Incompatible {
                kind: "learned",
                params: format!("{p:?}"),
            }),
            (Model::Pca(m), p) => Err(CoderError::Incompatible {
                kind: "PCA",
                params: format!(
                    "{p:?} (it has {} components of {}x{} blocks; steps from {} to {})",
                    m.components,
                    m.block,
                    m.block,
                    pca::MIN_STEP,
                    pca::MAX_STEP
                ),
            }),
        }
    }
}

/// Which coder a stream uses, with everything needed to build one and fill the header.
#[derive(Clone)]
pub enum CoderSpec {
    /// Built into the binary: no model file.
    Pixel { step: u8 },
    /// Block PCA with a fitted model.
    Pca {
        model: Arc<PcaModel>,
        components: u16,
        step: f32,
    },
    /// A learned autoencoder with a hyperprior, and a detail layer at this quantizer step if
    /// there is one.
    Learned {
        model: Arc<LearnedModel>,
        detail_step: Option<f32>,
        /// The step the encoder quantizes the latent with, for a model that has one
        /// ([`LatentStep`]); decoders read it from each group of pictures.
        latent_step: LatentStep,
        /// Where the encoder puts the learned picture (with a detail layer; decoders read
        /// whatever a file holds).
        policy: BasePolicy,
        /// Gradient steps the encoder refines each intra frame's latent with
        /// ([`crate::learned::refine`]; 0: the analysis transform's latent as it is).
        effort: u16,
    },
}

impl CoderSpec {
    /// The identity that goes into the header's `model_id`.
    pub fn model_id(&self) -> ModelId {
        match self {
            CoderSpec::Pixel { .. } => ModelId::of_bytes(PIXEL_MODEL_NAME.as_bytes()),
            CoderSpec::Pca { model, .. } => model.id,
            CoderSpec::Learned { model, .. } => model.id,
        }
    }

    /// Size of the model file a client must fetch once.
    pub fn model_bytes(&self) -> u64 {
        match self {
            CoderSpec::Pixel { .. } => 0,
            CoderSpec::Pca { model, .. } => model.file_bytes,
            CoderSpec::Learned { model, .. } => model.file_bytes,
        }
    }

    /// The tool a header lists for this coder.
    pub fn tool(&self) -> CodingTool {
        CodingTool {
            model_id: self.model_id(),
            model_bytes: self.model_bytes(),
            coding: self.params(),
        }
    }

    pub fn params(&self) -> CodingParams {
        match self {
            CoderSpec::Pixel { step } => CodingParams::Pixel { step: *step },
            CoderSpec::Pca {
                model,
                components,
                step,
            } => CodingParams::Pca {
                block: model.block,
                components: *components,
                step: *step,
            },
            CoderSpec::Learned {
                model,
                detail_step: None,
                ..
            } => CodingParams::Learned {
                quality: model.info.quality,
            },
            CoderSpec::Learned {
                model,
                detail_step: Some(step),
                ..
            } => CodingParams::LearnedDetail {
                quality: model.info.quality,
                detail_step: *step,
            },
        }
    }

    /// The same coder with the encoder putting the learned picture where `policy` says (a
    /// learned model with a detail layer; others have one way to code).
    pub fn with_policy(mut self, policy: BasePolicy) -> Self {
        if let CoderSpec::Learned { policy: p, .. } = &mut self {
            *p = policy;
        }
        self
    }

    /// The same coder with the encoder refining each intra frame's latent with `effort`
    /// gradient steps (a learned model; others ignore it).
    pub fn with_effort(mut self, effort: u16) -> Self {
        if let CoderSpec::Learned { effort: e, .. } = &mut self {
            *e = effort;
        }
        self
    }

    /// The stride frames are padded to.
    pub fn stride(&self) -> u32 {
        self.params().stride()
    }

    /// A coder for frames of the given coded size.
    pub fn build(&self, coded_width: u32, coded_height: u32) -> Box<dyn FrameCoder> {
        match self {
            CoderSpec::Pixel { step } => {
                Box::new(PixelCoder::new(*step, coded_width, coded_height))
            }
            CoderSpec::Pca {
                model,
                components,
                step,
            } => Box::new(PcaCoder::new(
                model.clone(),
                *components,
                *step,
                coded_width,
                coded_height,
            )),
            CoderSpec::Learned {
                model,
                detail_step: None,
                latent_step,
                effort,
                ..
            } => Box::new(
                LearnedCoder::new(model.clone(), coded_width, coded_height)
                    .with_latent_step(*latent_step)
                    .with_effort(*effort),
            ),
            CoderSpec::Learned {
                model,
                detail_step: Some(step),
                latent_step,
                policy,
                effort,
            } => {
                let base = || -> Box<dyn FrameCoder> {
                    Box::new(
                        LearnedCoder::new(model.clone(), coded_width, coded_height)
                            .with_latent_step(*latent_step)
                            .with_effort(*effort),
                    )
                };
                let coder = DetailedCoder::new(base(), base(), *step, coded_width, coded_height)
                    .with_policy(*policy);
                // A shallow model codes at any step, residuals too: its files may carry
                // learned residuals, and a decoder must be able to read them.
                Box::new(match model.has_latent_step() {
                    true => coder.with_residual(Box::new(ResidualCoder::new(
                        model.clone(),
                        coded_width,
                        coded_height,
                        *latent_step,
                    ))),
                    false => coder,
                })
            }
        }
    }
}

/// Where downloaded and installed models live: `$AECODEC_MODELS`, else
/// `~/.cache/aecodec/models`.
pub fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("AECODEC_MODELS") {
        return PathBuf::from(dir);
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("aecodec").join("models")
}

/// The models a decoder may use, found by id.
#[derive(Clone, Default)]
pub struct ModelStore {
    models: Vec<Model>,
    searched: Vec<PathBuf>,
}

impl ModelStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// A store holding the given model files, that also searches the model cache
    /// (`$AECODEC_MODELS`, else `~/.cache/aecodec/models`).
    pub fn with_files(paths: &[PathBuf]) -> Result<Self, ModelError> {
        let mut store = Self::new();
        for p in paths {
            store.add(Model::load(p)?);
        }
        store.search_dir(cache_dir());
        Ok(store)
    }

    /// Adds a loaded model.
    pub fn add(&mut self, model: Model) {
        self.models.push(model);
    }

    /// Also looks for `<hex id>.model` files in `dir` when a model is asked for.
    pub fn search_dir(&mut self, dir: PathBuf) {
        self.searched.push(dir);
    }

    /// The model with this id: one added, a default model built into the binary, or
    /// `<hex id>.model` in a searched directory.
    pub fn find(&self, id: &ModelId) -> Result<Option<Model>, ModelError> {
        if let Some(m) = self.models.iter().find(|m| &m.id() == id) {
            return Ok(Some(m.clone()));
        }
        if let Some(m) = builtin::find(id) {
            return Ok(Some(Model::Learned(m)));
        }
        for dir in &self.searched {
            let path = dir.join(id.file_name());
            if path.is_file() {
                let model = Model::load(&path)?;
                if &model.id() != id {
                    return Err(ModelError::WrongId {
                        path,
                        expected: *id,
                        actual: model.id(),
                    });
                }
                return Ok(Some(model));
            }
        }
        Ok(None)
    }

    /// The coders for every tool of a stream's header, in the header's order, their models
    /// found here by id. Each model is looked up once, however many tools use it (a
    /// rate-controlled PCA stream has 16).
    pub fn coders_for(&self, header: &Header) -> Result<Vec<CoderSpec>, CoderError> {
        let mut found: Vec<Model> = Vec::new();
        let mut coder_for = |tool: &CodingTool| -> Result<CoderSpec, CoderError> {
            let spec = match tool.coding {
                CodingParams::Pixel { step } => CoderSpec::Pixel { step },
                params => {
                    if !found.iter().any(|m| m.id() == tool.model_id) {
                        found.push(
                            self.find(&tool.model_id)?
                                .ok_or(CoderError::ModelUnavailable(tool.model_id))?,
                        );
                    }
                    let model = found.iter().find(|m| m.id() == tool.model_id);
                    model.expect("found above").coder(params)?
                }
            };
            if spec.model_id() != tool.model_id {
                return Err(CoderError::WrongModel {
                    needed: tool.model_id,
                    given: spec.model_id(),
                });
            }
            Ok(spec)
        };
        header.tools.iter().map(&mut coder_for).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_file::TrainingInfo;

    fn pca_bytes(components: u16) -> Vec<u8> {
        let patches: Vec<f32> = (0..48 * 8).map(|i| ((i * 37) % 251) as f32).collect();
        let mut model = PcaModel::fit(4, &patches, TrainingInfo::default());
        model.components = components;
        model.basis.truncate(usize::from(components) * 48);
        model.to_bytes()
    }

    #[test]
    fn a_valid_model_loads_and_its_id_is_the_file_hash() {
        let bytes = pca_bytes(3);
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.id(), ModelId::of_bytes(&bytes));
        assert_eq!(model.file_bytes(), bytes.len() as u64);
        assert!(matches!(model, Model::Pca(_)));
    }

    #[test]
    fn shipped_models_write_back_to_their_own_bytes() {
        // The format split must not change a byte of a model file: ids name models.
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for name in ["pca8.model", "learned-q3.model"] {
            let bytes = std::fs::read(root.join("samples/models").join(name)).unwrap();
            let rewritten = match Model::from_bytes(&bytes).unwrap() {
                Model::Pca(m) => m.to_bytes(),
                Model::Learned(m) => LearnedModel::file_bytes_for(&m.info, &m.weights),
            };
            assert!(rewritten == bytes, "{name} does not round-trip");
        }
    }

    #[test]
    fn unknown_kinds_are_refused() {
        let bytes = crate::model_file::write_model_bytes(
            "wavelet",
            &std::collections::BTreeMap::<String, u8>::new(),
            &[],
        );
        let err = Model::from_bytes(&bytes).err().unwrap();
        assert!(err.to_string().contains("wavelet"), "{err}");
    }

    #[test]
    fn a_cached_file_whose_hash_is_not_its_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let claimed = ModelId([9u8; 32]);
        std::fs::write(dir.path().join(claimed.file_name()), pca_bytes(3)).unwrap();
        let mut store = ModelStore::new();
        store.search_dir(dir.path().to_path_buf());
        assert!(matches!(
            store.find(&claimed),
            Err(ModelError::WrongId { .. })
        ));
        assert!(store.find(&ModelId([1u8; 32])).unwrap().is_none());
    }
}
