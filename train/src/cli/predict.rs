//! `uptake-train predict --model model.safetensors --phantom-psma 10 --phantom-seed 9000 --out dir`
//!
//! Runs the plugin's own analysis (`uptake::Analyzer`: the shipped CPU engine, not the training
//! framework) on annotated studies the model never saw, labels every reported finding against the
//! ground truth with the training labelling rule, and writes what `evaluate` and `agreement`
//! read: `findings.csv` and `staging.csv`, plus `detection.csv` (lesions per subject and how many
//! were found), `lesions.csv` (every lesion and its fate: reported, not called by the network,
//! or lost in the regions: merged into another lesion's or into physiological uptake, or no
//! region at all) and `staging-ceiling.csv` (the stage of the same regions read as the ground
//! truth labels them: what a perfect classifier would give). Prints lesion detection recall and
//! the count of each fate, finding precision and both agreements. With `--grid`, also the
//! agreement at every pair of operating points (local and regional, distant) from the same
//! analyses (`operating-points.csv`), for choosing a model's operating points on validation
//! studies.

use std::fmt::Write as _;
use std::path::PathBuf;

use uptake::classes::LocationClass;
use uptake::model::OperatingPoints;
use uptake::staging::StagingConfig;
use uptake::{AnalyzeOptions, Analyzer, AnalyzerConfig, Tracer};
use uptake_train::eval::agreement::{self, StagePair};
use uptake_train::eval::bootstrap::BootstrapSpec;
use uptake_train::eval::metrics::{Calls, FindingSet, METRIC_NAMES};
use uptake_train::predict::{Detection, LesionFate, ceiling_stage, label_report, m_code, restage};

use super::train::Cohort;
use super::{CliResult, agreement as agreement_cli};

#[derive(clap::Args)]
pub struct Args {
    /// Model file; without it the model embedded in the library.
    #[arg(long)]
    model: Option<PathBuf>,
    #[command(flatten)]
    cohort: Cohort,
    /// Folder for the CSV files.
    #[arg(long)]
    out: PathBuf,
    /// Analysis worker threads; 0 = one per core.
    #[arg(long, default_value_t = 0)]
    threads: usize,
    /// Operating point (suspicious when p_suspicious ≥ it) for the findings' flags and the stage;
    /// without it the model's own for each study's tracer. Given alone, it holds for every
    /// finding.
    #[arg(long)]
    threshold: Option<f32>,
    /// Operating point of distant findings (M1a, M1b, M1c); without it --threshold when given,
    /// else the model's own for each study's tracer.
    #[arg(long)]
    distant_threshold: Option<f32>,
    /// Operating points (comma-separated) at which every study is also staged, each pair of
    /// them as (local and regional, distant).
    #[arg(long, value_delimiter = ',')]
    grid: Vec<f32>,
}

pub fn run(args: Args) -> CliResult {
    let analyzer = Analyzer::new(AnalyzerConfig {
        model_path: args.model.clone(),
        threads: args.threads,
        ..AnalyzerConfig::default()
    })
    .map_err(|e| e.to_string())?;
    let model = analyzer.model();
    let tracers = [Tracer::Psma, Tracer::Fdg];
    let points = tracers
        .map(|tracer| analyzer.operating_points(tracer, args.threshold, args.distant_threshold));
    let grid: Vec<OperatingPoints> = args
        .grid
        .iter()
        .flat_map(|&threshold| {
            args.grid
                .iter()
                .map(move |&distant_threshold| OperatingPoints {
                    threshold,
                    distant_threshold,
                })
        })
        .collect();
    // The staging rules' own check, before any study is generated.
    for p in points.iter().chain(&grid) {
        StagingConfig::default()
            .at(*p)
            .validate()
            .map_err(|e| e.to_string())?;
    }
    let options = AnalyzeOptions {
        threshold: args.threshold,
        distant_threshold: args.distant_threshold,
        regions: args.cohort.region_params()?,
        ..AnalyzeOptions::default()
    };
    std::fs::create_dir_all(&args.out).map_err(|e| format!("{}: {e}", args.out.display()))?;
    let mut rows = Vec::new();
    let mut stages = Vec::new();
    let mut ceilings = Vec::new();
    let mut detections = Vec::new();
    let mut grid_stages = vec![Vec::new(); grid.len()];
    args.cohort
        .for_each_study(&tracers, "analyzing studies", |study| {
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
                for (&points, at) in grid.iter().zip(&mut grid_stages) {
                    let tnm = restage(&report, model.classes(), points)
                        .map_err(|e| format!("{}: {e}", study.info.subject))?;
                    at.push((study.info.tracer, pair(&tnm)?));
                }
            }
            Ok(())
        })?;

    let findings = FindingSet::new(rows).map_err(|e| e.to_string())?;
    findings
        .write_csv(&args.out.join("findings.csv"))
        .map_err(|e| e.to_string())?;
    write(&args.out.join("detection.csv"), &detection_csv(&detections))?;
    write(
        &args.out.join("lesions.csv"),
        &lesions_csv(&detections, model.classes()),
    )?;
    let sum = |f: fn(&Detection) -> usize| detections.iter().map(f).sum::<usize>();
    let ratio = |a: usize, b: usize| {
        if b == 0 {
            "-".to_string()
        } else {
            format!("{:.3} ({a}/{b})", a as f64 / b as f64)
        }
    };
    println!(
        "{} subjects, {} findings (model {})",
        detections.len(),
        findings.findings.len(),
        model.model_id()
    );
    println!(
        "lesion detection recall   {}",
        ratio(sum(Detection::detected), sum(|d| d.lesions.len()))
    );
    // Where the other lesions were lost: the network, or the regions (the ceiling's losses).
    for fate in &LesionFate::ALL[1..] {
        let count = detections
            .iter()
            .flat_map(|d| &d.lesions)
            .filter(|l| l.fate == *fate)
            .count();
        println!("  lesions {:<22}{count}", fate.name());
    }
    println!(
        "finding precision (PPV)   {}",
        ratio(
            sum(|d| d.true_positive_findings),
            sum(|d| d.suspicious_findings)
        )
    );
    let false_positives = sum(|d| d.suspicious_findings - d.true_positive_findings);
    println!(
        "physiological sites called suspicious {}",
        ratio(false_positives, sum(|d| d.physiological_findings))
    );
    // autoPET's figures: Dice and false-negative volume over the studies with lesions, false-
    // positive volume over all.
    let mean = |values: Vec<f64>| {
        if values.is_empty() {
            "-".to_string()
        } else {
            format!("{:.3}", values.iter().sum::<f64>() / values.len() as f64)
        }
    };
    let seg = |d: &Detection| d.segmentation;
    println!(
        "suspicious mask (autoPET): Dice {}, FP volume {} ml, FN volume {} ml (means per study)",
        mean(detections.iter().filter_map(|d| seg(d).dice).collect()),
        mean(
            detections
                .iter()
                .map(|d| seg(d).false_positive_ml)
                .collect()
        ),
        mean(
            detections
                .iter()
                .filter_map(|d| seg(d).false_negative_ml)
                .collect()
        ),
    );
    // Pooled figures as the reports called the findings, each study at its tracer's operating
    // points; `evaluate --as-reported` adds intervals and summaries.
    for (tracer, p) in tracers.iter().zip(points) {
        println!(
            "{}: threshold {}, distant {}",
            tracer.name(),
            p.threshold,
            p.distant_threshold
        );
    }
    let pooled = findings.pooled(&vec![1.0; findings.subjects.len()], Calls::Reported);
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
            let resamples = BootstrapSpec::default().resamples;
            agreement_cli::print(&agreement::agreement(rows, resamples));
        }
        if !grid.is_empty() {
            let table = operating_points(&grid, &grid_stages);
            write(&args.out.join("operating-points.csv"), &table)?;
            println!("\nAgreement at each pair of operating points\n{table}");
        }
    }
    let staging_files = match (stages.is_empty(), grid.is_empty()) {
        (true, _) => "",
        (false, true) => ", staging.csv, staging-ceiling.csv",
        (false, false) => ", staging.csv, staging-ceiling.csv, operating-points.csv",
    };
    eprintln!(
        "wrote findings.csv, detection.csv, lesions.csv{staging_files} to {}",
        args.out.display()
    );
    Ok(())
}

/// CSV rows per pair of operating points: the exact miN and miM agreements (counts of studies),
/// their sum, and the N0 vs N+ and M0 vs M1 agreements, over all studies (`tracer` "all") and
/// over each tracer's, since a host knows the tracer and may set each tracer's operating points
/// apart.
fn operating_points(grid: &[OperatingPoints], stages: &[Vec<(Tracer, StagePair)>]) -> String {
    let mut text = "tracer,threshold,distant_threshold,n_exact,m_exact,n_plus_m,\
                    n0_vs_n_positive,m0_vs_m1,studies\n"
        .to_string();
    let groups: [(&str, Option<Tracer>); 3] = [
        ("all", None),
        (Tracer::Psma.name(), Some(Tracer::Psma)),
        (Tracer::Fdg.name(), Some(Tracer::Fdg)),
    ];
    for (name, tracer) in groups {
        for (p, stages) in grid.iter().zip(stages) {
            let pairs: Vec<StagePair> = stages
                .iter()
                .filter(|(of, _)| tracer.is_none_or(|tracer| *of == tracer))
                .map(|(_, pair)| pair.clone())
                .collect();
            if pairs.is_empty() {
                continue;
            }
            let a = agreement::agreement(&pairs, 0);
            let _ = writeln!(
                text,
                "{name},{},{},{},{},{},{},{},{}",
                p.threshold,
                p.distant_threshold,
                a.n_exact.agree,
                a.m_exact.agree,
                a.n_exact.agree + a.m_exact.agree,
                a.n0_vs_n_positive.agree,
                a.m0_vs_m1.agree,
                a.n_exact.total
            );
        }
    }
    text
}

fn detection_csv(detections: &[Detection]) -> String {
    let mut text = "subject,lesions,detected,suspicious_findings,true_positive_findings,\
                    physiological_findings,dice,false_positive_ml,false_negative_ml\n"
        .to_string();
    let or_empty = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
    for d in detections {
        let seg = d.segmentation;
        let _ = writeln!(
            text,
            "{},{},{},{},{},{},{},{:.4},{}",
            d.subject,
            d.lesions.len(),
            d.detected(),
            d.suspicious_findings,
            d.true_positive_findings,
            d.physiological_findings,
            or_empty(seg.dice),
            seg.false_positive_ml,
            or_empty(seg.false_negative_ml)
        );
    }
    text
}

/// One row per lesion: its class, size, SUVmax, fate and the best score of its findings (empty
/// where no finding is labelled with it).
fn lesions_csv(detections: &[Detection], classes: &[LocationClass]) -> String {
    let mut text =
        "subject,lesion,class,class_name,voxels,volume_ml,suv_max,fate,p_suspicious,in_reported_region\n"
            .to_string();
    let or_empty = |v: Option<String>| v.unwrap_or_default();
    for d in detections {
        for l in &d.lesions {
            let name = l
                .class
                .and_then(|id| classes.iter().find(|c| c.id == id))
                .map(|c| c.name.clone());
            let _ = writeln!(
                text,
                "{},{},{},{},{},{:.3},{},{},{},{}",
                d.subject,
                l.lesion,
                or_empty(l.class.map(|c| c.to_string())),
                or_empty(name),
                l.voxels,
                l.volume_ml,
                or_empty(l.suv_max.map(|v| v.to_string())),
                l.fate.name(),
                or_empty(l.p_suspicious.map(|p| p.to_string())),
                or_empty(l.in_reported_region.map(|r| u8::from(r).to_string()))
            );
        }
    }
    text
}

fn write(path: &std::path::Path, text: &str) -> CliResult {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
