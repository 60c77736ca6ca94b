//! Export of a trained network to the S7 model file, through the plugin's own writer.

use std::path::Path;

use uptake::classes::v1_classes;
use uptake::model::{
    Architecture, InputSpec, MODEL_VERSION, ModelError, ModelMetadata, ModelWriter, TrainingInfo,
};

use crate::network::UptakeNet;

/// Metadata of a trained v1 model that reads reformations as `input` describes.
pub fn v1_metadata(
    model_id: &str,
    training: TrainingInfo,
    threshold: f32,
    input: InputSpec,
) -> ModelMetadata {
    let classes = v1_classes();
    ModelMetadata {
        model_version: MODEL_VERSION,
        model_id: model_id.to_string(),
        architecture: Architecture::v1(2 * input.planes(), classes.len()),
        classes,
        input,
        training,
        threshold,
        distant_threshold: None,
        operating_points: Default::default(),
    }
}

/// A writer holding `net`'s weights with batch norm folded (running statistics), ready to write.
/// `net` must live on a device without autodiff (use `Module::valid`).
pub fn model_writer(net: &UptakeNet, metadata: ModelMetadata) -> Result<ModelWriter, ModelError> {
    let tensors = net
        .fold()
        .export_tensors()
        .ok_or_else(|| ModelError::Engine("network weights could not be read".into()))?;
    let mut writer = ModelWriter::new(metadata);
    for (name, shape, values) in tensors {
        writer.tensor(name, shape, values);
    }
    Ok(writer)
}

/// Writes `net` as a model file at `path` (validated by loading it back).
pub fn write_model(
    net: &UptakeNet,
    metadata: ModelMetadata,
    path: &Path,
) -> Result<(), ModelError> {
    model_writer(net, metadata)?.write(path)
}
