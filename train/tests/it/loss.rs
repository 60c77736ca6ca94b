//! The training loss against a direct computation, and the weight of distant findings.

use burn::prelude::*;
use burn::tensor::{Int, TensorData};
use uptake::classes::{v1_classes, v1_id};
use uptake_train::network::{Output, Targets, loss};
use uptake_train::train::suspicious_weight;

/// BCE with logits of one finding, in f64.
fn bce(x: f64, y: f64) -> f64 {
    -(y * (1.0 / (1.0 + (-x).exp())).ln() + (1.0 - y) * (1.0 / (1.0 + x.exp())).ln())
}

fn loss_of(logits: &[f32], labels: &[f32], weights: &[f32], device: &Device) -> f64 {
    focal_loss_of(logits, labels, weights, 0.0, device)
}

fn focal_loss_of(
    logits: &[f32],
    labels: &[f32],
    weights: &[f32],
    focal_gamma: f32,
    device: &Device,
) -> f64 {
    let n = logits.len();
    let classes = 23;
    let output = Output {
        suspicious: Tensor::from_data(TensorData::new(logits.to_vec(), [n, 1]), device),
        location: Tensor::zeros([n, classes], device),
    };
    let targets = Targets {
        suspicious: Tensor::from_data(TensorData::new(labels.to_vec(), [n, 1]), device),
        location: Tensor::<1, Int>::zeros([n], device),
        // No known location: the cross-entropy term is zero and the loss is the BCE alone.
        location_known: Tensor::zeros([n], device),
        suspicious_weight: Tensor::from_data(TensorData::new(weights.to_vec(), [n, 1]), device),
        focal_gamma,
    };
    f64::from(loss(&output, &targets).into_scalar::<f32>())
}

#[test]
fn suspicious_term_is_the_weighted_mean_bce() {
    let device = Device::flex();
    let logits = [2.5f32, -1.0, 0.3, -4.0, 7.0, 0.0];
    let labels = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0];
    let terms: Vec<f64> = logits
        .iter()
        .zip(&labels)
        .map(|(&x, &y)| bce(x.into(), y.into()))
        .collect();
    let plain = terms.iter().sum::<f64>() / terms.len() as f64;
    let got = loss_of(&logits, &labels, &[1.0; 6], &device);
    assert!((got - plain).abs() < 1e-5, "{got} vs {plain}");

    let weights = [3.0f32, 1.0, 3.0, 1.0, 1.0, 3.0];
    let weighted = terms
        .iter()
        .zip(&weights)
        .map(|(t, &w)| t * f64::from(w))
        .sum::<f64>()
        / weights.iter().map(|&w| f64::from(w)).sum::<f64>();
    let got = loss_of(&logits, &labels, &weights, &device);
    assert!((got - weighted).abs() < 1e-5, "{got} vs {weighted}");
    assert!(
        (weighted - plain).abs() > 1e-2,
        "the weights must matter here"
    );
}

/// The focal term: each finding's BCE scaled by (1 − p_t)^γ, p_t = σ(x) for a suspicious finding
/// and 1 − σ(x) for a physiological one, in the weighted mean of the plain loss.
#[test]
fn focal_term_scales_each_bce_by_its_miss() {
    let device = Device::flex();
    let logits = [2.5f32, -1.0, 0.3, -4.0, 7.0, 0.0, -30.0];
    let labels = [1.0f32, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0];
    let weights = [3.0f32, 1.0, 3.0, 1.0, 1.0, 3.0, 1.0];
    for gamma in [0.5f32, 2.0] {
        let focused: f64 = logits
            .iter()
            .zip(&labels)
            .zip(&weights)
            .map(|((&x, &y), &w)| {
                let p = 1.0 / (1.0 + (-f64::from(x)).exp());
                let p_t = if y == 1.0 { p } else { 1.0 - p };
                f64::from(w) * (1.0 - p_t).powf(gamma.into()) * bce(x.into(), y.into())
            })
            .sum::<f64>()
            / weights.iter().map(|&w| f64::from(w)).sum::<f64>();
        let got = focal_loss_of(&logits, &labels, &weights, gamma, &device);
        assert!(
            (got - focused).abs() < 1e-5 * focused.max(1.0),
            "gamma {gamma}: {got} vs {focused}"
        );
        let plain = loss_of(&logits, &labels, &weights, &device);
        assert!(
            got < plain - 1e-2,
            "gamma {gamma} must discount easy findings"
        );
    }
}

/// Where σ saturates (|x| = 120 in f32) the miss is clamped, so γ < 1 still has finite gradients,
/// and a confidently wrong finding keeps a gradient that pushes it back.
#[test]
fn focal_term_has_finite_gradients_where_the_sigmoid_saturates() {
    let device = Device::flex().autodiff();
    let logits = [120.0f32, -120.0, 120.0, -120.0];
    let labels = [1.0f32, 0.0, 0.0, 1.0];
    let n = logits.len();
    let x =
        Tensor::<2>::from_data(TensorData::new(logits.to_vec(), [n, 1]), &device).require_grad();
    let output = Output {
        suspicious: x.clone(),
        location: Tensor::zeros([n, 23], &device),
    };
    let targets = Targets {
        suspicious: Tensor::from_data(TensorData::new(labels.to_vec(), [n, 1]), &device),
        location: Tensor::<1, Int>::zeros([n], &device),
        location_known: Tensor::zeros([n], &device),
        suspicious_weight: Tensor::ones([n, 1], &device),
        focal_gamma: 0.5,
    };
    let grads = loss(&output, &targets).backward();
    let grad: Vec<f32> = x.grad(&grads).unwrap().into_data().try_to_vec().unwrap();
    assert!(grad.iter().all(|g| g.is_finite()), "{grad:?}");
    // The two wrong ones (physiological at +120, suspicious at −120) are pushed back.
    assert!(grad[2] > 0.1 && grad[3] < -0.1, "{grad:?}");
}

/// A suspicious finding at x = 20 misses by σ(−20) ≈ 2e-9, which 1 − σ(20) loses in f32.
#[test]
fn focal_term_keeps_the_miss_of_a_confident_finding() {
    let device = Device::flex();
    let miss = 1.0 / (1.0 + 20f64.exp());
    let expected = miss.sqrt() * bce(20.0, 1.0);
    let got = focal_loss_of(&[20.0], &[1.0], &[1.0], 0.5, &device);
    assert!(
        (got - expected).abs() < 1e-3 * expected,
        "{got} vs {expected}"
    );
}

#[test]
fn distant_weight_goes_to_findings_that_stage_as_mim() {
    let classes = v1_classes();
    let id = |name| Some(v1_id(name).unwrap());
    for (location, weight) in [
        (id("bone"), 3.0),
        (id("liver"), 3.0),
        (id("ln_supradiaphragmatic"), 3.0),
        // Common iliac nodes are M1a by default (N only in the alternative reading).
        (id("ln_common_iliac"), 3.0),
        (id("prostate"), 1.0),
        (id("bladder"), 1.0),
        (id("ln_pelvic"), 1.0),
        (None, 1.0),
        (Some(999), 1.0),
    ] {
        assert_eq!(
            suspicious_weight(&classes, location, 3.0),
            weight,
            "{location:?}"
        );
    }
}

/// Runs recorded before the distant weight existed resume with the plain loss.
#[test]
fn earlier_run_settings_read_as_the_plain_loss() {
    let text = r#"{"strategy":"VI","max_epochs":5,"batch_size":32,"learning_rate":5e-05,
                   "patience":2,"seed":0}"#;
    let config: uptake_train::train::TrainConfig = serde_json::from_str(text).unwrap();
    assert_eq!(config.distant_weight, 1.0);
}
