//! The layer graph described by the `architecture` metadata, checked against the input spec, the
//! class table and the tensors, with weights widened to f32.
//!
//! A graph is a trunk (from the [C, H, W] input to a flat feature vector) and two heads that
//! both read the trunk's features: `suspicious` (one logit) and `location` (one logit per class).
//! Tensor layouts follow PyTorch: conv weight [out, in, k, k], linear weight [out, in], so a
//! trained network exports without reshuffling. `flatten` reads a [C, H, W] map in (c, y, x)
//! order (x fastest), as `torch.flatten` does on NCHW.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use super::format::Tensor;
use super::{ModelError, ModelMetadata};

/// Head names the engines know.
pub const HEAD_SUSPICIOUS: &str = "suspicious";
pub const HEAD_LOCATION: &str = "location";

/// Layer type names as written in the file.
const LAYER_TYPES: [&str; 6] = [
    "conv2d",
    "relu",
    "max_pool2d",
    "flatten",
    "concat_tracer",
    "linear",
];

/// Bounds that keep a hostile architecture from asking for huge buffers.
const MAX_LAYERS: usize = 256;
const MAX_WIDTH: usize = 1 << 16;
const MAX_MAP_ELEMENTS: usize = 1 << 24;
const MAX_KERNEL: usize = 15;

/// One layer of the `architecture` metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Layer {
    /// Convolution, stride 1, zero padding, with bias; tensors `{name}.weight`
    /// `[out_channels, in_channels, kernel_size, kernel_size]` and `{name}.bias`
    /// `[out_channels]`.
    Conv2d {
        name: String,
        in_channels: usize,
        out_channels: usize,
        kernel_size: usize,
        padding: usize,
    },
    Relu,
    /// Max over non-overlapping size × size windows; the map sides must be multiples of `size`.
    #[serde(rename = "max_pool2d")]
    MaxPool2d {
        size: usize,
    },
    /// `[C, H, W]` → `[C·H·W]` in (c, y, x) order.
    Flatten,
    /// Appends the tracer bit (0 = PSMA, 1 = FDG) to a feature vector: `[F]` → `[F + 1]`.
    ConcatTracer,
    /// y = W x + b; tensors `{name}.weight` `[out_features, in_features]`, `{name}.bias`
    /// `[out_features]`.
    Linear {
        name: String,
        in_features: usize,
        out_features: usize,
    },
}

/// A named output branch reading the trunk's features.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Head {
    pub name: String,
    pub layers: Vec<Layer>,
}

/// The `architecture` metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub trunk: Vec<Layer>,
    pub heads: Vec<Head>,
}

impl Architecture {
    /// The v1 network of DESIGN S7 for `input_channels` channels and `classes` location classes.
    pub fn v1(input_channels: usize, classes: usize) -> Self {
        let conv = |i: usize, cin: usize, cout: usize| Layer::Conv2d {
            name: format!("conv{i}"),
            in_channels: cin,
            out_channels: cout,
            kernel_size: 3,
            padding: 1,
        };
        let linear = |name: &str, i: usize, o: usize| Layer::Linear {
            name: name.to_string(),
            in_features: i,
            out_features: o,
        };
        let mut trunk = Vec::new();
        for (i, (cin, cout)) in [(input_channels, 32), (32, 64), (64, 128), (128, 128)]
            .into_iter()
            .enumerate()
        {
            trunk.extend([
                conv(i + 1, cin, cout),
                Layer::Relu,
                Layer::MaxPool2d { size: 2 },
            ]);
        }
        trunk.push(Layer::Flatten);
        let features = 128 * 4 * 4;
        Self {
            trunk,
            heads: vec![
                Head {
                    name: HEAD_SUSPICIOUS.into(),
                    layers: vec![
                        Layer::ConcatTracer,
                        linear("suspicious.fc1", features + 1, 128),
                        Layer::Relu,
                        linear("suspicious.fc2", 128, 1),
                    ],
                },
                Head {
                    name: HEAD_LOCATION.into(),
                    layers: vec![
                        linear("location.fc1", features, 128),
                        Layer::Relu,
                        linear("location.fc2", 128, classes),
                    ],
                },
            ],
        }
    }

    /// Parses the JSON text, naming an unknown layer type precisely.
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let bad = |reason: String| ModelError::BadMetadata {
            key: super::format::KEY_ARCHITECTURE,
            reason,
        };
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
        let sections = std::iter::once(("trunk".to_string(), value.get("trunk"))).chain(
            value
                .get("heads")
                .and_then(|h| h.as_array())
                .into_iter()
                .flatten()
                .map(|h| {
                    let name = h.get("name").and_then(|n| n.as_str()).unwrap_or("?");
                    (format!("head {name:?}"), h.get("layers"))
                }),
        );
        for (section, layers) in sections {
            for (index, layer) in layers
                .and_then(|l| l.as_array())
                .into_iter()
                .flatten()
                .enumerate()
            {
                if let Some(kind) = layer.get("type").and_then(|t| t.as_str())
                    && !LAYER_TYPES.contains(&kind)
                {
                    return Err(ModelError::UnknownLayer {
                        section,
                        index,
                        kind: kind.to_string(),
                    });
                }
            }
        }
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }
}

/// A convolution with its weights, and the map sizes it sees.
#[derive(Debug, Clone)]
pub struct Conv {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    pub padding: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_h: usize,
    pub out_w: usize,
    /// [out_channels, in_channels, kernel, kernel].
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

impl Conv {
    /// in_channels · kernel²: the length of one output pixel's receptive field.
    pub fn patch_len(&self) -> usize {
        self.in_channels * self.kernel * self.kernel
    }
}

/// A fully connected layer with its weights.
#[derive(Debug, Clone)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    /// [out_features, in_features].
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A checked operation; map sizes are resolved.
#[derive(Debug, Clone)]
pub enum Op {
    Conv(Conv),
    Relu,
    MaxPool {
        size: usize,
        channels: usize,
        in_h: usize,
        in_w: usize,
    },
    Flatten,
    ConcatTracer,
    Linear(Linear),
}

/// The value flowing between layers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    Map { c: usize, h: usize, w: usize },
    Flat(usize),
}

impl Shape {
    pub fn len(self) -> usize {
        match self {
            Shape::Map { c, h, w } => c * h * w,
            Shape::Flat(n) => n,
        }
    }

    pub fn is_empty(self) -> bool {
        self.len() == 0
    }
}

/// The network ready to run: input map, trunk and the two heads.
#[derive(Debug, Clone)]
pub struct Graph {
    /// [channels, height, width] of one region's input.
    pub input: [usize; 3],
    pub trunk: Vec<Op>,
    /// Length of the trunk's flat feature vector.
    pub features: usize,
    pub suspicious: Vec<Op>,
    pub location: Vec<Op>,
    /// Location classes = length of the location head's output.
    pub classes: usize,
    /// Largest intermediate value per region (floats), for sizing buffers.
    pub max_activation: usize,
    /// Floating-point operations per region.
    pub flops: f64,
}

impl Graph {
    /// Checks the architecture against the input spec, the class table and the tensors, and
    /// takes each tensor's values. Every tensor must be used exactly once.
    pub fn build(
        metadata: &ModelMetadata,
        tensors: &BTreeMap<String, Tensor>,
    ) -> Result<Self, ModelError> {
        let arch = &metadata.architecture;
        let side = metadata.input.plane_size;
        let input = [2 * metadata.input.planes(), side, side];
        let mut builder = Builder {
            tensors,
            used: BTreeSet::new(),
            max_activation: input[0] * side * side,
        };
        let start = Shape::Map {
            c: input[0],
            h: side,
            w: side,
        };
        if start.len() > MAX_MAP_ELEMENTS {
            return Err(arch_error(format!("input map {input:?} is too large")));
        }
        let (trunk, out) = builder.section("trunk", &arch.trunk, start, false)?;
        let Shape::Flat(features) = out else {
            return Err(arch_error(
                "the trunk must end in a flat feature vector (flatten)".into(),
            ));
        };
        let mut suspicious = None;
        let mut location = None;
        for head in &arch.heads {
            let (ops, out) =
                builder.section(&format!("head {:?}", head.name), &head.layers, out, true)?;
            let (slot, want) = match head.name.as_str() {
                HEAD_SUSPICIOUS => (&mut suspicious, 1),
                HEAD_LOCATION => (&mut location, metadata.classes.len()),
                other => return Err(arch_error(format!("unknown head {other:?}"))),
            };
            if out != Shape::Flat(want) {
                return Err(arch_error(format!(
                    "head {:?} gives {out:?}, expected {want} outputs",
                    head.name
                )));
            }
            if slot.replace(ops).is_some() {
                return Err(arch_error(format!("head {:?} appears twice", head.name)));
            }
        }
        let (Some(suspicious), Some(location)) = (suspicious, location) else {
            return Err(arch_error(format!(
                "the heads {HEAD_SUSPICIOUS:?} and {HEAD_LOCATION:?} are both required"
            )));
        };
        if let Some(extra) = tensors.keys().find(|k| !builder.used.contains(*k)) {
            return Err(ModelError::UnexpectedTensor(extra.clone()));
        }
        let mut graph = Self {
            input,
            trunk,
            features,
            suspicious,
            location,
            classes: metadata.classes.len(),
            max_activation: builder.max_activation,
            flops: 0.0,
        };
        graph.flops = graph.count_flops();
        Ok(graph)
    }

    /// Floating-point operations per region (2 per multiply-add).
    fn count_flops(&self) -> f64 {
        let ops = self
            .trunk
            .iter()
            .chain(&self.suspicious)
            .chain(&self.location);
        ops.map(|op| match op {
            Op::Conv(c) => 2.0 * (c.out_channels * c.patch_len() * c.out_h * c.out_w) as f64,
            Op::Linear(l) => 2.0 * (l.in_features * l.out_features) as f64,
            _ => 0.0,
        })
        .sum()
    }

    /// Floats of input per region.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }
}

fn arch_error(reason: String) -> ModelError {
    ModelError::Architecture(reason)
}

struct Builder<'a> {
    tensors: &'a BTreeMap<String, Tensor>,
    used: BTreeSet<String>,
    max_activation: usize,
}

impl Builder<'_> {
    fn section(
        &mut self,
        section: &str,
        layers: &[Layer],
        mut shape: Shape,
        is_head: bool,
    ) -> Result<(Vec<Op>, Shape), ModelError> {
        if layers.len() > MAX_LAYERS {
            return Err(arch_error(format!(
                "{section} has more than {MAX_LAYERS} layers"
            )));
        }
        let mut ops = Vec::with_capacity(layers.len());
        for (index, layer) in layers.iter().enumerate() {
            let at = |reason: String| arch_error(format!("{section}, layer {index}: {reason}"));
            let op = match (layer, shape) {
                (
                    Layer::Conv2d {
                        name,
                        in_channels,
                        out_channels,
                        kernel_size,
                        padding,
                    },
                    Shape::Map { c, h, w },
                ) if !is_head => {
                    if *in_channels != c {
                        return Err(at(format!(
                            "conv2d {name:?} takes {in_channels} channels but receives {c}"
                        )));
                    }
                    if *out_channels == 0 || *out_channels > MAX_WIDTH {
                        return Err(at(format!(
                            "out_channels {out_channels} not in 1..={MAX_WIDTH}"
                        )));
                    }
                    if *kernel_size == 0 || *kernel_size > MAX_KERNEL || *padding >= *kernel_size {
                        return Err(at(format!(
                            "kernel_size {kernel_size} / padding {padding}: need 1 ≤ kernel ≤ \
                             {MAX_KERNEL} and padding < kernel"
                        )));
                    }
                    let (out_h, out_w) = ((h + 2 * padding + 1).checked_sub(*kernel_size))
                        .zip((w + 2 * padding + 1).checked_sub(*kernel_size))
                        .filter(|&(a, b)| a > 0 && b > 0)
                        .ok_or_else(|| at(format!("a {h}×{w} map is smaller than the kernel")))?;
                    let weight = self.take(
                        &format!("{name}.weight"),
                        &[*out_channels, c, *kernel_size, *kernel_size],
                    )?;
                    let bias = self.take(&format!("{name}.bias"), &[*out_channels])?;
                    shape = Shape::Map {
                        c: *out_channels,
                        h: out_h,
                        w: out_w,
                    };
                    Op::Conv(Conv {
                        in_channels: c,
                        out_channels: *out_channels,
                        kernel: *kernel_size,
                        padding: *padding,
                        in_h: h,
                        in_w: w,
                        out_h,
                        out_w,
                        weight,
                        bias,
                    })
                }
                (Layer::Relu, _) => Op::Relu,
                (Layer::MaxPool2d { size }, Shape::Map { c, h, w }) if !is_head => {
                    if *size == 0 || h % size != 0 || w % size != 0 {
                        return Err(at(format!(
                            "max_pool2d size {size} does not divide the {h}×{w} map"
                        )));
                    }
                    shape = Shape::Map {
                        c,
                        h: h / size,
                        w: w / size,
                    };
                    Op::MaxPool {
                        size: *size,
                        channels: c,
                        in_h: h,
                        in_w: w,
                    }
                }
                (Layer::Flatten, Shape::Map { .. }) if !is_head => {
                    shape = Shape::Flat(shape.len());
                    Op::Flatten
                }
                (Layer::ConcatTracer, Shape::Flat(n)) if is_head => {
                    shape = Shape::Flat(n + 1);
                    Op::ConcatTracer
                }
                (
                    Layer::Linear {
                        name,
                        in_features,
                        out_features,
                    },
                    Shape::Flat(n),
                ) if is_head => {
                    if *in_features != n {
                        return Err(at(format!(
                            "linear {name:?} takes {in_features} features but receives {n}"
                        )));
                    }
                    if *out_features == 0 || *out_features > MAX_WIDTH {
                        return Err(at(format!(
                            "out_features {out_features} not in 1..={MAX_WIDTH}"
                        )));
                    }
                    let weight = self.take(&format!("{name}.weight"), &[*out_features, n])?;
                    let bias = self.take(&format!("{name}.bias"), &[*out_features])?;
                    shape = Shape::Flat(*out_features);
                    Op::Linear(Linear {
                        in_features: n,
                        out_features: *out_features,
                        weight,
                        bias,
                    })
                }
                (layer, shape) => {
                    let place = if is_head { "a head" } else { "the trunk" };
                    return Err(at(format!(
                        "{layer:?} cannot be applied to {shape:?} in {place}"
                    )));
                }
            };
            if shape.len() > MAX_MAP_ELEMENTS {
                return Err(at(format!("{shape:?} is too large")));
            }
            self.max_activation = self.max_activation.max(shape.len());
            ops.push(op);
        }
        Ok((ops, shape))
    }

    /// The values of a tensor of the given shape; each tensor may be used once.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>, ModelError> {
        let t = self
            .tensors
            .get(name)
            .ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        if t.shape != shape {
            return Err(ModelError::TensorShape {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: t.shape.clone(),
            });
        }
        if !self.used.insert(name.to_string()) {
            return Err(arch_error(format!("tensor {name:?} is used by two layers")));
        }
        Ok(t.values.clone())
    }
}
