//! S7 on the device: the v1 network (`kernels/cnn.cu`), the twin of the CPU engine in
//! `crate::model`. fp16 weights and activations, fp32 accumulation; a batch is processed in
//! chunks of [`CHUNK_REGIONS`] regions, every layer of a chunk on the device, and only the logits
//! come back.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, CudaSlice, CudaView, LaunchConfig, PushKernelArg};
use half::f16;

use super::mpr::DeviceTensor;
use super::{CudaBackend, GpuError, driver, function, grid_1d, guard, int};
use crate::model::graph::{Graph, Linear, Op};

pub(super) struct Kernels {
    conv_mma_n32: CudaFunction,
    conv_mma_n64: CudaFunction,
    conv_simt: CudaFunction,
    maxpool: CudaFunction,
    linear_f16_in: CudaFunction,
    linear_f32_in: CudaFunction,
}

impl Kernels {
    pub(super) fn load(module: &Arc<CudaModule>) -> Result<Self, GpuError> {
        Ok(Self {
            conv_mma_n32: function(module, "conv3x3_relu_mma_n32")?,
            conv_mma_n64: function(module, "conv3x3_relu_mma_n64")?,
            conv_simt: function(module, "conv3x3_relu_simt")?,
            maxpool: function(module, "maxpool2")?,
            linear_f16_in: function(module, "linear_f16_in")?,
            linear_f32_in: function(module, "linear_f32_in")?,
        })
    }
}

/// Regions per chunk: bounds the activation memory (≈ 270 MB of fp16 for the v1 network).
pub const CHUNK_REGIONS: usize = 1024;

/// Reduction slice of the tensor-core kernel (`BK` in cnn.cu); conv weight rows are padded to it.
const BK: usize = 32;
/// Output pixels per block of the tensor-core kernel (`BM`) and its threads (`CONV_THREADS`).
const BM: u32 = 64;
const CONV_THREADS: u32 = 128;

/// A 3×3 convolution (stride 1, padding 1) with bias, followed by ReLU and a 2×2 max-pool.
#[derive(Debug, Clone, Copy)]
pub struct ConvLayer<'a> {
    pub in_channels: usize,
    pub out_channels: usize,
    /// `[out_channels][in_channels][3][3]`.
    pub weight: &'a [f32],
    pub bias: &'a [f32],
}

/// A fully connected layer, y = W x + b.
#[derive(Debug, Clone, Copy)]
pub struct LinearLayer<'a> {
    pub in_features: usize,
    pub out_features: usize,
    /// `[out_features][in_features]`.
    pub weight: &'a [f32],
    pub bias: &'a [f32],
}

/// The v1 network (S7): a trunk of conv–ReLU–pool blocks flattened in (c, y, x) order; the
/// suspicious head reads the features plus the tracer bit (linear, ReLU, linear → 1 logit), the
/// location head the features alone (linear, ReLU, linear → class logits).
#[derive(Debug, Clone)]
pub struct NetworkSpec<'a> {
    /// [channels, height, width] of one region's input.
    pub input: [usize; 3],
    pub trunk: Vec<ConvLayer<'a>>,
    pub suspicious: [LinearLayer<'a>; 2],
    pub location: [LinearLayer<'a>; 2],
}

impl<'a> NetworkSpec<'a> {
    /// The device view of a model's checked graph, borrowing its weights. The kernels run one
    /// shape of network: a trunk of [3×3 convolution (padding 1), ReLU, 2×2 max-pool] blocks and
    /// a flatten, the suspicious head [tracer bit, linear, ReLU, linear] and the location head
    /// [linear, ReLU, linear] (S7 v1); any other graph is [`GpuError::UnsupportedNetwork`].
    pub fn from_graph(graph: &'a Graph) -> Result<Self, GpuError> {
        let unsupported = |what: String| GpuError::UnsupportedNetwork(what);
        let mut trunk = Vec::new();
        let mut ops = graph.trunk.iter();
        loop {
            match (ops.next(), ops.next(), ops.next()) {
                (Some(Op::Conv(conv)), Some(Op::Relu), Some(Op::MaxPool { size: 2, .. }))
                    if conv.kernel == 3 && conv.padding == 1 =>
                {
                    trunk.push(ConvLayer {
                        in_channels: conv.in_channels,
                        out_channels: conv.out_channels,
                        weight: &conv.weight,
                        bias: &conv.bias,
                    });
                }
                (Some(Op::Flatten), None, None) if !trunk.is_empty() => break,
                _ => {
                    return Err(unsupported(format!(
                        "trunk block {} is not a 3×3 convolution, ReLU and 2×2 max-pool (or the \
                         final flatten)",
                        trunk.len() + 1
                    )));
                }
            }
        }
        let linear = |l: &'a Linear| LinearLayer {
            in_features: l.in_features,
            out_features: l.out_features,
            weight: &l.weight,
            bias: &l.bias,
        };
        let suspicious = match graph.suspicious.as_slice() {
            [Op::ConcatTracer, Op::Linear(a), Op::Relu, Op::Linear(b)] => [linear(a), linear(b)],
            _ => {
                return Err(unsupported(
                    "the suspicious head is not tracer bit, linear, ReLU, linear".into(),
                ));
            }
        };
        let location = match graph.location.as_slice() {
            [Op::Linear(a), Op::Relu, Op::Linear(b)] => [linear(a), linear(b)],
            _ => {
                return Err(unsupported(
                    "the location head is not linear, ReLU, linear".into(),
                ));
            }
        };
        Ok(Self {
            input: graph.input,
            trunk,
            suspicious,
            location,
        })
    }
}

struct DeviceConv {
    in_channels: usize,
    out_channels: usize,
    /// Input side lengths.
    h: usize,
    w: usize,
    /// Padded row length of `weight`.
    kpad: usize,
    weight: CudaSlice<u16>,
    bias: CudaSlice<f32>,
}

struct DeviceLinear {
    /// Inputs read from the previous layer (the tracer bit excluded).
    in_features: usize,
    out_features: usize,
    /// Row length of `weight`: in_features, + 1 when the tracer bit is appended.
    ldw: usize,
    weight: CudaSlice<u16>,
    bias: CudaSlice<f32>,
}

/// The network's weights on the device, built once per analyzer.
pub struct DeviceNetwork {
    input: [usize; 3],
    trunk: Vec<DeviceConv>,
    features: usize,
    suspicious: [DeviceLinear; 2],
    location: [DeviceLinear; 2],
    /// Largest activation of one region (elements), for the ping-pong buffers.
    max_activation: usize,
}

impl std::fmt::Debug for DeviceNetwork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceNetwork")
            .field("input", &self.input)
            .field("convs", &self.trunk.len())
            .field("features", &self.features)
            .finish_non_exhaustive()
    }
}

impl DeviceNetwork {
    pub fn classes(&self) -> usize {
        self.location[1].out_features
    }

    /// Elements of one region's input.
    pub fn input_len(&self) -> usize {
        self.input.iter().product()
    }

    /// Floating-point operations per region (multiply and add counted apart).
    pub fn flops_per_region(&self) -> f64 {
        let conv: usize = self
            .trunk
            .iter()
            .map(|c| 2 * c.h * c.w * c.out_channels * c.in_channels * 9)
            .sum();
        let linear: usize = self
            .suspicious
            .iter()
            .chain(&self.location)
            .map(|l| 2 * l.ldw * l.out_features)
            .sum();
        (conv + linear) as f64
    }
}

/// Network outputs for a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct Logits {
    /// One per region.
    pub suspicious: Vec<f32>,
    /// `classes` per region, region-major.
    pub location: Vec<f32>,
    pub classes: usize,
}

const KERNEL: &str = "cnn";

fn invalid(reason: String) -> GpuError {
    GpuError::Invalid {
        kernel: KERNEL,
        reason,
    }
}

fn check_len(what: &str, got: usize, want: usize) -> Result<(), GpuError> {
    if got != want {
        return Err(invalid(format!(
            "{what} holds {got} values, {want} expected"
        )));
    }
    Ok(())
}

fn to_half_bits(values: &[f32]) -> Vec<u16> {
    values.iter().map(|&v| f16::from_f32(v).to_bits()).collect()
}

impl CudaBackend {
    /// Checks the network's shapes and uploads its weights as fp16 (the model file's precision).
    pub fn load_network(&self, spec: &NetworkSpec<'_>) -> Result<DeviceNetwork, GpuError> {
        guard("loading the network", || {
            let [mut c, mut h, mut w] = spec.input;
            if spec.trunk.is_empty() || c == 0 || h == 0 || w == 0 {
                return Err(invalid(format!(
                    "input {:?} with {} convolutions",
                    spec.input,
                    spec.trunk.len()
                )));
            }
            let mut max_activation = c * h * w;
            let _lock = self.lock()?;
            let mut trunk = Vec::with_capacity(spec.trunk.len());
            for (i, conv) in spec.trunk.iter().enumerate() {
                if conv.in_channels != c || conv.out_channels == 0 {
                    return Err(invalid(format!(
                        "convolution {i} takes {} channels, {c} arrive",
                        conv.in_channels
                    )));
                }
                if h % 2 != 0 || w % 2 != 0 {
                    return Err(invalid(format!(
                        "convolution {i}: a {h}×{w} map cannot be pooled by 2"
                    )));
                }
                let k = conv.in_channels * 9;
                check_len(
                    "a convolution weight",
                    conv.weight.len(),
                    conv.out_channels * k,
                )?;
                check_len("a convolution bias", conv.bias.len(), conv.out_channels)?;
                let kpad = k.div_ceil(BK) * BK;
                let mut padded = vec![0u16; conv.out_channels * kpad];
                for (row, src) in padded
                    .chunks_exact_mut(kpad)
                    .zip(conv.weight.chunks_exact(k))
                {
                    row[..k].copy_from_slice(&to_half_bits(src));
                }
                max_activation = max_activation.max(conv.out_channels * h * w);
                trunk.push(DeviceConv {
                    in_channels: conv.in_channels,
                    out_channels: conv.out_channels,
                    h,
                    w,
                    kpad,
                    weight: self
                        .stream
                        .clone_htod(&padded)
                        .map_err(driver("uploading weights"))?,
                    bias: self
                        .stream
                        .clone_htod(conv.bias)
                        .map_err(driver("uploading biases"))?,
                });
                c = conv.out_channels;
                h /= 2;
                w /= 2;
            }
            let features = c * h * w;
            let [s0, s1] = &spec.suspicious;
            let [l0, l1] = &spec.location;
            let heads_fit = s0.in_features == features + 1
                && s1.in_features == s0.out_features
                && s1.out_features == 1
                && l0.in_features == features
                && l1.in_features == l0.out_features
                && l1.out_features > 0;
            if !heads_fit {
                return Err(invalid(format!(
                    "heads ({}→{}→{}, {}→{}→{}) do not fit {features} features plus the tracer bit",
                    s0.in_features,
                    s0.out_features,
                    s1.out_features,
                    l0.in_features,
                    l0.out_features,
                    l1.out_features
                )));
            }
            let upload =
                |layer: &LinearLayer<'_>, tracer: bool| -> Result<DeviceLinear, GpuError> {
                    check_len(
                        "a linear weight",
                        layer.weight.len(),
                        layer.out_features * layer.in_features,
                    )?;
                    check_len("a linear bias", layer.bias.len(), layer.out_features)?;
                    Ok(DeviceLinear {
                        in_features: layer.in_features - usize::from(tracer),
                        out_features: layer.out_features,
                        ldw: layer.in_features,
                        weight: self
                            .stream
                            .clone_htod(&to_half_bits(layer.weight))
                            .map_err(driver("uploading weights"))?,
                        bias: self
                            .stream
                            .clone_htod(layer.bias)
                            .map_err(driver("uploading biases"))?,
                    })
                };
            Ok(DeviceNetwork {
                input: spec.input,
                features,
                suspicious: [upload(s0, true)?, upload(s1, false)?],
                location: [upload(l0, false)?, upload(l1, false)?],
                trunk,
                max_activation,
            })
        })
    }

    /// Runs the network on reformations already on the device (fp16, from
    /// [`CudaBackend::reformat`]) with one tracer bit per region (0 = PSMA, 1 = FDG).
    pub fn infer(
        &self,
        net: &DeviceNetwork,
        input: &DeviceTensor<u16>,
        tracer_bits: &[f32],
    ) -> Result<Logits, GpuError> {
        guard("inference", || {
            let n = input.regions;
            check_len("the input region", input.region_len, net.input_len())?;
            check_len("the tracer bits", tracer_bits.len(), n)?;
            let classes = net.classes();
            if n == 0 {
                return Ok(Logits {
                    suspicious: Vec::new(),
                    location: Vec::new(),
                    classes,
                });
            }
            let chunk = n.min(CHUNK_REGIONS);
            let hidden_s = net.suspicious[0].out_features;
            let hidden_l = net.location[0].out_features;
            let _lock = self.lock()?;
            let alloc_f16 = |len: usize| {
                // SAFETY: every element a layer reads was written by the layer before it.
                unsafe { self.stream.alloc::<u16>(len) }.map_err(driver("allocating activations"))
            };
            let alloc_f32 = |len: usize| {
                // SAFETY: as above.
                unsafe { self.stream.alloc::<f32>(len) }.map_err(driver("allocating activations"))
            };
            let mut conv_out = alloc_f16(chunk * net.max_activation)?;
            let mut pooled = alloc_f16(chunk * net.max_activation)?;
            let mut hidden = alloc_f32(chunk * hidden_s.max(hidden_l))?;
            let mut suspicious = alloc_f32(n)?;
            let mut location = alloc_f32(n * classes)?;
            let tracer = self
                .stream
                .clone_htod(tracer_bits)
                .map_err(driver("copying tracer bits"))?;

            for start in (0..n).step_by(chunk) {
                let m = chunk.min(n - start);
                let batch = int(KERNEL, "chunk", m)?;
                for (i, conv) in net.trunk.iter().enumerate() {
                    if i == 0 {
                        let x = input
                            .data
                            .slice(start * input.region_len..(start + m) * input.region_len);
                        self.conv(conv, &x, &mut conv_out, batch)?;
                    } else {
                        self.conv(conv, &pooled.slice(..), &mut conv_out, batch)?;
                    }
                    self.maxpool(
                        &conv_out,
                        &mut pooled,
                        m * conv.out_channels,
                        conv.h,
                        conv.w,
                    )?;
                }
                let features = pooled.slice(..m * net.features);
                let tracer = tracer.slice(start..start + m);
                // Each head: hidden layer (fp16 features in, ReLU), then its logits (f32 in)
                // at this chunk's place in the head's output.
                let heads = [
                    (&net.suspicious, Some(&tracer), &mut suspicious, start),
                    (&net.location, None, &mut location, start * classes),
                ];
                for ([hidden_layer, logit_layer], extra, logits, offset) in heads {
                    self.linear(
                        &self.modules.cnn.linear_f16_in,
                        hidden_layer,
                        &features,
                        extra,
                        &mut hidden,
                        0,
                        batch,
                        true,
                    )?;
                    self.linear(
                        &self.modules.cnn.linear_f32_in,
                        logit_layer,
                        &hidden.slice(..),
                        None,
                        logits,
                        offset,
                        batch,
                        false,
                    )?;
                }
            }
            Ok(Logits {
                suspicious: self
                    .stream
                    .clone_dtoh(&suspicious)
                    .map_err(driver("reading logits"))?,
                location: self
                    .stream
                    .clone_dtoh(&location)
                    .map_err(driver("reading logits"))?,
                classes,
            })
        })
    }

    /// conv3x3 + bias + ReLU of `batch` regions: `x` [batch][Cin][h][w] → `out` [batch][Cout][h][w].
    fn conv(
        &self,
        conv: &DeviceConv,
        x: &CudaView<'_, u16>,
        out: &mut CudaSlice<u16>,
        batch: i32,
    ) -> Result<(), GpuError> {
        let k = &self.modules.cnn;
        let pixels = batch as u64 * (conv.h * conv.w) as u64;
        let (function, config) = if self.info.tensor_cores {
            let (function, bn) = if conv.out_channels <= 32 {
                (&k.conv_mma_n32, 32)
            } else {
                (&k.conv_mma_n64, 64)
            };
            let blocks_m = u32::try_from(pixels.div_ceil(u64::from(BM)))
                .map_err(|_| invalid(format!("{pixels} pixels")))?;
            let blocks_n = conv.out_channels.div_ceil(bn) as u32;
            let config = LaunchConfig {
                grid_dim: (blocks_m, blocks_n, 1),
                block_dim: (CONV_THREADS, 1, 1),
                shared_mem_bytes: 0,
            };
            (function, config)
        } else {
            (
                &k.conv_simt,
                grid_1d("conv3x3_relu_simt", pixels * conv.out_channels as u64)?,
            )
        };
        let dims = [
            int(KERNEL, "in channels", conv.in_channels)?,
            int(KERNEL, "out channels", conv.out_channels)?,
            int(KERNEL, "height", conv.h)?,
            int(KERNEL, "width", conv.w)?,
            int(KERNEL, "padded K", conv.kpad)?,
        ];
        let mut launch = self.stream.launch_builder(function);
        launch
            .arg(x)
            .arg(&conv.weight)
            .arg(&conv.bias)
            .arg(out)
            .arg(&batch)
            .arg(&dims[0])
            .arg(&dims[1])
            .arg(&dims[2])
            .arg(&dims[3])
            .arg(&dims[4]);
        // SAFETY: argument types and order match conv3x3_relu_*; x holds batch·Cin·h·w halves
        // (a whole chunk of the input or the previous pooled map), weight Cout·kpad, bias Cout,
        // out ≥ batch·Cout·h·w (sized by max_activation); the kernels guard m < M and co < Cout
        // (tensor cores, only launched at compute ≥ 8.0) or t < batch·Cout·h·w (scalar).
        unsafe { launch.launch(config) }.map_err(driver("conv3x3_relu"))?;
        Ok(())
    }

    /// 2×2 max-pool of `planes` maps of h × w.
    fn maxpool(
        &self,
        x: &CudaSlice<u16>,
        out: &mut CudaSlice<u16>,
        planes: usize,
        h: usize,
        w: usize,
    ) -> Result<(), GpuError> {
        let planes = planes as i64;
        let (hi, wi) = (int(KERNEL, "height", h)?, int(KERNEL, "width", w)?);
        let config = grid_1d("maxpool2", planes as u64 * (h / 2 * w / 2) as u64)?;
        let mut launch = self.stream.launch_builder(&self.modules.cnn.maxpool);
        launch.arg(x).arg(out).arg(&planes).arg(&hi).arg(&wi);
        // SAFETY: x holds planes·h·w halves, out ≥ planes·(h/2)·(w/2) (the next layer's input,
        // within max_activation per region); h and w are even (checked at load); guarded per
        // output element.
        unsafe { launch.launch(config) }.map_err(driver("maxpool2"))?;
        Ok(())
    }

    /// `out[offset ..]` = the layer applied to `batch` rows of `x` (fp16 or f32 per `function`).
    #[allow(clippy::too_many_arguments)]
    fn linear<T>(
        &self,
        function: &CudaFunction,
        layer: &DeviceLinear,
        x: &CudaView<'_, T>,
        extra: Option<&CudaView<'_, f32>>,
        out: &mut CudaSlice<f32>,
        offset: usize,
        batch: i32,
        relu: bool,
    ) -> Result<(), GpuError> {
        let in_features = int(KERNEL, "in features", layer.in_features)?;
        let out_features = int(KERNEL, "out features", layer.out_features)?;
        let ldw = int(KERNEL, "weight row", layer.ldw)?;
        let has_extra = i32::from(extra.is_some());
        let relu = i32::from(relu);
        // One warp per output value.
        let config = grid_1d("linear", 32 * batch as u64 * layer.out_features as u64)?;
        // Without the tracer bit the kernel never reads `extra`; any valid pointer will do.
        let unused = layer.bias.slice(..1);
        let extra = extra.unwrap_or(&unused);
        let mut y = out.slice_mut(offset..offset + batch as usize * layer.out_features);
        let mut launch = self.stream.launch_builder(function);
        launch
            .arg(x)
            .arg(&in_features)
            .arg(extra)
            .arg(&has_extra)
            .arg(&layer.weight)
            .arg(&ldw)
            .arg(&layer.bias)
            .arg(&mut y)
            .arg(&batch)
            .arg(&out_features)
            .arg(&relu);
        // SAFETY: argument types and order match linear_*_in; x holds batch·in_features values
        // of the kernel's input type, weight out·ldw, bias out, y batch·out; extra (read only
        // with has_extra) holds batch values; warps guarded against batch·out.
        unsafe { launch.launch(config) }.map_err(driver("linear"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::graph::Layer;
    use crate::model::init::{he_normal, untrained_v1_metadata};
    use crate::model::{Architecture, Model};

    #[test]
    fn the_embedded_model_maps_onto_the_device_network() {
        let model = Model::embedded().unwrap();
        let graph = model.graph();
        let spec = NetworkSpec::from_graph(graph).unwrap();
        assert_eq!(spec.input, [26, 64, 64]);
        let channels: Vec<(usize, usize)> = spec
            .trunk
            .iter()
            .map(|c| (c.in_channels, c.out_channels))
            .collect();
        assert_eq!(channels, [(26, 32), (32, 64), (64, 128), (128, 128)]);
        let shape = |l: &LinearLayer<'_>| (l.in_features, l.out_features);
        assert_eq!(spec.suspicious.map(|l| shape(&l)), [(2049, 128), (128, 1)]);
        assert_eq!(spec.location.map(|l| shape(&l)), [(2048, 128), (128, 23)]);
        // Borrowed, not copied: the very weights the CPU engine runs.
        let Op::Conv(first) = &graph.trunk[0] else {
            panic!("the trunk starts with a convolution")
        };
        assert!(std::ptr::eq(spec.trunk[0].weight, first.weight.as_slice()));
    }

    #[test]
    fn another_layer_order_is_unsupported_not_misread() {
        let mut metadata = untrained_v1_metadata(1);
        let Architecture { trunk, .. } = &mut metadata.architecture;
        // ReLU after the pool: the same function, but not the fused kernel's order.
        trunk.swap(1, 2);
        assert_eq!(trunk[1], Layer::MaxPool2d { size: 2 });
        let bytes = he_normal(metadata, 1).unwrap().to_bytes().unwrap();
        let model = Model::from_bytes(&bytes).unwrap();
        match NetworkSpec::from_graph(model.graph()) {
            Err(GpuError::UnsupportedNetwork(reason)) => {
                assert!(reason.contains("trunk block 1"), "{reason}")
            }
            other => panic!("expected UnsupportedNetwork, got {other:?}"),
        }
    }
}
