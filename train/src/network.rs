//! The v1 network of DESIGN S7, written once in burn.
//!
//! Trunk: four blocks conv3×3 (pad 1) → batch norm → ReLU → max-pool 2 (26→32→64→128→128
//! channels, 64² → 4²), flatten to 2048 in (c, y, x) order. Suspicious head: concat(features,
//! tracer bit) → linear 2049→128 → ReLU → linear 128→1 (logit). Location head: linear 2048→128 →
//! ReLU → linear 128→classes. The tracer bit enters the suspicious head only (paper, Fig. 1b).
//!
//! Batch norm is used in training; [`UptakeNet::fold`] folds it into the convolutions for export
//! (DESIGN S7), giving the network the model file describes. A folded network has no norm layers.

use burn::module::Param;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::prelude::*;
use burn::tensor::activation::{log_softmax, relu, sigmoid};
use burn::tensor::{Int, TensorData};

/// Channels of the four convolution blocks.
const CHANNELS: [usize; 4] = [32, 64, 128, 128];
/// Width of both heads' hidden layer.
const HIDDEN: usize = 128;

/// One trunk block: conv → batch norm (training only) → ReLU → pool.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub norm: Option<BatchNorm>,
    pub pool: MaxPool2d,
}

impl ConvBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x);
        let x = match &self.norm {
            Some(norm) => norm.forward(x),
            None => x,
        };
        self.pool.forward(relu(x))
    }
}

/// The multi-task network.
#[derive(Module, Debug)]
pub struct UptakeNet {
    pub blocks: Vec<ConvBlock>,
    pub suspicious_fc1: Linear,
    pub suspicious_fc2: Linear,
    pub location_fc1: Linear,
    pub location_fc2: Linear,
}

/// Network outputs for a batch.
pub struct Output {
    /// `[N, 1]` suspicious logit.
    pub suspicious: Tensor<2>,
    /// `[N, classes]` location logits.
    pub location: Tensor<2>,
}

/// Sizes of the network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetShape {
    pub input_channels: usize,
    /// Side of the square input planes; a multiple of 16.
    pub plane_size: usize,
    pub classes: usize,
}

impl NetShape {
    /// The v1 input (13 PET + 13 CT planes of 64²) and the 23 S6 classes.
    pub fn v1() -> Self {
        NetShape {
            input_channels: 26,
            plane_size: 64,
            classes: uptake::classes::V1_CLASS_COUNT,
        }
    }

    /// Length of the flattened trunk output.
    pub fn features(&self) -> usize {
        let side = self.plane_size / 16;
        CHANNELS[3] * side * side
    }
}

impl UptakeNet {
    /// A freshly initialised network with batch norm (burn's default initialisers, drawn from the
    /// device's seeded generator).
    pub fn new(shape: NetShape, device: &Device) -> Self {
        let mut blocks = Vec::new();
        let mut cin = shape.input_channels;
        for cout in CHANNELS {
            blocks.push(ConvBlock {
                conv: Conv2dConfig::new([cin, cout], [3, 3])
                    .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
                    .init(device),
                norm: Some(BatchNormConfig::new(cout).init(device)),
                pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
            });
            cin = cout;
        }
        let features = shape.features();
        UptakeNet {
            blocks,
            suspicious_fc1: LinearConfig::new(features + 1, HIDDEN).init(device),
            suspicious_fc2: LinearConfig::new(HIDDEN, 1).init(device),
            location_fc1: LinearConfig::new(features, HIDDEN).init(device),
            location_fc2: LinearConfig::new(HIDDEN, shape.classes).init(device),
        }
    }

    /// The network without its norm layers: the structure of a folded network, which trains and
    /// infers alike (fine-tuning a model file; DESIGN S7 has no norm layers).
    pub fn without_norm(mut self) -> Self {
        for block in &mut self.blocks {
            block.norm = None;
        }
        self
    }

    /// `input` `[N, C, H, W]`, `tracer` `[N, 1]` (0 PSMA, 1 FDG).
    pub fn forward(&self, input: Tensor<4>, tracer: Tensor<2>) -> Output {
        let mut x = input;
        for block in &self.blocks {
            x = block.forward(x);
        }
        let features: Tensor<2> = x.flatten(1, 3);
        let suspicious_in = Tensor::cat(vec![features.clone(), tracer], 1);
        let suspicious = self
            .suspicious_fc2
            .forward(relu(self.suspicious_fc1.forward(suspicious_in)));
        let location = self
            .location_fc2
            .forward(relu(self.location_fc1.forward(features)));
        Output {
            suspicious,
            location,
        }
    }

    /// The network with batch norm folded into the convolutions, using the running statistics:
    /// w' = w·γ/√(σ²+ε), b' = (b − μ)·γ/√(σ²+ε) + β per output channel.
    pub fn fold(&self) -> UptakeNet {
        let mut folded = self.clone();
        for block in &mut folded.blocks {
            let Some(norm) = block.norm.take() else {
                continue;
            };
            let scale = norm
                .gamma
                .val()
                .div(norm.running_var.value().add_scalar(norm.epsilon).sqrt());
            let cout = scale.dims()[0];
            let weight = block.conv.weight.val();
            let device = weight.device();
            let bias = match &block.conv.bias {
                Some(b) => b.val(),
                None => Tensor::zeros([cout], &device),
            };
            let new_weight = weight.mul(scale.clone().reshape([cout, 1, 1, 1]));
            let new_bias = bias
                .sub(norm.running_mean.value())
                .mul(scale)
                .add(norm.beta.val());
            block.conv.weight = Param::from_tensor(new_weight);
            block.conv.bias = Some(Param::from_tensor(new_bias));
        }
        folded
    }

    /// Named weights in the model-file layout (DESIGN S7, `docs/model-format.md`): conv weight
    /// `[out, in, k, k]`, linear weight `[out, in]` (burn stores `[in, out]`), biases `[out]`.
    /// Only for a folded network; a network with batch norm returns `None`.
    pub fn export_tensors(&self) -> Option<Vec<NamedTensor>> {
        let mut out = Vec::new();
        for (i, block) in self.blocks.iter().enumerate() {
            if block.norm.is_some() {
                return None;
            }
            let name = format!("conv{}", i + 1);
            out.push(tensor_entry(
                format!("{name}.weight"),
                block.conv.weight.val(),
            )?);
            out.push(tensor_entry(
                format!("{name}.bias"),
                block.conv.bias.as_ref()?.val(),
            )?);
        }
        for (name, linear) in [
            ("suspicious.fc1", &self.suspicious_fc1),
            ("suspicious.fc2", &self.suspicious_fc2),
            ("location.fc1", &self.location_fc1),
            ("location.fc2", &self.location_fc2),
        ] {
            out.push(tensor_entry(
                format!("{name}.weight"),
                linear.weight.val().transpose(),
            )?);
            out.push(tensor_entry(
                format!("{name}.bias"),
                linear.bias.as_ref()?.val(),
            )?);
        }
        Some(out)
    }

    /// A folded network from model-file tensors (the inverse of [`Self::export_tensors`]); an
    /// error names the first tensor that is missing or has another shape.
    pub fn from_tensors(
        shape: NetShape,
        tensors: TensorLookup<'_>,
        device: &Device,
    ) -> Result<UptakeNet, String> {
        let mut net = UptakeNet::new(shape, device).without_norm();
        // A tensor by name, when its shape is `expected`.
        let load = |name: &str, expected: &[usize]| -> Result<TensorData, String> {
            match tensors(name) {
                None => Err(format!("tensor {name} is missing")),
                Some((shape, _)) if shape != expected => Err(format!(
                    "tensor {name} has shape {shape:?}, the v1 network's is {expected:?}"
                )),
                Some((shape, values)) => Ok(TensorData::new(values, shape)),
            }
        };
        for (i, block) in net.blocks.iter_mut().enumerate() {
            let name = format!("conv{}", i + 1);
            let dims = block.conv.weight.dims();
            let weight = load(&format!("{name}.weight"), &dims)?;
            let bias = load(&format!("{name}.bias"), &dims[..1])?;
            block.conv.weight = Param::from_tensor(Tensor::from_data(weight, device));
            block.conv.bias = Some(Param::from_tensor(Tensor::from_data(bias, device)));
        }
        for (name, linear) in [
            ("suspicious.fc1", &mut net.suspicious_fc1),
            ("suspicious.fc2", &mut net.suspicious_fc2),
            ("location.fc1", &mut net.location_fc1),
            ("location.fc2", &mut net.location_fc2),
        ] {
            // burn stores [in, out]; the file [out, in].
            let [d_in, d_out] = linear.weight.dims();
            let weight: Tensor<2> =
                Tensor::from_data(load(&format!("{name}.weight"), &[d_out, d_in])?, device);
            let bias = load(&format!("{name}.bias"), &[d_out])?;
            linear.weight = Param::from_tensor(weight.transpose());
            linear.bias = Some(Param::from_tensor(Tensor::from_data(bias, device)));
        }
        Ok(net)
    }
}

fn tensor_entry<const D: usize>(name: String, tensor: Tensor<D>) -> Option<NamedTensor> {
    let shape = tensor.dims().to_vec();
    let values = tensor.into_data().try_to_vec::<f32>().ok()?;
    Some((name, shape, values))
}

/// A named tensor in the model-file layout: (name, shape, row-major values).
pub type NamedTensor = (String, Vec<usize>, Vec<f32>);

/// Looks up a tensor by name: (shape, row-major values).
pub type TensorLookup<'a> = &'a dyn Fn(&str) -> Option<(Vec<usize>, Vec<f32>)>;

/// Training targets of a batch.
pub struct Targets {
    /// `[N, 1]`: 1 suspicious, 0 physiological.
    pub suspicious: Tensor<2>,
    /// `[N]`: S6 class id (any value where the location is unknown).
    pub location: Tensor<1, Int>,
    /// `[N]`: 1 where the location is known, 0 where it is masked from the loss.
    pub location_known: Tensor<1>,
    /// `[N, 1]`: weight of each finding's suspicious term (1, or the distant weight where the
    /// known location stages as miM).
    pub suspicious_weight: Tensor<2>,
    /// Focusing exponent γ of the suspicious term: each finding's BCE is scaled by (1 − p_t)^γ,
    /// p_t the probability given to its true label, so well-classified findings count less
    /// (focal loss, Lin et al. 2017); 0 is the plain BCE of S12.
    pub focal_gamma: f32,
}

/// Loss of S12: BCE(suspicious logit) + cross-entropy(location), the latter averaged over the
/// findings with a known location only (zero when none is known). The BCE is the mean weighted
/// by `suspicious_weight` (all 1: the plain mean of S12), each term focused by `focal_gamma`.
pub fn loss(output: &Output, targets: &Targets) -> Tensor<1> {
    // BCE with logits, in the overflow-free form max(x, 0) − x·y + log(1 + e^{−|x|}).
    let x = output.suspicious.clone();
    let y = targets.suspicious.clone();
    let mut weight = targets.suspicious_weight.clone();
    if targets.focal_gamma != 0.0 {
        // 1 − p_t = σ(x) where y = 0 and 1 − σ(x) = σ(−x) where y = 1, i.e. σ((1 − 2y)·x),
        // without the cancellation of 1 − σ(x); kept above zero so that γ < 1 has a finite
        // gradient where σ saturates.
        let sign = y.clone().mul_scalar(-2.0).add_scalar(1.0);
        let miss = sigmoid(x.clone().mul(sign)).clamp_min(1e-12);
        weight = weight.mul(miss.powf_scalar(targets.focal_gamma));
    }
    let bce = x
        .clone()
        .clamp_min(0.0)
        .sub(x.clone().mul(y))
        .add(x.abs().neg().exp().log1p())
        .mul(weight)
        .sum()
        .div(targets.suspicious_weight.clone().sum());
    let n = targets.location.dims()[0];
    let log_p = log_softmax(output.location.clone(), 1);
    let picked: Tensor<2> = log_p.gather(1, targets.location.clone().reshape([n, 1]));
    let known = targets.location_known.clone();
    let ce = picked
        .reshape([n])
        .mul(known.clone())
        .sum()
        .neg()
        .div(known.sum().clamp_min(1.0));
    bce.add(ce)
}
