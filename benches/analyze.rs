//! The whole analysis of a clinical-size phantom study on the CPU: time per stage (median of
//! the runs), end to end, and peak memory against the size of the input volumes.
//!
//! `cargo bench --bench analyze` (UPTAKE_BENCH_RUNS runs, default 5; RAYON_NUM_THREADS or the
//! analyzer's thread count set the cores). Peak memory is the rise of the resident set's
//! high-water mark (VmHWM, reset through /proc/self/clear_refs) over the resident set with the
//! inputs loaded, on the first call, so it counts everything the analysis allocates. Each run
//! also analyses the study with S4's regions only (`subregions: None`, the paper's candidates),
//! so the cost of the sub-regions is printed as a ratio of medians taken side by side.

use std::time::Instant;

use uptake::Tracer;
use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device};
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset};

fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("UPTAKE_BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let threads: usize = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let study = phantom::generate(&PhantomSpec {
        tracer: Tracer::Psma,
        seed: 208,
        preset: Preset::Clinical,
        coverage: Coverage::WholeBody,
    })?;
    let analyzer = Analyzer::new(AnalyzerConfig {
        device: Device::Cpu,
        threads,
        ..AnalyzerConfig::default()
    })?;
    let input_bytes = (study.pet.data().len() + study.ct.data().len()) * 4;
    let options = AnalyzeOptions::default();
    let paper = AnalyzeOptions {
        subregions: None,
        ..AnalyzeOptions::default()
    };

    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS").unwrap_or(0);
    let first = analyzer.analyze(&study.pet, &study.ct, Tracer::Psma, &options)?;
    let peak = status_kib("VmHWM").unwrap_or(0).saturating_sub(before) * 1024;

    let mut totals = Vec::new();
    let mut paper_totals = Vec::new();
    // Per stage: the default's times and the paper's (S4 only) times.
    let mut stages: Vec<(String, Vec<f64>, Vec<f64>)> = first
        .timings
        .iter()
        .map(|t| (t.stage.clone(), Vec::new(), Vec::new()))
        .collect();
    for _ in 0..runs {
        let start = Instant::now();
        let r = analyzer.analyze(&study.pet, &study.ct, Tracer::Psma, &options)?;
        totals.push(start.elapsed().as_secs_f64() * 1e3);
        assert_eq!(r.findings.len(), first.findings.len(), "deterministic");
        for (slot, t) in stages.iter_mut().zip(&r.timings) {
            slot.1.push(t.ms);
        }
        let start = Instant::now();
        let p = analyzer.analyze(&study.pet, &study.ct, Tracer::Psma, &paper)?;
        paper_totals.push(start.elapsed().as_secs_f64() * 1e3);
        for (slot, t) in stages.iter_mut().zip(&p.timings) {
            slot.2.push(t.ms);
        }
    }
    let total = median(totals);
    let paper_total = median(paper_totals);
    println!(
        "clinical PSMA phantom: PET {:?}, CT {:?}, {} regions, {} engine threads",
        study.pet.dims(),
        study.ct.dims(),
        first.findings.len(),
        analyzer.engine().threads()
    );
    println!(
        "  {:<10} {:>11}  {:>6}  {:>11}",
        "stage", "default", "share", "S4 only"
    );
    for (stage, ms, paper_ms) in stages {
        let m = median(ms);
        let p = median(paper_ms);
        println!(
            "  {stage:<10} {m:8.1} ms  {:5.1} %  {p:8.1} ms",
            100.0 * m / total
        );
    }
    println!(
        "  {:<10} {total:8.1} ms  (median of {runs})  {paper_total:8.1} ms",
        "total"
    );
    println!(
        "  S4 regions only (--paper-regions): {paper_total:.1} ms; the sub-regions cost {:+.1} % \
         ({:.3}× the paper's analysis)",
        100.0 * (total / paper_total - 1.0),
        total / paper_total
    );
    println!(
        "peak memory beyond the inputs: {:.0} MiB = {:.2} × the input volumes ({:.0} MiB){}",
        peak as f64 / 1048576.0,
        peak as f64 / input_bytes as f64,
        input_bytes as f64 / 1048576.0,
        if reset {
            ""
        } else {
            " (VmHWM not reset: upper bound)"
        }
    );
    Ok(())
}
