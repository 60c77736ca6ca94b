//! `uptake-train evaluate --findings model.csv [--compare base=other.csv ...]`

use std::path::PathBuf;

use serde::Serialize;
use uptake::model::OperatingPoints;
use uptake_train::eval::bootstrap::{self, BootstrapSpec, Evaluation, PairedTest};
use uptake_train::eval::metrics::{Calls, FindingSet, METRIC_NAMES};

use super::{CliResult, write_json};

#[derive(clap::Args)]
pub struct Args {
    /// Findings CSV: subject,suspicious,p_suspicious,location,predicted_location[,reported].
    #[arg(long)]
    findings: PathBuf,
    /// Other models' findings on the same subjects, NAME=CSV; each is compared with --findings
    /// by a paired z-test, Bonferroni-corrected for the number of comparisons.
    #[arg(long, value_parser = parse_named)]
    compare: Vec<(String, PathBuf)>,
    /// Operating point: suspicious when p_suspicious ≥ threshold (single precision, as the
    /// analyzer compares, so that a finding is called as its report called it).
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
    /// Operating point of findings whose predicted location is distant (M1a, M1b, M1c); without
    /// it --threshold.
    #[arg(long)]
    distant_threshold: Option<f32>,
    /// Call each finding as its report did (the CSV's reported column, which `predict` writes):
    /// each study at the operating points its analysis used, e.g. its tracer's.
    #[arg(long, conflicts_with_all = ["threshold", "distant_threshold"])]
    as_reported: bool,
    /// Subject-level bootstrap resamples.
    #[arg(long, default_value_t = 2000)]
    resamples: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the evaluation as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

fn parse_named(text: &str) -> Result<(String, PathBuf), String> {
    let (name, path) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=CSV, got {text:?}"))?;
    Ok((name.to_string(), PathBuf::from(path)))
}

#[derive(Serialize)]
struct Output {
    evaluation: Evaluation,
    comparisons: Vec<Comparison>,
}

#[derive(Serialize)]
struct Comparison {
    against: String,
    tests: std::collections::BTreeMap<&'static str, Option<PairedTest>>,
}

pub fn run(args: Args) -> CliResult {
    let operating_point = OperatingPoints {
        threshold: args.threshold,
        distant_threshold: args.distant_threshold.unwrap_or(args.threshold),
    };
    if ![operating_point.threshold, operating_point.distant_threshold]
        .iter()
        .all(|t| (0.0..=1.0).contains(t))
        || args.resamples == 0
    {
        return Err("thresholds must lie in [0, 1] and resamples be at least 1".into());
    }
    let spec = BootstrapSpec {
        resamples: args.resamples,
        seed: args.seed,
        calls: if args.as_reported {
            Calls::Reported
        } else {
            Calls::At(operating_point)
        },
    };
    let evaluate = |path: &PathBuf| {
        FindingSet::read_csv(path)
            .and_then(|set| bootstrap::evaluate(&set, spec))
            .map_err(|e| format!("{}: {e}", path.display()))
    };
    let evaluation = evaluate(&args.findings)?;
    print_evaluation(&evaluation);
    let mut comparisons = Vec::new();
    for (name, path) in &args.compare {
        let other = evaluate(path)?;
        let mut tests = std::collections::BTreeMap::new();
        for metric in ["average_precision", "accuracy_suspicious", "accuracy_all"] {
            let test = bootstrap::paired_test(&evaluation, &other, metric, args.compare.len())
                .map_err(|e| e.to_string())?;
            if let Some(t) = &test {
                println!(
                    "vs {name}: {metric} difference {:+.4}, z {:.3}, p {:.4}, Bonferroni p {:.4}",
                    t.difference, t.z, t.p, t.p_bonferroni
                );
            }
            tests.insert(metric, test);
        }
        comparisons.push(Comparison {
            against: name.clone(),
            tests,
        });
    }
    if let Some(path) = &args.json {
        write_json(
            path,
            &Output {
                evaluation,
                comparisons,
            },
        )?;
    }
    Ok(())
}

fn print_evaluation(e: &Evaluation) {
    println!(
        "{} subjects, {} findings; 95 % CI from {} subject-level bootstrap resamples (seed {})",
        e.subjects, e.findings, e.spec.resamples, e.spec.seed
    );
    println!(
        "{:<22}{:>22}{:>9}{:>8}{:>8}{:>8}{:>8}{:>8}",
        "metric", "pooled (CI)", "mean", "min", "Q1", "median", "Q3", "max"
    );
    let show = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    for name in METRIC_NAMES {
        let pooled = e.pooled[name];
        let cell = format!(
            "{} ({}, {})",
            show(pooled.value),
            show(pooled.low),
            show(pooled.high)
        );
        print!("{name:<22}{cell:>22}");
        match e.per_subject.get(name) {
            Some(s) => println!(
                "{:>9.3}{:>8.3}{:>8.3}{:>8.3}{:>8.3}{:>8.3}",
                s.mean, s.min, s.q1, s.median, s.q3, s.max
            ),
            None => println!(),
        }
    }
}
