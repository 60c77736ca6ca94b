//! The exported model file gives the same outputs in the plugin's CPU engine as the network in
//! burn (DESIGN S7), and batch-norm folding keeps the network's function.

use burn::module::{Param, RunningState};
use burn::prelude::*;
use burn::tensor::{Distribution, TensorData};
use uptake::model::{EngineConfig, InputSpec, Model, TrainingInfo};
use uptake_train::export::{model_writer, v1_metadata};
use uptake_train::network::{NetShape, UptakeNet};

/// A network whose batch norms carry non-trivial statistics and affine parameters.
fn network(device: &Device) -> UptakeNet {
    device.seed(42);
    let mut net = UptakeNet::new(NetShape::v1(), device);
    for block in &mut net.blocks {
        let norm = block.norm.as_mut().unwrap();
        let c = norm.gamma.dims()[0];
        let uniform = |lo, hi| Tensor::<1>::random([c], Distribution::Uniform(lo, hi), device);
        norm.gamma = Param::from_tensor(uniform(0.5, 1.5));
        norm.beta = Param::from_tensor(uniform(-0.2, 0.2));
        norm.running_mean = RunningState::new(uniform(-0.1, 0.1));
        norm.running_var = RunningState::new(uniform(0.2, 2.0));
    }
    net
}

fn inputs(n: usize, device: &Device) -> (Vec<f32>, Vec<f32>) {
    let x = Tensor::<4>::random([n, 26, 64, 64], Distribution::Uniform(0.0, 1.0), device);
    let bits = (0..n).map(|i| (i % 2) as f32).collect();
    (x.into_data().try_to_vec::<f32>().unwrap(), bits)
}

/// Logits [N, 1 + 23] (suspicious first, as the engine writes them).
fn burn_logits(net: &UptakeNet, x: &[f32], bits: &[f32], device: &Device) -> Vec<f32> {
    let n = bits.len();
    let out = net.forward(
        Tensor::from_data(TensorData::new(x.to_vec(), [n, 26, 64, 64]), device),
        Tensor::from_data(TensorData::new(bits.to_vec(), [n, 1]), device),
    );
    let s = out.suspicious.into_data().try_to_vec::<f32>().unwrap();
    let l = out.location.into_data().try_to_vec::<f32>().unwrap();
    (0..n)
        .flat_map(|i| std::iter::once(s[i]).chain(l[i * 23..(i + 1) * 23].iter().copied()))
        .collect()
}

/// max |a − b| / max |b|: differences relative to the outputs' scale.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let diff = a
        .iter()
        .zip(b)
        .fold(0.0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}

#[test]
fn folding_batch_norm_keeps_the_function() {
    let device = Device::flex();
    let net = network(&device);
    let (x, bits) = inputs(3, &device);
    let with_norm = burn_logits(&net, &x, &bits, &device);
    let folded = burn_logits(&net.fold(), &x, &bits, &device);
    let err = relative_error(&folded, &with_norm);
    assert!(err < 1e-5, "folded vs batch norm: {err}");
    eprintln!("folded vs batch norm: {err:.2e}");
    // The comparison can fail: a network without the norms differs.
    let stripped = net.clone().without_norm();
    assert!(relative_error(&burn_logits(&stripped, &x, &bits, &device), &with_norm) > 1e-3);
}

#[test]
fn exported_file_matches_burn_in_the_cpu_engine() {
    let device = Device::flex();
    let net = network(&device);
    let metadata = v1_metadata(
        "parity-test",
        TrainingInfo::default(),
        0.5,
        InputSpec::default(),
    );
    let bytes = model_writer(&net, metadata).unwrap().to_bytes().unwrap();
    let model = Model::from_bytes(&bytes).unwrap();
    // The file stores fp16: compare the engine with burn running the same fp16 weights, read
    // back from the file's tensors into a folded burn network.
    let file = uptake::model::format::parse(&bytes).unwrap();
    let lookup = |name: &str| {
        file.tensors
            .get(name)
            .map(|t| (t.shape.clone(), t.values.clone()))
    };
    let from_file = UptakeNet::from_tensors(NetShape::v1(), &lookup, &device).unwrap();
    let (x, bits) = inputs(5, &device);
    let engine = model.engine(EngineConfig::default()).unwrap();
    let mut engine_logits = vec![0.0; 5 * 24];
    engine.infer_logits(&x, &bits, &mut engine_logits).unwrap();
    let burn = burn_logits(&from_file, &x, &bits, &device);
    let err = relative_error(&engine_logits, &burn);
    assert!(err < 1e-4, "engine vs burn on the file's weights: {err}");
    // And the fp16 file stays close to the trained f32 network (rounding only).
    let original = burn_logits(&net, &x, &bits, &device);
    let err16 = relative_error(&engine_logits, &original);
    assert!(err16 < 1e-2, "fp16 export vs f32 network: {err16}");
    eprintln!(
        "engine vs burn on the file's weights: {err:.2e}; fp16 file vs f32 network: {err16:.2e}"
    );
    // The tracer bit reaches the suspicious logit only: one region with bit 0 and bit 1.
    let per_region = 26 * 64 * 64;
    let twice: Vec<f32> = x[..per_region]
        .iter()
        .chain(&x[..per_region])
        .copied()
        .collect();
    let mut pair = vec![0.0; 2 * 24];
    engine.infer_logits(&twice, &[0.0, 1.0], &mut pair).unwrap();
    assert_ne!(pair[0], pair[24]);
    assert_eq!(pair[1..24], pair[25..48]);
}
