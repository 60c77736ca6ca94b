//! `uptake-train predict --model model.safetensors --phantom-psma 10 --phantom-seed 9000 --out dir`
//!
//! Runs the plugin's own analysis (`uptake::Analyzer`: the shipped CPU engine, not the training
//! framework) on annotated studies the model never saw, labels every reported finding against the
//! ground truth with the training labelling rule, and writes what `evaluate` and `agreement`
//! read: `findings.csv` and `staging.csv`, plus `detection.csv` (lesions per subject and how many
//! were found) and `staging-ceiling.csv` (the stage of the same regions read as the ground truth
//! labels them: what a perfect classifier would give). Prints lesion detection recall, finding
//! precision and both agreements.

use std::fmt::Write as _;
use std::path::PathBuf;

use uptake::Tracer;
use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig};
use uptake::staging::StagingConfig;
use uptake_train::eval::agreement::{self, StagePair};
use uptake_train::eval::metrics::{FindingSet, METRIC_NAMES};
use uptake_train::predict::{Detection, ceiling_stage, label_report, m_code};

use super::train::Cohort;
use super::{CliResult, agreement as agreement_cli};

#[derive(clap::Args)]
pub struct Args {
    /// Model file; without it the model embedded in the library.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    cohort: Cohort,
    /// Folder for findings.csv, staging.csv and detection.csv.
    #[arg(long)]
    out: PathBuf,
    /// Analysis worker threads; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Operating point (suspicious when p_suspicious ≥ it) for the findings' flags and the stage;
    /// without it the model's own. For choosing a model's operating point on validation studies.
    #[arg(long)]
    threshold: Option<f32>,
}

pub fn run(args: Args) -> CliResult {
    let analyzer = Analyzer::new(AnalyzerConfig {
        model_path: args.model.clone(),
        threads: args.threads,
        ..AnalyzerConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let threshold = args.threshold.unwrap_or(analyzer.model().threshold());
    // The staging rules' own check, before any study is generated.
    StagingConfig {
        threshold,
        ..StagingConfig::default()
    }
    .validate()
    .map_err(|e| e.to_string())?;
    let options = AnalyzeOptions {
        threshold: Some(threshold),
        ..AnalyzeOptions::default()
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut rows = Vec::new();
    let mut stages = Vec::new();
    let mut ceilings = Vec::new();
    let mut detections = Vec::new();
    args.cohort
        .for_each_study(&[Tracer::Psma, Tracer::Fdg], "analyzing studies", |study| {
            let report = analyzer
                .analyze(&study.pet, &study.ct, study.info.tracer, &options)
                .map_err(|e| format!("{}: {e}", study.info.subject))?;
            let (findings, detection) = label_report(&study, &report)?;
            let ceiling = ceiling_stage(&report, &findings, analyzer.model().classes())
                .map_err(|e| format!("{}: {e}", study.info.subject))?;
            rows.extend(
                findings
                    .into_iter()
                    .map(|f| (study.info.subject.clone(), f)),
            );
            detections.push(detection);
            if let Some(expert) = &study.info.stage {
                let pair = |tnm: &uptake::staging::MiTnm| {
                    let names = [expert.n.as_str(), tnm.n.code(), &expert.m, &m_code(tnm)];
                    StagePair::parse(&study.info.subject, names)
                        .map_err(|e| format!("{}: {e}", study.info.subject))
                };
                stages.push(pair(&report.staging)?);
                ceilings.push(pair(&ceiling)?);
            }
            Ok(())
        })?;

    let findings = FindingSet::new(rows).map_err(|e| e.to_string())?;
    findings
        .write_csv(&args.out.join("findings.csv"))
        .map_err(|e| e.to_string())?;
    write(&args.out.join("detection.csv"), &detection_csv(&detections))?;
    let sum = |f: fn(&Detection) -> usize| detections.iter().map(f).sum::<usize>();
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.3} ({a}/{b})", a as f64 / b as f64)
        }
    };
    println!(
        "{} subjects, {} findings (model {}, threshold {threshold})",
        detections.len(),
        findings.findings.len(),
        analyzer.model().model_id()
    );
    println!(
        "lesion detection recall   {}",
        ratio(sum(|d| d.detected), sum(|d| d.lesions))
    );
    println!(
        "finding precision (PPV)   {}",
        ratio(
            sum(|d| d.true_positive_findings),
            sum(|d| d.suspicious_findings)
        )
    );
    // Pooled figures at the operating point; `evaluate` adds intervals and summaries.
    let pooled = findings.pooled(&vec![1.0; findings.subjects.len()], f64::from(threshold));
    for (name, value) in METRIC_NAMES.iter().zip(pooled.values()) {
        let value = value.map_or("-".to_string(), |v| format!("{v:.3}"));
        println!("{name:<26}{value}");
    }
    if !stages.is_empty() {
        for (file, rows, title) in [
            ("staging.csv", &stages, "Staging agreement"),
            (
                "staging-ceiling.csv",
                &ceilings,
                "Ceiling: the same regions staged by their ground-truth labels",
            ),
        ] {
            write(&args.out.join(file), &agreement::to_csv(rows))?;
            println!("\n{title}");
            agreement_cli::print(&agreement::agreement(rows));
        }
    }
    eprintln!(
        "wrote findings.csv, detection.csv{} to {}",
        if stages.is_empty() {
            ""
        } else {
            ", staging.csv, staging-ceiling.csv"
        },
        args.out.display()
    );
    Ok(())
}

fn detection_csv(detections: &[Detection]) -> String {
    let mut text =
        "subject,lesions,detected,suspicious_findings,true_positive_findings\n".to_string();
    for d in detections {
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            d.subject, d.lesions, d.detected, d.suspicious_findings, d.true_positive_findings
        );
    }
    text
}

fn write(path: &std::path::Path, text: &str) -> CliResult {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
