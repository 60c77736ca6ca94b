//! `uptake demo`: a phantom study analyzed with the bundled model, staging shown next to the
//! phantom's true staging.

use std::path::PathBuf;

use uptake::{MStage, Tracer};
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset};

use super::CliResult;
use super::analyze::{AnalyzerArgs, analyze, make_analyzer, parse_tracer, write_outputs};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_parser = parse_tracer, default_value = "psma")]
    tracer: Tracer,
    #[arg(long, default_value_t = 208)]
    seed: u64,
    /// small (fast, coarse grids) or clinical (PET ~4 mm, CT ~1 mm).
    #[arg(long, default_value = "clinical")]
    preset: String,
    /// Output folder (the phantom and the analysis outputs).
    #[arg(long, default_value = "out/demo")]
    out: PathBuf,
    /// List every region in the table, not only the suspicious findings.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    analyzer: AnalyzerArgs,
}

pub fn run(args: Args) -> CliResult {
    let preset: Preset = match args.preset.as_str() {
        "small" => Preset::Small,
        "clinical" => Preset::Clinical,
        other => return Err(format!("--preset {other:?}: expected small or clinical").into()),
    };
    let spec = PhantomSpec {
        tracer: args.tracer,
        seed: args.seed,
        preset,
        coverage: Coverage::WholeBody,
    };
    args.analyzer.options(None)?;
    super::prepare_output_folder(&args.out)?;
    let started = std::time::Instant::now();
    let study = phantom::generate(&spec)?;
    eprintln!(
        "phantom {} seed {} ({}) generated in {:.1} s",
        args.tracer.name(),
        args.seed,
        args.preset,
        started.elapsed().as_secs_f64()
    );
    let analyzer = make_analyzer(&args.analyzer)?;
    let report = analyze(
        &analyzer,
        &study.pet,
        &study.ct,
        args.tracer,
        &args.analyzer,
    )?;
    study.write(args.out.join("phantom"))?;
    write_outputs(&args.out, &study.pet, &report)?;
    out!("{}", report.summary_table(args.all))?;
    let t = &study.truth;
    let m = match &t.bone_pattern {
        Some(p) if t.mi_m == MStage::M1b => format!("M1b/{p}"),
        _ => t.mi_m.to_string(),
    };
    outln!(
        "true stage (phantom): {} {} {}   categories: {}   {} lesions",
        t.mi_t,
        t.mi_n,
        m,
        if t.m_categories.is_empty() {
            "none".to_string()
        } else {
            let categories: Vec<&str> = t.m_categories.iter().map(|m| m.code()).collect();
            categories.join(", ")
        },
        study.lesions.len()
    )?;
    outln!("outputs in {}", args.out.display())?;
    Ok(())
}
