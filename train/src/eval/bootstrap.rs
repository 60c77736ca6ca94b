//! Subject-level bootstrap: 95 % confidence intervals and the paired z-test.
//!
//! Each replicate draws as many subjects as there are, with replacement, and pools the findings
//! of the drawn subjects (a subject drawn k times counts k times). Subjects are drawn by their
//! position in name order, from a seeded ChaCha8 stream, so two evaluations of different models on
//! the same subjects with the same seed see the same replicates — which the paired test needs.
//!
//! - Interval: 2.5th and 97.5th percentiles (numpy's linear quantile) of the replicates where the
//!   metric is defined (a replicate with no suspicious finding has no average precision).
//! - Paired test (as pROC's bootstrap test): z = (θ_A − θ_B) / sd_b(θ_A,b − θ_B,b), two-sided
//!   p = 2·P(Z > |z|); Bonferroni multiplies p by the number of comparisons (at most 1).

use std::collections::BTreeMap;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use uptake::model::OperatingPoints;

use super::EvalError;
use super::metrics::{Calls, FindingSet, METRIC_NAMES, Metrics};
use super::stats::{Summary, quantile_sorted, sample_std, two_sided_p};

/// How to bootstrap.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BootstrapSpec {
    pub resamples: usize,
    pub seed: u64,
    /// When a finding is called suspicious.
    pub calls: Calls,
}

impl Default for BootstrapSpec {
    fn default() -> Self {
        BootstrapSpec {
            resamples: 2000,
            seed: 0,
            calls: Calls::At(OperatingPoints::single(0.5)),
        }
    }
}

/// A pooled figure with its 95 % bootstrap interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// Replicates in which the metric was defined.
    pub replicates: usize,
}

/// Pooled figures with intervals, per-subject summaries, and the replicates for paired tests.
#[derive(Debug, Clone, Serialize)]
pub struct Evaluation {
    pub subjects: usize,
    pub findings: usize,
    pub spec: BootstrapSpec,
    pub pooled: BTreeMap<&'static str, Interval>,
    pub per_subject: BTreeMap<&'static str, Summary>,
    #[serde(skip)]
    point: Metrics,
    #[serde(skip)]
    replicates: Vec<Metrics>,
    #[serde(skip)]
    subject_names: Vec<String>,
}

/// Multiplicity of each subject (in name order) in each replicate.
pub fn resample_multiplicities(subjects: usize, resamples: usize, seed: u64) -> Vec<Vec<f64>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..resamples)
        .map(|_| {
            let mut counts = vec![0.0; subjects];
            for _ in 0..subjects {
                counts[rng.random_range(0..subjects)] += 1.0;
            }
            counts
        })
        .collect()
}

/// The 95 % interval of a figure from its bootstrap replicates: their 2.5th and 97.5th
/// percentiles (none without replicates).
pub fn percentile_interval(mut replicates: Vec<f64>) -> (Option<f64>, Option<f64>) {
    replicates.sort_by(f64::total_cmp);
    (
        quantile_sorted(&replicates, 0.025),
        quantile_sorted(&replicates, 0.975),
    )
}

/// Each subject's weight in each replicate: [`resample_multiplicities`] over the subjects in
/// name order, given back in the order of `names`, so the draws do not depend on row order
/// (subjects that share a name keep their rows' order among themselves).
pub fn subject_weights<S: AsRef<str>>(names: &[S], resamples: usize, seed: u64) -> Vec<Vec<f64>> {
    let n = names.len();
    let mut by_name: Vec<usize> = (0..n).collect();
    by_name.sort_by(|&a, &b| names[a].as_ref().cmp(names[b].as_ref()));
    let mut rank = vec![0; n];
    for (r, &s) in by_name.iter().enumerate() {
        rank[s] = r;
    }
    resample_multiplicities(n, resamples, seed)
        .iter()
        .map(|counts| (0..n).map(|s| counts[rank[s]]).collect())
        .collect()
}

/// Evaluates a set of findings: pooled metrics with bootstrap intervals and per-subject summaries.
/// Fails only when the calls need reports' calls the findings do not carry.
pub fn evaluate(set: &FindingSet, spec: BootstrapSpec) -> Result<Evaluation, EvalError> {
    set.check(spec.calls)?;
    let n = set.subjects.len();
    let point = set.pooled(&vec![1.0; n], spec.calls);
    let replicates: Vec<Metrics> = subject_weights(&set.subjects, spec.resamples, spec.seed)
        .iter()
        .map(|weights| set.pooled(weights, spec.calls))
        .collect();
    let mut pooled = BTreeMap::new();
    for (k, name) in METRIC_NAMES.iter().enumerate() {
        let values: Vec<f64> = replicates.iter().filter_map(|m| m.values()[k]).collect();
        let defined = values.len();
        let (low, high) = percentile_interval(values);
        pooled.insert(
            *name,
            Interval {
                value: point.values()[k],
                low,
                high,
                replicates: defined,
            },
        );
    }
    let mut subject_names = set.subjects.clone();
    subject_names.sort();
    Ok(Evaluation {
        subjects: n,
        findings: set.findings.len(),
        spec,
        pooled,
        per_subject: set.per_subject_summaries(spec.calls),
        point,
        replicates,
        subject_names,
    })
}

/// Result of a two-sided paired z-test of one metric between two evaluations.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PairedTest {
    pub difference: f64,
    pub z: f64,
    pub p: f64,
    /// p × number of comparisons, at most 1.
    pub p_bonferroni: f64,
}

/// Paired z-test of metric `metric` (a name from [`METRIC_NAMES`]) between `a` and `b`, with
/// Bonferroni correction for `comparisons` tests. `Ok(None)` when the metric is undefined or the
/// replicate differences do not vary.
pub fn paired_test(
    a: &Evaluation,
    b: &Evaluation,
    metric: &str,
    comparisons: usize,
) -> Result<Option<PairedTest>, EvalError> {
    if a.subject_names != b.subject_names || a.spec != b.spec {
        return Err(EvalError::SubjectMismatch(format!(
            "{} vs {} subjects (or different bootstrap settings)",
            a.subjects, b.subjects
        )));
    }
    let Some(k) = METRIC_NAMES.iter().position(|&m| m == metric) else {
        return Ok(None);
    };
    let (Some(point_a), Some(point_b)) = (a.point.values()[k], b.point.values()[k]) else {
        return Ok(None);
    };
    let differences: Vec<f64> = a
        .replicates
        .iter()
        .zip(&b.replicates)
        .filter_map(|(ra, rb)| Some(ra.values()[k]? - rb.values()[k]?))
        .collect();
    let Some(sd) = sample_std(&differences).filter(|sd| *sd > 0.0) else {
        return Ok(None);
    };
    let difference = point_a - point_b;
    let z = difference / sd;
    let p = two_sided_p(z);
    Ok(Some(PairedTest {
        difference,
        z,
        p,
        p_bonferroni: bonferroni(p, comparisons),
    }))
}

/// Bonferroni-corrected p-value for `comparisons` tests.
pub fn bonferroni(p: f64, comparisons: usize) -> f64 {
    (p * comparisons.max(1) as f64).min(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::metrics::Finding;

    fn synthetic(subjects: usize, shift: f64, seed: u64) -> FindingSet {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut rows = Vec::new();
        for s in 0..subjects {
            for _ in 0..6 {
                let suspicious = rng.random_bool(0.3);
                let base = if suspicious { 0.6 } else { 0.4 };
                let p: f64 = (base
                    + shift * (if suspicious { 1.0 } else { -1.0 })
                    + rng.random_range(-0.35..0.35))
                .clamp(0.0, 1.0);
                rows.push((
                    format!("s{s:03}"),
                    Finding {
                        subject: 0,
                        suspicious,
                        p_suspicious: p,
                        location: Some(rng.random_range(0..3)),
                        predicted_location: rng.random_range(0..3),
                        reported: None,
                    },
                ));
            }
        }
        FindingSet::new(rows).unwrap()
    }

    #[test]
    fn multiplicities_sum_to_subject_count_and_repeat_with_seed() {
        let draws = resample_multiplicities(7, 50, 3);
        assert!(draws.iter().all(|c| c.iter().sum::<f64>() == 7.0));
        assert_eq!(draws, resample_multiplicities(7, 50, 3));
        assert_ne!(draws, resample_multiplicities(7, 50, 4));
    }

    #[test]
    fn a_subject_keeps_its_draws_wherever_its_row_is() {
        let names = ["c", "a", "d", "b", "e"];
        let mut reversed = names;
        reversed.reverse();
        let (weights, moved) = (
            subject_weights(&names, 50, 3),
            subject_weights(&reversed, 50, 3),
        );
        for (w, m) in weights.iter().zip(&moved) {
            let back: Vec<f64> = m.iter().rev().copied().collect();
            assert_eq!(w, &back);
        }
        // In name order the weights are the plain multiplicities.
        assert_eq!(
            subject_weights(&["a", "b", "c", "d", "e"], 50, 3),
            resample_multiplicities(5, 50, 3)
        );
    }

    #[test]
    fn interval_brackets_the_pooled_value() {
        let set = synthetic(40, 0.1, 1);
        let eval = evaluate(&set, BootstrapSpec::default()).unwrap();
        let ap = eval.pooled["average_precision"];
        let (value, low, high) = (ap.value.unwrap(), ap.low.unwrap(), ap.high.unwrap());
        assert!(low < value && value < high, "{low} {value} {high}");
        assert_eq!(eval.pooled["recall"].replicates, 2000);
    }

    #[test]
    fn identical_subjects_give_a_degenerate_interval() {
        let one = synthetic(1, 0.1, 2);
        let rows: Vec<(String, Finding)> = (0..5)
            .flat_map(|s| {
                one.findings
                    .iter()
                    .map(move |f| (format!("copy{s}"), f.clone()))
            })
            .collect();
        let eval = evaluate(&FindingSet::new(rows).unwrap(), BootstrapSpec::default()).unwrap();
        let ppv = eval.pooled["ppv"];
        assert_eq!(ppv.low, ppv.value);
        assert_eq!(ppv.high, ppv.value);
    }

    #[test]
    fn paired_test_separates_a_better_model_and_not_itself() {
        let spec = BootstrapSpec::default();
        let weak = evaluate(&synthetic(60, 0.0, 5), spec).unwrap();
        let strong = evaluate(&synthetic(60, 0.25, 5), spec).unwrap();
        let t = paired_test(&strong, &weak, "average_precision", 3)
            .unwrap()
            .unwrap();
        assert!(t.difference > 0.0 && t.p < 0.001, "{t:?}");
        assert_eq!(t.p_bonferroni, (3.0 * t.p).min(1.0));
        assert!(
            paired_test(&weak, &weak, "average_precision", 1)
                .unwrap()
                .is_none()
        );
        let other = evaluate(&synthetic(59, 0.0, 5), spec).unwrap();
        assert!(paired_test(&weak, &other, "recall", 1).is_err());
    }

    #[test]
    fn z_is_difference_over_replicate_sd() {
        let spec = BootstrapSpec {
            resamples: 200,
            ..BootstrapSpec::default()
        };
        let a = evaluate(&synthetic(30, 0.2, 9), spec).unwrap();
        let b = evaluate(&synthetic(30, 0.0, 9), spec).unwrap();
        let t = paired_test(&a, &b, "recall", 1).unwrap().unwrap();
        let diffs: Vec<f64> = a
            .replicates
            .iter()
            .zip(&b.replicates)
            .map(|(x, y)| x.recall.unwrap() - y.recall.unwrap())
            .collect();
        let mean = diffs.iter().sum::<f64>() / diffs.len() as f64;
        let var = diffs.iter().map(|d| (d - mean).powi(2)).sum::<f64>() / (diffs.len() - 1) as f64;
        let expected = (a.point.recall.unwrap() - b.point.recall.unwrap()) / var.sqrt();
        assert!((t.z - expected).abs() < 1e-12);
    }

    #[test]
    fn bonferroni_caps_at_one() {
        assert_eq!(bonferroni(0.02, 5), 0.1);
        assert_eq!(bonferroni(0.4, 5), 1.0);
    }
}
