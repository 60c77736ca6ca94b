//! The model file: safetensors with fp16 weights and uptake's metadata keys
//! (`docs/model-format.md`).
//!
//! Reading goes through the `safetensors` crate (bounds- and overlap-checked views, no copy)
//! after our own limits on the file and header sizes, so a hostile file costs at most
//! [`MAX_MODEL_BYTES`] of memory. Writing is our own: the header is emitted with sorted keys so
//! that the same weights always give the same bytes.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use half::f16;
use safetensors::{Dtype, SafeTensors};
use serde::de::{Error as _, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use super::{
    Architecture, InputSpec, MODEL_VERSION, Model, ModelError, ModelMetadata, OperatingPoints,
    TrainingInfo,
};
use crate::Tracer;
use crate::classes::LocationClass;

/// Metadata key: model file version, a decimal integer ("1").
pub const KEY_VERSION: &str = "uptake.model_version";
/// Metadata key: short name of the weights.
pub const KEY_MODEL_ID: &str = "model_id";
/// Metadata key: the layer graph (JSON, [`Architecture`]).
pub const KEY_ARCHITECTURE: &str = "architecture";
/// Metadata key: the S6 class table (JSON list of [`LocationClass`]).
pub const KEY_CLASSES: &str = "classes";
/// Metadata key: the S5 reformation (JSON, [`InputSpec`]).
pub const KEY_INPUT: &str = "input";
/// Metadata key: provenance (JSON, [`TrainingInfo`]).
pub const KEY_TRAINING: &str = "training";
/// Metadata key: operating threshold on p_suspicious, a decimal number.
pub const KEY_THRESHOLD: &str = "threshold";
/// Metadata key (optional): operating threshold of distant findings (M1a, M1b, M1c), a decimal
/// number; absent, `threshold` holds for all.
pub const KEY_DISTANT_THRESHOLD: &str = "distant_threshold";
/// Metadata key (optional): operating points of tracers that have their own (JSON object by
/// tracer, e.g. `{"fdg": {"threshold": 0.5, "distant_threshold": 0.5}}`); absent, every tracer
/// uses `threshold` and `distant_threshold`.
pub const KEY_OPERATING_POINTS: &str = "operating_points";

/// Largest model file accepted (the v1 model is about 1.5 MB).
/// cbindgen:ignore
pub const MAX_MODEL_BYTES: u64 = 64 << 20;
/// Largest safetensors JSON header accepted (the v1 header is a few kB).
/// cbindgen:ignore
pub const MAX_HEADER_BYTES: u64 = 1 << 20;

/// A tensor of f32 values in row-major order (last index fastest).
#[derive(Debug, Clone, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub values: Vec<f32>,
}

/// A parsed model file before its graph is built.
#[derive(Debug)]
pub struct ModelFile {
    pub metadata: ModelMetadata,
    /// Weights widened from fp16, by tensor name.
    pub tensors: BTreeMap<String, Tensor>,
}

/// Reads a model file, refusing one larger than [`MAX_MODEL_BYTES`] before allocating.
pub fn read_file(path: &Path) -> Result<Vec<u8>, ModelError> {
    let io = |source| ModelError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(io)?;
    let bytes = file.metadata().map_err(io)?.len();
    if bytes > MAX_MODEL_BYTES {
        return Err(ModelError::TooLarge {
            bytes,
            max: MAX_MODEL_BYTES,
        });
    }
    let mut buf = Vec::with_capacity(bytes as usize);
    // `take` guards against a file that grows while we read it.
    file.take(MAX_MODEL_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(io)?;
    if buf.len() as u64 > MAX_MODEL_BYTES {
        return Err(ModelError::TooLarge {
            bytes: buf.len() as u64,
            max: MAX_MODEL_BYTES,
        });
    }
    Ok(buf)
}

/// Parses and checks the container, the metadata and every tensor's dtype and values; shapes
/// are checked against the architecture by [`super::Graph::build`].
pub fn parse(bytes: &[u8]) -> Result<ModelFile, ModelError> {
    check_container_limits(bytes)?;
    let st = SafeTensors::deserialize(bytes).map_err(|e| ModelError::Container(e.to_string()))?;
    let (_, header) =
        SafeTensors::read_metadata(bytes).map_err(|e| ModelError::Container(e.to_string()))?;
    let empty = HashMap::new();
    let meta = header.metadata().as_ref().unwrap_or(&empty);
    let metadata = parse_metadata(meta)?;
    let mut tensors = BTreeMap::new();
    for (name, view) in st.iter() {
        if view.dtype() != Dtype::F16 {
            return Err(ModelError::TensorDtype {
                name: name.to_string(),
                found: format!("{:?}", view.dtype()),
            });
        }
        let mut values = Vec::with_capacity(view.data().len() / 2);
        for (index, pair) in view.data().chunks_exact(2).enumerate() {
            let v = f16::from_le_bytes([pair[0], pair[1]]);
            if !v.is_finite() {
                return Err(ModelError::NonFiniteWeight {
                    name: name.to_string(),
                    index,
                });
            }
            values.push(v.to_f32());
        }
        tensors.insert(
            name.to_string(),
            Tensor {
                shape: view.shape().to_vec(),
                values,
            },
        );
    }
    Ok(ModelFile { metadata, tensors })
}

/// Size checks made before the header is parsed: the 8-byte length prefix must describe a
/// header of sane size that lies inside the buffer.
fn check_container_limits(bytes: &[u8]) -> Result<(), ModelError> {
    if bytes.len() as u64 > MAX_MODEL_BYTES {
        return Err(ModelError::TooLarge {
            bytes: bytes.len() as u64,
            max: MAX_MODEL_BYTES,
        });
    }
    let Some(prefix) = bytes.first_chunk::<8>() else {
        return Err(ModelError::Container(format!(
            "{} bytes is too short for the 8-byte header length",
            bytes.len()
        )));
    };
    let header_len = u64::from_le_bytes(*prefix);
    if header_len > MAX_HEADER_BYTES {
        return Err(ModelError::Container(format!(
            "header length {header_len} exceeds the limit of {MAX_HEADER_BYTES} bytes"
        )));
    }
    if header_len > bytes.len() as u64 - 8 {
        return Err(ModelError::Container(format!(
            "header length {header_len} is larger than the {} bytes after the prefix \
             (truncated file?)",
            bytes.len() - 8
        )));
    }
    Ok(())
}

fn required<'a>(
    meta: &'a HashMap<String, String>,
    key: &'static str,
) -> Result<&'a str, ModelError> {
    meta.get(key)
        .map(String::as_str)
        .ok_or(ModelError::MissingMetadata(key))
}

fn json<T: serde::de::DeserializeOwned>(
    meta: &HashMap<String, String>,
    key: &'static str,
) -> Result<T, ModelError> {
    serde_json::from_str(required(meta, key)?).map_err(|e| ModelError::BadMetadata {
        key,
        reason: e.to_string(),
    })
}

fn parse_metadata(meta: &HashMap<String, String>) -> Result<ModelMetadata, ModelError> {
    // The version comes first: another version may lay out every other key differently.
    let version = required(meta, KEY_VERSION)?;
    let model_version = match version.trim().parse::<u32>() {
        Ok(v) if v == MODEL_VERSION => v,
        _ => {
            return Err(ModelError::UnsupportedVersion {
                found: version.to_string(),
                supported: MODEL_VERSION,
            });
        }
    };
    let architecture = Architecture::from_json(required(meta, KEY_ARCHITECTURE)?)?;
    let classes: Vec<LocationClass> = json(meta, KEY_CLASSES)?;
    let input: InputSpec = json(meta, KEY_INPUT)?;
    let training: TrainingInfo = json(meta, KEY_TRAINING)?;
    let threshold = decimal(KEY_THRESHOLD, required(meta, KEY_THRESHOLD)?)?;
    let distant_threshold = meta
        .get(KEY_DISTANT_THRESHOLD)
        .map(|text| decimal(KEY_DISTANT_THRESHOLD, text))
        .transpose()?;
    let operating_points = if meta.contains_key(KEY_OPERATING_POINTS) {
        json::<ByTracer>(meta, KEY_OPERATING_POINTS)?.0
    } else {
        BTreeMap::new()
    };
    let metadata = ModelMetadata {
        model_version,
        model_id: required(meta, KEY_MODEL_ID)?.to_string(),
        architecture,
        classes,
        input,
        training,
        threshold,
        distant_threshold,
        operating_points,
    };
    metadata.validate()?;
    Ok(metadata)
}

/// Operating points by tracer, read refusing a tracer given twice (JSON readers keep the last
/// of repeated keys, which would hide a hand-edited or corrupt file's first pair).
struct ByTracer(BTreeMap<Tracer, OperatingPoints>);

impl<'de> Deserialize<'de> for ByTracer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = ByTracer;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of operating points by tracer")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<ByTracer, A::Error> {
                let mut points = BTreeMap::new();
                while let Some((tracer, pair)) = map.next_entry::<Tracer, OperatingPoints>()? {
                    if points.insert(tracer, pair).is_some() {
                        return Err(A::Error::custom(format!(
                            "{} is given more than once",
                            tracer.name()
                        )));
                    }
                }
                Ok(ByTracer(points))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

fn decimal(key: &'static str, text: &str) -> Result<f32, ModelError> {
    text.trim()
        .parse::<f32>()
        .map_err(|e| ModelError::BadMetadata {
            key,
            reason: format!("{text:?}: {e}"),
        })
}

fn to_json<T: Serialize>(key: &'static str, value: &T) -> Result<String, ModelError> {
    serde_json::to_string(value).map_err(|e| ModelError::BadMetadata {
        key,
        reason: e.to_string(),
    })
}

fn metadata_strings(m: &ModelMetadata) -> Result<BTreeMap<&'static str, String>, ModelError> {
    let mut strings = BTreeMap::from([
        (KEY_VERSION, m.model_version.to_string()),
        (KEY_MODEL_ID, m.model_id.clone()),
        (
            KEY_ARCHITECTURE,
            to_json(KEY_ARCHITECTURE, &m.architecture)?,
        ),
        (KEY_CLASSES, to_json(KEY_CLASSES, &m.classes)?),
        (KEY_INPUT, to_json(KEY_INPUT, &m.input)?),
        (KEY_TRAINING, to_json(KEY_TRAINING, &m.training)?),
        (KEY_THRESHOLD, m.threshold.to_string()),
    ]);
    if let Some(t) = m.distant_threshold {
        strings.insert(KEY_DISTANT_THRESHOLD, t.to_string());
    }
    if !m.operating_points.is_empty() {
        strings.insert(
            KEY_OPERATING_POINTS,
            to_json(KEY_OPERATING_POINTS, &m.operating_points)?,
        );
    }
    Ok(strings)
}

#[derive(Serialize)]
struct TensorEntry<'a> {
    dtype: &'static str,
    shape: &'a [usize],
    data_offsets: [usize; 2],
}

/// Builds a model file from metadata and f32 weights (stored as fp16, round to nearest).
/// Batch norm must already be folded into the convolution weights and biases.
#[derive(Debug, Clone)]
pub struct ModelWriter {
    metadata: ModelMetadata,
    tensors: BTreeMap<String, Tensor>,
}

impl ModelWriter {
    pub fn new(metadata: ModelMetadata) -> Self {
        Self {
            metadata,
            tensors: BTreeMap::new(),
        }
    }

    /// Adds (or replaces) a tensor; `values.len()` must equal the product of `shape`.
    pub fn tensor(
        &mut self,
        name: impl Into<String>,
        shape: Vec<usize>,
        values: Vec<f32>,
    ) -> &mut Self {
        self.tensors.insert(name.into(), Tensor { shape, values });
        self
    }

    pub fn metadata(&self) -> &ModelMetadata {
        &self.metadata
    }

    pub fn metadata_mut(&mut self) -> &mut ModelMetadata {
        &mut self.metadata
    }

    pub fn tensors(&self) -> &BTreeMap<String, Tensor> {
        &self.tensors
    }

    /// The file's bytes, after checking that they load as a valid model.
    pub fn to_bytes(&self) -> Result<Vec<u8>, ModelError> {
        self.metadata.validate()?;
        let mut data = Vec::new();
        let mut entries = BTreeMap::new();
        for (name, t) in &self.tensors {
            let count = t.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
            if count != Some(t.values.len()) {
                return Err(ModelError::TensorShape {
                    name: name.clone(),
                    expected: vec![t.values.len()],
                    found: t.shape.clone(),
                });
            }
            let start = data.len();
            for (index, &v) in t.values.iter().enumerate() {
                let h = f16::from_f32(v);
                // A finite f32 beyond the fp16 range would become infinity: refuse it here.
                if !h.is_finite() {
                    return Err(ModelError::NonFiniteWeight {
                        name: name.clone(),
                        index,
                    });
                }
                data.extend_from_slice(&h.to_le_bytes());
            }
            entries.insert(
                name.as_str(),
                TensorEntry {
                    dtype: "F16",
                    shape: &t.shape,
                    data_offsets: [start, data.len()],
                },
            );
        }
        let mut header = serde_json::Map::new();
        header.insert(
            "__metadata__".into(),
            serde_json::to_value(metadata_strings(&self.metadata)?)
                .map_err(|e| ModelError::Engine(e.to_string()))?,
        );
        for (name, entry) in entries {
            header.insert(
                name.to_string(),
                serde_json::to_value(entry).map_err(|e| ModelError::Engine(e.to_string()))?,
            );
        }
        let mut header =
            serde_json::to_vec(&header).map_err(|e| ModelError::Engine(e.to_string()))?;
        // Pad with spaces so the data starts 8-byte aligned, as safetensors writers do.
        header.resize(header.len().next_multiple_of(8), b' ');
        let mut bytes = Vec::with_capacity(8 + header.len() + data.len());
        bytes.extend_from_slice(&(header.len() as u64).to_le_bytes());
        bytes.extend_from_slice(&header);
        bytes.extend_from_slice(&data);
        Model::from_bytes(&bytes)?;
        Ok(bytes)
    }

    /// Writes the file (see [`Self::to_bytes`]).
    pub fn write(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let bytes = self.to_bytes()?;
        std::fs::write(path.as_ref(), bytes).map_err(|source| ModelError::Write {
            path: path.as_ref().to_path_buf(),
            source,
        })
    }
}

/// Writes a model file from metadata (architecture included) and f32 weights by name.
pub fn write_model(
    path: impl AsRef<Path>,
    metadata: &ModelMetadata,
    tensors: &BTreeMap<String, Tensor>,
) -> Result<(), ModelError> {
    let mut writer = ModelWriter::new(metadata.clone());
    for (name, t) in tensors {
        writer.tensor(name.clone(), t.shape.clone(), t.values.clone());
    }
    writer.write(path)
}
