//! Model files: one safetensors file holding the weights, with the model's JSON configuration
//! in the safetensors metadata under the key `aecodec`. A model's identity is the SHA-256 of
//! the whole file ([`ModelId`]); `.aez` headers name the model they need by that hash.
//!
//! This module is the file format only: the envelope every configuration shares (`kind`,
//! `format_version`), tensors, limits and ids. What each kind of model holds, and which kinds
//! exist, belong to the coders (`coders::pca`, `learned`) and to [`crate::registry`].

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, TensorView};
use safetensors::SafeTensors;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Metadata key that holds the JSON configuration.
const CONFIG_KEY: &str = "aecodec";
/// Largest model file accepted.
pub const MAX_MODEL_FILE: u64 = 1 << 30;

/// Why a model file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model {path}")]
    Io {
        path: PathBuf,
        #[source]
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
        expected: ModelId,
        actual: ModelId,
    },
}

/// Version of the model file layout this build reads and writes.
pub const MODEL_FORMAT_VERSION: u32 = 1;

/// A model's identity: the SHA-256 of its file. Headers, caches and URLs name models by it,
/// written as 64 lowercase hex digits.
/// Serialized as its 32 bytes (the `.aez` header's field).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
pub struct ModelId(pub [u8; 32]);

impl ModelId {
    /// The id of a model file (or of any byte string that names a built-in coder).
    pub fn of_bytes(bytes: &[u8]) -> Self {
        Self(Sha256::digest(bytes).into())
    }

    /// The 64-digit lowercase hex form.
    pub fn hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses the hex form (either case).
    pub fn from_hex(text: &str) -> Option<Self> {
        let mut id = [0u8; 32];
        hex::decode_to_slice(text, &mut id).ok()?;
        Some(Self(id))
    }

    /// The cache file name of this model: `<hex>.model`.
    pub fn file_name(&self) -> String {
        format!("{}.model", self.hex())
    }
}

impl fmt::Display for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.hex())
    }
}

impl fmt::Debug for ModelId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModelId({})", self.hex())
    }
}

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
    /// A trained model's last validation, as it was saved: its held-out frames coded to
    /// real bitstreams. Models saved without one do not name it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<Validation>,
}

/// How a model coded the frames its training held out, measured on real bitstreams.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Validation {
    /// Bits per pixel of the coded frames.
    pub bpp: f64,
    /// Their RGB PSNR, dB.
    pub psnr: f64,
    /// How many frames.
    pub frames: u64,
}

/// The part of the JSON configuration every model shares; a kind's own fields follow
/// (`{"kind":"pca","format_version":1,"block":8,...}`).
#[derive(Serialize)]
struct Envelope<'a, T> {
    kind: &'a str,
    format_version: u32,
    #[serde(flatten)]
    config: &'a T,
}

#[derive(Deserialize)]
struct EnvelopeHead {
    kind: String,
    format_version: u32,
}

/// A tensor to store: name, shape and f32 values.
pub struct NamedTensor<'a> {
    pub name: &'a str,
    pub shape: Vec<usize>,
    pub values: &'a [f32],
}

/// Serializes a model file of `kind` with its configuration and tensors.
pub fn write_model_bytes<T: Serialize>(
    kind: &str,
    config: &T,
    tensors: &[NamedTensor<'_>],
) -> Vec<u8> {
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
    let envelope = Envelope {
        kind,
        format_version: MODEL_FORMAT_VERSION,
        config,
    };
    let json = serde_json::to_string(&envelope).expect("config serializes");
    let meta = HashMap::from([(CONFIG_KEY.to_string(), json)]);
    safetensors::serialize(views, Some(meta)).expect("serializing in-memory tensors")
}

/// Reads a model file whole, refusing one above [`MAX_MODEL_FILE`] before reading it.
pub fn read_model_file(path: &Path) -> Result<Vec<u8>, ModelError> {
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
    std::fs::read(path).map_err(io)
}

/// A parsed model file.
pub struct ModelFile<'a> {
    kind: String,
    config: serde_json::Value,
    tensors: SafeTensors<'a>,
    /// The file's id.
    pub id: ModelId,
    /// The file's size.
    pub file_bytes: u64,
}

impl<'a> ModelFile<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Self, ModelError> {
        Self::parse_as(bytes, ModelId::of_bytes(bytes))
    }

    /// Parses bytes the caller has already hashed to `id` (a web page hashes with the
    /// browser's SHA-256, many times faster than WebAssembly's).
    pub fn parse_as(bytes: &'a [u8], id: ModelId) -> Result<Self, ModelError> {
        let (_, meta) = SafeTensors::read_metadata(bytes)
            .map_err(|e| ModelError::NotSafetensors(e.to_string()))?;
        let json = meta
            .metadata()
            .as_ref()
            .and_then(|m| m.get(CONFIG_KEY))
            .ok_or(ModelError::MissingConfig)?;
        let config: serde_json::Value =
            serde_json::from_str(json).map_err(|e| ModelError::BadConfig(e.to_string()))?;
        let head =
            EnvelopeHead::deserialize(&config).map_err(|e| ModelError::BadConfig(e.to_string()))?;
        if head.format_version != MODEL_FORMAT_VERSION {
            return Err(ModelError::UnsupportedVersion(head.format_version));
        }
        let tensors = SafeTensors::deserialize(bytes)
            .map_err(|e| ModelError::NotSafetensors(e.to_string()))?;
        Ok(Self {
            kind: head.kind,
            config,
            tensors,
            id,
            file_bytes: bytes.len() as u64,
        })
    }

    /// The kind of model (`"pca"`, `"learned"`): which coder reads the rest.
    pub fn kind(&self) -> &str {
        &self.kind
    }

    /// The kind's own configuration, from the fields beside `kind` and `format_version`.
    pub fn config<T: DeserializeOwned>(&self) -> Result<T, ModelError> {
        T::deserialize(&self.config).map_err(|e| ModelError::BadConfig(e.to_string()))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Toy {
        block: u8,
    }

    fn toy_bytes(values: &[f32]) -> Vec<u8> {
        write_model_bytes(
            "toy",
            &Toy { block: 4 },
            &[NamedTensor {
                name: "mean",
                shape: vec![values.len()],
                values,
            }],
        )
    }

    #[test]
    fn a_file_reads_back_its_kind_config_tensors_and_id() {
        let bytes = toy_bytes(&[1.0, 2.0, 3.0]);
        let file = ModelFile::parse(&bytes).unwrap();
        assert_eq!(file.kind(), "toy");
        assert_eq!(file.config::<Toy>().unwrap(), Toy { block: 4 });
        assert_eq!(file.tensor("mean", &[3]).unwrap(), [1.0, 2.0, 3.0]);
        assert_eq!(file.id, ModelId::of_bytes(&bytes));
        assert_eq!(file.file_bytes, bytes.len() as u64);
        // The envelope's fields come first, as the shipped files have them.
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        assert_eq!(
            meta.metadata().as_ref().unwrap()[CONFIG_KEY],
            r#"{"kind":"toy","format_version":1,"block":4}"#
        );
    }

    #[test]
    fn wrong_shapes_values_versions_and_garbage_are_refused() {
        let bytes = toy_bytes(&[1.0, 2.0, 3.0]);
        let file = ModelFile::parse(&bytes).unwrap();
        assert!(matches!(
            file.tensor("mean", &[4]),
            Err(ModelError::BadTensor { .. })
        ));
        assert!(matches!(
            file.tensor("basis", &[3]),
            Err(ModelError::BadTensor { .. })
        ));
        let nan = toy_bytes(&[f32::NAN]);
        assert!(ModelFile::parse(&nan)
            .unwrap()
            .tensor("mean", &[1])
            .is_err());
        let json = r#"{"kind":"toy","format_version":7,"block":4}"#;
        let meta = HashMap::from([(CONFIG_KEY.to_string(), json.to_string())]);
        let v7 =
            safetensors::serialize(Vec::<(String, TensorView<'_>)>::new(), Some(meta)).unwrap();
        assert!(matches!(
            ModelFile::parse(&v7),
            Err(ModelError::UnsupportedVersion(7))
        ));
        assert!(matches!(
            ModelFile::parse(b"not a model"),
            Err(ModelError::NotSafetensors(_))
        ));
        let no_config =
            safetensors::serialize(Vec::<(String, TensorView<'_>)>::new(), None).unwrap();
        assert!(matches!(
            ModelFile::parse(&no_config),
            Err(ModelError::MissingConfig)
        ));
    }

    #[test]
    fn ids_print_and_parse_as_hex() {
        let id = ModelId::of_bytes(b"abc");
        assert_eq!(
            id.hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(ModelId::from_hex(&id.hex().to_uppercase()), Some(id));
        assert_eq!(ModelId::from_hex("ba78"), None);
        assert_eq!(id.file_name(), format!("{id}.model"));
    }
}
