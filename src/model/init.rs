//! Seeded random initialisation of untrained models, for tests and benchmarks.

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Normal};

use super::graph::{Architecture, Layer};
use super::{InputSpec, MODEL_VERSION, ModelError, ModelMetadata, ModelWriter, TrainingInfo};
use crate::classes::v1_classes;

/// Standard deviation of the random biases: small, but non-zero so that tests see them.
const BIAS_STD: f64 = 0.05;

/// Metadata of the v1 network with the S5 input and S6 classes, marked untrained.
pub fn untrained_v1_metadata(seed: u64) -> ModelMetadata {
    let input = InputSpec::default();
    let classes = v1_classes();
    ModelMetadata {
        model_version: MODEL_VERSION,
        model_id: format!("uptake-v1-untrained-seed{seed}"),
        architecture: Architecture::v1(2 * input.planes(), classes.len()),
        classes,
        input,
        training: TrainingInfo {
            untrained: true,
            data: "none".into(),
            strategy: format!("random He-normal initialisation, seed {seed}"),
            notes: "Placeholder weights: the outputs carry no meaning.".into(),
            ..TrainingInfo::default()
        },
        threshold: 0.5,
        distant_threshold: None,
        operating_points: Default::default(),
    }
}

/// A writer holding He-normal weights (std √(2 / fan_in)) and small normal biases for every
/// layer of `metadata.architecture`, drawn in layer order from a ChaCha8 stream seeded by
/// `seed`: the same seed always gives the same weights.
pub fn he_normal(metadata: ModelMetadata, seed: u64) -> Result<ModelWriter, ModelError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let layers: Vec<Layer> = metadata
        .architecture
        .trunk
        .iter()
        .chain(metadata.architecture.heads.iter().flat_map(|h| &h.layers))
        .cloned()
        .collect();
    let mut writer = ModelWriter::new(metadata);
    let bias = Normal::new(0.0, BIAS_STD).map_err(|e| ModelError::Engine(e.to_string()))?;
    for layer in layers {
        let (name, out, fan_in, shape) = match layer {
            Layer::Conv2d {
                name,
                in_channels,
                out_channels,
                kernel_size,
                ..
            } => (
                name,
                out_channels,
                in_channels * kernel_size * kernel_size,
                vec![out_channels, in_channels, kernel_size, kernel_size],
            ),
            Layer::Linear {
                name,
                in_features,
                out_features,
            } => (
                name,
                out_features,
                in_features,
                vec![out_features, in_features],
            ),
            _ => continue,
        };
        let std = (2.0 / fan_in.max(1) as f64).sqrt();
        let weight = Normal::new(0.0, std).map_err(|e| ModelError::Engine(e.to_string()))?;
        let count: usize = shape.iter().product();
        let w = (0..count).map(|_| weight.sample(&mut rng) as f32).collect();
        let b = (0..out).map(|_| bias.sample(&mut rng) as f32).collect();
        writer.tensor(format!("{name}.weight"), shape, w);
        writer.tensor(format!("{name}.bias"), vec![out], b);
    }
    Ok(writer)
}
