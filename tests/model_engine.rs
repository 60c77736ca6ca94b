//! The fast CPU engine against the f64 reference (DESIGN S7): random weights and inputs, every
//! engine configuration through one test body, relative L2 < 1e-4.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::classes::v1_classes;
use uptake::model::graph::{Architecture, Head, Layer};
use uptake::model::init::{he_normal, untrained_v1_metadata};
use uptake::model::reference;
use uptake::model::{EngineConfig, InputSpec, Kernel, Model, ModelMetadata, simd};

/// fp32 accumulation over at most a few thousand products per output stays within ~1e-6
/// relative of the f64 result; 1e-4 is the bound DESIGN S7 sets for the engine.
const TOLERANCE: f64 = 1e-4;

fn random_inputs(model: &Model, n: usize, seed: u64) -> (Vec<f32>, Vec<f32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let x = (0..n * model.graph().input_len())
        .map(|_| rng.random::<f32>())
        .collect();
    let bits = (0..n).map(|i| (i % 2) as f32).collect();
    (x, bits)
}

fn relative_l2(fast: &[f32], reference: &[f64]) -> f64 {
    let diff: f64 = fast
        .iter()
        .zip(reference)
        .map(|(&a, &b)| (f64::from(a) - b).powi(2))
        .sum();
    let norm: f64 = reference.iter().map(|b| b * b).sum();
    (diff / norm).sqrt()
}

/// The one test body: every configuration must match the reference on the same regions.
fn check_against_reference(model: &Model, counts: &[usize], configs: &[EngineConfig]) {
    for &n in counts {
        let (x, bits) = random_inputs(model, n, 7 + n as u64);
        let expected = reference::infer(model.graph(), &x, &bits).unwrap();
        let flat: Vec<f64> = expected
            .iter()
            .flat_map(|r| {
                std::iter::once(r.suspicious_logit).chain(r.location_logits.iter().copied())
            })
            .collect();
        for config in configs {
            let engine = model.engine(*config).unwrap();
            let got = engine.infer(&x, &bits).unwrap();
            assert_eq!(got.len(), n);
            let fast: Vec<f32> = got
                .iter()
                .flat_map(|p| {
                    std::iter::once(p.suspicious_logit).chain(p.location_logits.iter().copied())
                })
                .collect();
            let err = relative_l2(&fast, &flat);
            assert!(
                err < TOLERANCE,
                "n = {n}, {config:?}: relative L2 {err:e}\nfast:      {fast:?}\nreference: {flat:?}"
            );
            for p in &got {
                let sum: f32 = p.location_probs.iter().sum();
                assert!((sum - 1.0).abs() < 1e-5, "softmax sums to {sum}");
                assert!((0.0..=1.0).contains(&p.p_suspicious));
            }
        }
    }
}

/// Every kernel this CPU runs: the portable one always, AVX-512 where present.
fn kernels() -> Vec<Kernel> {
    if simd::available() {
        vec![Kernel::Gemm, Kernel::Avx512]
    } else {
        println!("skipped: the AVX-512 kernel (this CPU lacks AVX-512F)");
        vec![Kernel::Gemm]
    }
}

fn configs() -> Vec<EngineConfig> {
    let mut all = Vec::new();
    for kernel in kernels() {
        for threads in [1, 2, 3] {
            for batch_size in [1, 2, 5, 64] {
                all.push(EngineConfig {
                    threads,
                    batch_size,
                    kernel,
                });
            }
        }
    }
    all
}

/// A small network of the same vocabulary covering every convolution path (implicit "same"
/// 3×3, explicit 5×5 padding 1, 1×1) and the pool-before-ReLU order, so that many
/// configurations stay fast.
fn small_model(seed: u64) -> Model {
    let input = InputSpec {
        plane_offsets_mm: vec![-6.0, 0.0, 6.0],
        plane_size: 18,
        ..InputSpec::default()
    };
    let classes = v1_classes();
    let conv = |name: &str, cin, cout, k, p| Layer::Conv2d {
        name: name.into(),
        in_channels: cin,
        out_channels: cout,
        kernel_size: k,
        padding: p,
    };
    let linear = |name: &str, i, o| Layer::Linear {
        name: name.into(),
        in_features: i,
        out_features: o,
    };
    let architecture = Architecture {
        trunk: vec![
            conv("c0", 6, 7, 3, 1), // "same" and wide: the implicit product
            Layer::Relu,
            conv("c1", 7, 8, 5, 1), // 18 → 16: explicit im2col
            Layer::MaxPool2d { size: 2 },
            Layer::Relu, // 8 × 8
            conv("c2", 8, 12, 3, 1),
            Layer::Relu,
            Layer::MaxPool2d { size: 2 }, // 12 × 4 × 4
            conv("c3", 12, 5, 1, 0),
            Layer::Flatten, // 80
        ],
        heads: vec![
            Head {
                name: "location".into(),
                layers: vec![linear("l1", 80, 16), Layer::Relu, linear("l2", 16, 23)],
            },
            Head {
                name: "suspicious".into(),
                layers: vec![
                    Layer::ConcatTracer,
                    linear("s1", 81, 9),
                    Layer::Relu,
                    linear("s2", 9, 1),
                ],
            },
        ],
    };
    let metadata = ModelMetadata {
        architecture,
        classes,
        input,
        ..untrained_v1_metadata(seed)
    };
    Model::from_bytes(&he_normal(metadata, seed).unwrap().to_bytes().unwrap()).unwrap()
}

fn random_v1(seed: u64) -> Model {
    Model::from_bytes(
        &he_normal(untrained_v1_metadata(seed), seed)
            .unwrap()
            .to_bytes()
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn small_network_matches_reference_in_every_configuration() {
    check_against_reference(&small_model(1), &[1, 3, 7, 13], &configs());
}

#[test]
fn v1_network_matches_reference() {
    let configs: Vec<EngineConfig> = kernels()
        .into_iter()
        .flat_map(|kernel| {
            [
                EngineConfig {
                    threads: 1,
                    batch_size: 64,
                    kernel,
                },
                EngineConfig {
                    threads: 2,
                    batch_size: 2,
                    kernel,
                },
            ]
        })
        .collect();
    check_against_reference(&random_v1(2), &[1, 3], &configs);
}

#[test]
fn tracer_bit_enters_the_suspicious_head_only() {
    let model = random_v1(3);
    let engine = model.engine(EngineConfig::default()).unwrap();
    let (x, _) = random_inputs(&model, 1, 99);
    let psma = &engine.infer(&x, &[0.0]).unwrap()[0];
    let fdg = &engine.infer(&x, &[1.0]).unwrap()[0];
    assert_ne!(psma.suspicious_logit, fdg.suspicious_logit);
    assert_eq!(psma.location_logits, fdg.location_logits);
}

#[test]
fn streaming_gives_the_same_predictions_as_one_call() {
    let model = small_model(4);
    let (x, bits) = random_inputs(&model, 11, 5);
    let per_region = model.graph().input_len();
    let engine = model
        .engine(EngineConfig {
            threads: 2,
            batch_size: 4,
            ..Default::default()
        })
        .unwrap();
    let whole = engine.infer(&x, &bits).unwrap();
    let mut calls = Vec::new();
    let streamed = engine
        .infer_with(11, |first, inputs, tracer_bits| {
            calls.push((first, tracer_bits.len()));
            inputs.copy_from_slice(&x[first * per_region..][..inputs.len()]);
            tracer_bits.copy_from_slice(&bits[first..][..tracer_bits.len()]);
            Ok(())
        })
        .unwrap();
    assert_eq!(calls, [(0, 4), (4, 4), (8, 3)]);
    assert_eq!(whole, streamed);
}

#[test]
fn bad_inference_input_is_an_error() {
    let model = small_model(5);
    let engine = model.engine(EngineConfig::default()).unwrap();
    let (mut x, bits) = random_inputs(&model, 2, 6);
    assert!(engine.infer(&x[1..], &bits).is_err());
    assert!(engine.infer(&x, &bits[..1]).is_err());
    x[100] = f32::NAN;
    let err = engine.infer(&x, &bits).unwrap_err().to_string();
    assert!(err.contains("non-finite"), "{err}");
    assert!(engine.infer(&[], &[]).unwrap().is_empty());
    assert!(
        model
            .engine(EngineConfig {
                threads: 1,
                batch_size: 1 << 20,
                ..Default::default()
            })
            .is_err()
    );
}
