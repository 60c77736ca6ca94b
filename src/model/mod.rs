//! Model file and CPU inference engine (DESIGN S7).
//!
//! A model file is safetensors with fp16 weights and JSON metadata (`docs/model-format.md`):
//! [`mod@format`] reads, validates and writes it, [`init`] draws the weights of a new one, the
//! graph module turns the `architecture` metadata into a checked [`Graph`] with f32 weights, the
//! engine module runs that graph fast on the CPU ([`Engine`]: im2col + gemm or our AVX-512
//! kernel, batched, multi-threaded) and the reference module runs it slowly in f64, the yardstick
//! for the engine. Those three are hidden from the documentation: the integration tests and
//! benchmarks compare their kernels one by one; callers reach the engine through
//! [`Model::engine`] or an `Analyzer`.

#[doc(hidden)]
pub mod engine;
pub mod format;
#[doc(hidden)]
pub mod graph;
pub mod init;
#[doc(hidden)]
pub mod reference;

#[allow(unsafe_code)]
mod matmul;
// The AVX-512 intrinsics are stable since Rust 1.89.
#[allow(unsafe_code)]
#[clippy::msrv = "1.89"]
#[doc(hidden)]
pub mod simd;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::classes::{LocationClass, Role};
use crate::tracer::Tracer;

pub use engine::{Engine, EngineConfig, Kernel, Prediction};
pub use format::{ModelWriter, write_model};
pub use graph::{Architecture, Graph, Head, Layer};

/// The model file version this library reads (`uptake.model_version`); it names the layer
/// vocabulary, the metadata keys and their meaning.
/// cbindgen:ignore
pub const MODEL_VERSION: u32 = 1;

/// The default model, embedded in the library: trained with `uptake-train` (strategy VI on a
/// phantom cohort; provenance in its metadata, commands in docs/training-results.md).
static EMBEDDED_MODEL: &[u8] = include_bytes!("../../models/default.safetensors");

/// Why a model file was rejected or inference refused its input.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("cannot read model file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write model file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("model file is {bytes} bytes; at most {max} are accepted")]
    TooLarge { bytes: u64, max: u64 },
    #[error("not a valid safetensors file: {0}")]
    Container(String),
    #[error("model metadata lacks the key {0:?}")]
    MissingMetadata(&'static str),
    #[error("model metadata {key:?} is invalid: {reason}")]
    BadMetadata { key: &'static str, reason: String },
    #[error(
        "model file version {found:?} is not supported; this library reads version {supported}"
    )]
    UnsupportedVersion { found: String, supported: u32 },
    #[error("architecture: layer {index} of {section} has unknown type {kind:?}")]
    UnknownLayer {
        section: String,
        index: usize,
        kind: String,
    },
    #[error("architecture: {0}")]
    Architecture(String),
    #[error("model file lacks the tensor {0:?}")]
    MissingTensor(String),
    #[error("model file holds the tensor {0:?}, which the architecture does not use")]
    UnexpectedTensor(String),
    #[error("tensor {name:?} has shape {found:?}; the architecture needs {expected:?}")]
    TensorShape {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("tensor {name:?} is {found}; model weights must be F16")]
    TensorDtype { name: String, found: String },
    #[error("tensor {name:?} holds a non-finite value at element {index}")]
    NonFiniteWeight { name: String, index: usize },
    #[error("inference input: {0}")]
    Input(String),
    #[error("engine: {0}")]
    Engine(String),
}

/// How regions are reformatted into network input (DESIGN S5). The reformation module's spec is
/// stored in the model file, so the input always matches what the network was trained on.
pub use crate::mpr::MprSpec as InputSpec;

/// Where a model's weights came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingInfo {
    /// True for a randomly initialised model whose outputs mean nothing.
    pub untrained: bool,
    /// Training data (e.g. "phantom v1, 400 studies").
    #[serde(default)]
    pub data: String,
    /// Training strategy (S12: I … VI) or how the weights were made.
    #[serde(default)]
    pub strategy: String,
    /// When training ended (ISO 8601), empty when not applicable.
    #[serde(default)]
    pub date: String,
    /// Evaluation figures by name (e.g. "average_precision").
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// Free text.
    #[serde(default)]
    pub notes: String,
}

/// Everything a model file says about itself besides its weights.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelMetadata {
    /// `uptake.model_version`.
    pub model_version: u32,
    /// A short name of these weights, quoted in reports.
    pub model_id: String,
    pub architecture: Architecture,
    /// Location classes (S6), indexed by network output.
    pub classes: Vec<LocationClass>,
    pub input: InputSpec,
    pub training: TrainingInfo,
    /// Operating point: a finding is suspicious when p_suspicious ≥ this (a distant one: ≥
    /// `distant_threshold` when that is set).
    pub threshold: f32,
    /// Separate operating point of distant findings (staging roles M1a, M1b, M1c); `None`: the
    /// single `threshold` for all.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub distant_threshold: Option<f32>,
    /// Operating points of the tracers that have their own (physiological uptake differs by
    /// tracer); a tracer not listed uses `threshold` and `distant_threshold`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub operating_points: BTreeMap<Tracer, OperatingPoints>,
}

/// One tracer's operating points on p_suspicious.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatingPoints {
    /// Of local and regional findings (T, N).
    pub threshold: f32,
    /// Of distant findings (M1a, M1b, M1c).
    pub distant_threshold: f32,
}

impl OperatingPoints {
    /// One operating point for every finding.
    pub fn single(threshold: f32) -> Self {
        OperatingPoints {
            threshold,
            distant_threshold: threshold,
        }
    }

    /// The operating point of findings whose location has `role`.
    pub fn of(&self, role: Role) -> f32 {
        if role.is_distant() {
            self.distant_threshold
        } else {
            self.threshold
        }
    }
}

impl ModelMetadata {
    /// Checks the fields that do not depend on the weights.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.model_version != MODEL_VERSION {
            return Err(ModelError::UnsupportedVersion {
                found: self.model_version.to_string(),
                supported: MODEL_VERSION,
            });
        }
        if self.model_id.is_empty() {
            return Err(ModelError::BadMetadata {
                key: format::KEY_MODEL_ID,
                reason: "empty".into(),
            });
        }
        if self.classes.is_empty()
            || self
                .classes
                .iter()
                .enumerate()
                .any(|(i, c)| c.id as usize != i)
        {
            return Err(ModelError::BadMetadata {
                key: format::KEY_CLASSES,
                reason: "classes must be non-empty with ids 0, 1, 2, … in order".into(),
            });
        }
        self.input.validate().map_err(|e| ModelError::BadMetadata {
            key: format::KEY_INPUT,
            reason: e.to_string(),
        })?;
        // (key, which value of it, value): a tracer's pair is named, e.g. "fdg.threshold: ".
        let mut thresholds = vec![(format::KEY_THRESHOLD, String::new(), self.threshold)];
        if let Some(t) = self.distant_threshold {
            thresholds.push((format::KEY_DISTANT_THRESHOLD, String::new(), t));
        }
        for (tracer, p) in &self.operating_points {
            for (field, t) in [
                ("threshold", p.threshold),
                ("distant_threshold", p.distant_threshold),
            ] {
                let name = format!("{}.{field}: ", tracer.name());
                thresholds.push((format::KEY_OPERATING_POINTS, name, t));
            }
        }
        for (key, field, t) in thresholds {
            if !(t > 0.0 && t < 1.0) {
                return Err(ModelError::BadMetadata {
                    key,
                    reason: format!("{field}{t} is not strictly between 0 and 1"),
                });
            }
        }
        Ok(())
    }
}

/// A loaded, validated model: metadata plus the graph with weights widened to f32.
#[derive(Debug, Clone)]
pub struct Model {
    metadata: ModelMetadata,
    graph: Arc<Graph>,
}

impl Model {
    /// Reads and validates a model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let bytes = format::read_file(path.as_ref())?;
        Self::from_bytes(&bytes)
    }

    /// Parses and validates a model file held in memory.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ModelError> {
        let file = format::parse(bytes)?;
        let graph = Graph::build(&file.metadata, &file.tensors)?;
        Ok(Self {
            metadata: file.metadata,
            graph: Arc::new(graph),
        })
    }

    /// The model embedded in the library.
    pub fn embedded() -> Result<Self, ModelError> {
        Self::from_bytes(EMBEDDED_MODEL)
    }

    /// The embedded model file's bytes.
    pub fn embedded_bytes() -> &'static [u8] {
        EMBEDDED_MODEL
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    pub fn classes(&self) -> &[LocationClass] {
        &self.metadata.classes
    }

    pub fn input_spec(&self) -> &InputSpec {
        &self.metadata.input
    }

    /// Operating point of local and regional findings (and of all when the model has one), for
    /// a tracer without its own.
    pub fn threshold(&self) -> f32 {
        self.metadata.threshold
    }

    /// Operating point of distant findings (M1a, M1b, M1c), for a tracer without its own.
    pub fn distant_threshold(&self) -> f32 {
        self.metadata
            .distant_threshold
            .unwrap_or(self.metadata.threshold)
    }

    /// The operating points of a study with this tracer: its own where the model has them,
    /// else [`threshold`](Self::threshold) and [`distant_threshold`](Self::distant_threshold).
    pub fn operating_points(&self, tracer: Tracer) -> OperatingPoints {
        self.metadata
            .operating_points
            .get(&tracer)
            .copied()
            .unwrap_or(OperatingPoints {
                threshold: self.threshold(),
                distant_threshold: self.distant_threshold(),
            })
    }

    pub fn model_id(&self) -> &str {
        &self.metadata.model_id
    }

    /// False for a randomly initialised model (its outputs carry no meaning).
    pub fn is_trained(&self) -> bool {
        !self.metadata.training.untrained
    }

    /// The validated graph with f32 weights.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    pub(crate) fn graph_arc(&self) -> Arc<Graph> {
        Arc::clone(&self.graph)
    }

    /// A CPU engine for this model.
    pub fn engine(&self, config: EngineConfig) -> Result<Engine, ModelError> {
        Engine::new(self, config)
    }
}
