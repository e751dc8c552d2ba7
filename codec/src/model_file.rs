//! Model files: one safetensors file holding the weights, with the model's JSON configuration
//! in the safetensors metadata under the key `aecodec`. A model's identity is the SHA-256 of
//! the whole file; `.aez` headers name the model they need by that hash.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::{Deserialize, Serialize};

use crate::coders::pca::PcaModel;
use crate::coders::sha256;
use crate::learned::{LearnedInfo, LearnedModel};

/// Metadata key that holds the JSON configuration.
const CONFIG_KEY: &str = "aecodec";
/// Largest model file accepted.
pub const MAX_MODEL_FILE: u64 = 1 << 30;

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}: {cause}")]
    Io {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("model {path} is {size} bytes, above the {MAX_MODEL_FILE}-byte limit")]
    TooLarge { path: PathBuf, size: u64 },
    #[error("not a safetensors model file: {0}")]
    NotSafetensors(String),
    #[error("model file has no \"aecodec\" configuration in its metadata")]
    MissingConfig,
    #[error("model configuration is invalid: {0}")]
    BadConfig(String),
    #[error("tensor {name}: {what}")]
    BadTensor { name: String, what: String },
    #[error("model format version {0} is not supported by this build (it reads version {MODEL_FORMAT_VERSION})")]
    UnsupportedVersion(u32),
    #[error("model {path} has id {actual}, expected {expected}")]
    WrongId {
        path: PathBuf,
        expected: String,
        actual: String,
    },
}

/// Version of the model file layout this build reads and writes.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// Where a model came from: enough to reproduce it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingInfo {
    /// Clips the model was fitted or trained on.
    pub clips: Vec<String>,
    /// Frames used.
    pub frames: u64,
    /// The command line that made it.
    pub command: String,
    /// Wall time of the fit or training, in seconds.
    pub seconds: f64,
}

/// The JSON configuration stored in a model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelConfig {
    /// Block PCA: `block`×`block` RGB patches; tensors `mean` [D] and `basis` [components, D].
    Pca {
        format_version: u32,
        block: u8,
        components: u16,
        training: TrainingInfo,
    },
    /// A learned autoencoder: tensors as [`LearnedWeights::expected_shapes`] lists them.
    Learned {
        format_version: u32,
        #[serde(flatten)]
        info: LearnedInfo,
    },
}

impl ModelConfig {
    fn format_version(&self) -> u32 {
        match self {
            ModelConfig::Pca { format_version, .. }
            | ModelConfig::Learned { format_version, .. } => *format_version,
        }
    }
}

/// A tensor to store: name, shape and f32 values.
pub struct NamedTensor<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub values: &'a [f32],
}

/// Serializes a model file.
pub fn write_model_bytes(config: &ModelConfig, tensors: &[NamedTensor<'_>]) -> Vec<u8> {
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|t| {
            (
                t.name.to_string(),
                t.shape.clone(),
                t.values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            )
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = raw
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("shape matches data"),
            )
        })
        .collect();
    let json = serde_json::to_string(config).expect("config serializes");
    let meta = HashMap::from([(CONFIG_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(meta)).expect("serializing in-memory tensors")
}

/// A parsed model file.
pub struct ModelFile<'a> {
    pub config: ModelConfig,
    tensors: SafeTensors<'a>,
}

impl<'a> ModelFile<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| ModelError::NotSafetensors(e.to_string()))?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(CONFIG_KEY))
            .ok_or(ModelError::MissingConfig)?;
        let config: ModelConfig =
            serde_json::from_str(json).map_err(|e| ModelError::BadConfig(e.to_string()))?;
        if config.format_version() != MODEL_FORMAT_VERSION {
            return Err(ModelError::UnsupportedVersion(config.format_version()));
        }
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::NotSafetensors(e.to_string()))?;
        Ok(Self { config, tensors })
    }

    /// The f32 values of a tensor, checking its shape.
    pub fn tensor(&self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let bad = |what: String| ModelError::BadTensor {
            name: name.into(),
            what,
        };
        let view = self
            .tensors
            .tensor(name)
            .map_err(|_| bad("missing".into()))?;
        if view.dtype() != Dtype::F32 {
            return Err(bad(format!("dtype {:?}, expected F32", view.dtype())));
        }
        if view.shape() != shape {
            return Err(bad(format!("shape {:?}, expected {shape:?}", view.shape())));
        }
        let values: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect();
        if values.iter().any(|v| !v.is_finite()) {
            return Err(bad("holds a non-finite value".into()));
        }
        Ok(values)
    }
}

/// A model ready to code with.
#[derive(Clone)]
pub enum Model {
    Pca(Arc<PcaModel>),
    Learned(Arc<LearnedModel>),
}

impl Model {
    /// Parses model file bytes; the id is their SHA-256.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let file = ModelFile::parse(bytes)?;
        let id = sha256(bytes);
        match &file.config {
            ModelConfig::Pca { .. } => Ok(Model::Pca(Arc::new(PcaModel::from_file(
                &file,
                id,
                bytes.len() as u64,
            )?))),
            ModelConfig::Learned { .. } => Ok(Model::Learned(Arc::new(LearnedModel::from_file(
                &file,
                id,
                bytes.len() as u64,
            )?))),
        }
    }

    /// Reads and parses a model file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let io = |cause| ModelError::Io {
            path: path.to_path_buf(),
            cause,
        };
        let size = std::fs::metadata(path).map_err(io)?.len();
        if size > MAX_MODEL_FILE {
            return Err(ModelError::TooLarge {
                path: path.to_path_buf(),
                size,
            });
        }
        Self::from_bytes(&std::fs::read(path).map_err(io)?)
    }

    pub fn id(&self) -> [u8; 32] {
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
    pub fn find(&self, id: &[u8; 32]) -> Result<Option<Model>, ModelError> {
        if let Some(m) = self.models.iter().find(|m| &m.id() == id) {
            return Ok(Some(m.clone()));
        }
        if let Some(m) = crate::learned::defaults::find(id) {
            return Ok(Some(Model::Learned(m)));
        }
        for dir in &self.searched {
            let path = dir.join(format!("{}.model", hex::encode(id)));
            if path.is_file() {
                let model = Model::load(&path)?;
                if &model.id() != id {
                    return Err(ModelError::WrongId {
                        path,
                        expected: hex::encode(id),
                        actual: hex::encode(model.id()),
                    });
                }
                return Ok(Some(model));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pca_config(version: u32, components: u16) -> ModelConfig {
        ModelConfig::Pca {
            format_version: version,
            block: 4,
            components,
            training: TrainingInfo::default(),
        }
    }

    fn pca_bytes(version: u32, components: u16, basis_rows: usize) -> Vec<u8> {
        let mean = vec![0.5f32; 48];
        let basis = vec![0.1f32; basis_rows * 48];
        write_model_bytes(
            &pca_config(version, components),
            &[
                NamedTensor {
                    name: "mean",
                    shape: vec![48],
                    values: &mean,
                },
                NamedTensor {
                    name: "basis",
                    shape: vec![basis_rows, 48],
                    values: &basis,
                },
            ],
        )
    }

    #[test]
    fn a_valid_model_loads_and_its_id_is_the_file_hash() {
        let bytes = pca_bytes(MODEL_FORMAT_VERSION, 3, 3);
        let model = Model::from_bytes(&bytes).unwrap();
        assert_eq!(model.id(), sha256(&bytes));
        assert_eq!(model.file_bytes(), bytes.len() as u64);
    }

    #[test]
    fn wrong_shapes_versions_and_garbage_are_refused() {
        let shape = Model::from_bytes(&pca_bytes(MODEL_FORMAT_VERSION, 3, 2))
            .err()
            .unwrap();
        assert!(
            matches!(&shape, ModelError::BadTensor { name, .. } if name == "basis"),
            "{shape}"
        );
        let version = Model::from_bytes(&pca_bytes(7, 3, 3)).err().unwrap();
        assert!(
            matches!(version, ModelError::UnsupportedVersion(7)),
            "{version}"
        );
        assert!(matches!(
            Model::from_bytes(b"not a model").err().unwrap(),
            ModelError::NotSafetensors(_)
        ));
        let no_config =
            safetensors::serialize(Vec::<(String, TensorView<'_>)>::new(), None).unwrap();
        assert!(matches!(
            Model::from_bytes(&no_config).err().unwrap(),
            ModelError::MissingConfig
        ));
    }

    #[test]
    fn a_cached_file_whose_hash_is_not_its_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let real = pca_bytes(MODEL_FORMAT_VERSION, 3, 3);
        let claimed = [9u8; 32];
        std::fs::write(
            dir.path().join(format!("{}.model", hex::encode(claimed))),
            &real,
        )
        .unwrap();
        let mut store = ModelStore::new();
        store.search_dir(dir.path().to_path_buf());
        assert!(matches!(
            store.find(&claimed),
            Err(ModelError::WrongId { .. })
        ));
        assert!(store.find(&[1u8; 32]).unwrap().is_none());
    }
}
