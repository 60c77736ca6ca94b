//! `uptake-train train --strategy VI --data cohort/ --out runs/vi`

use std::path::PathBuf;

use burn::prelude::Device;
use indicatif::{ProgressBar, ProgressStyle};
use uptake::Tracer;
use uptake::phantom::Preset;
use uptake_train::data::StudyCache;
use uptake_train::phantom_cohort::phantom_study;
use uptake_train::studies::{cache_study, load_study, study_dirs};
use uptake_train::train::{RunDir, Strategy, TrainConfig, split_validation, train};

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Training strategy of the paper (I–VI).
    #[arg(long, value_enum, ignore_case = true)]
    strategy: Strategy,
    #[command(flatten)]
    cohort: Cohort,
    /// Run folder: checkpoints (last.bpk, best.bpk), optimizer state, state.json.
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    run: RunArgs,
}

/// Optimisation settings shared by `train` and `cv`.
#[derive(clap::Args)]
pub struct RunArgs {
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    pub learning_rate: f64,
    /// Epochs without a lower validation loss before stopping.
    #[arg(long, default_value_t = 5)]
    pub patience: usize,
    /// Fraction of each tracer's subjects held out for early stopping.
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Seed of initial weights, split, sampling and augmentation (`cv`: of fold f, seed + f).
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Start from these weights (strategy V: the best.bpk of a strategy IV run).
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Continue an interrupted run (`cv`: its folds) from the last checkpoint.
    #[arg(long)]
    pub resume: bool,
}

/// Where the studies come from: folders on disk and/or phantoms generated in memory.
#[derive(clap::Args)]
pub struct Cohort {
    /// Folders of annotated studies (each a study folder or a folder of them; layout in
    /// docs/training.md).
    #[arg(long)]
    data: Vec<PathBuf>,
    /// Generate this many PSMA phantom studies (seeds phantom-seed, phantom-seed + 1, …).
    #[arg(long, default_value_t = 0)]
    phantom_psma: u64,
    /// Generate this many FDG phantom studies (seeds after the PSMA ones).
    #[arg(long, default_value_t = 0)]
    phantom_fdg: u64,
    #[arg(long, default_value_t = 1000)]
    phantom_seed: u64,
    /// Phantom grid preset (small or clinical).
    #[arg(long, default_value = "small")]
    phantom_preset: Preset,
}

/// Loads (or generates) and caches every study of `cohort` whose tracer is in `tracers`.
pub fn load_cohort(cohort: &Cohort, tracers: &[Tracer]) -> Result<Vec<StudyCache>, String> {
    let mut dirs = Vec::new();
    for root in &cohort.data {
        dirs.extend(study_dirs(root).map_err(|e| e.to_string())?);
    }
    let psma = (0..cohort.phantom_psma).map(|i| (Tracer::Psma, cohort.phantom_seed + i));
    let fdg = (0..cohort.phantom_fdg)
        .map(|i| (Tracer::Fdg, cohort.phantom_seed + cohort.phantom_psma + i));
    let phantoms: Vec<(Tracer, u64)> = psma
        .chain(fdg)
        .filter(|(t, _)| tracers.contains(t))
        .collect();
    let bar = ProgressBar::new((dirs.len() + phantoms.len()) as u64);
    bar.set_style(
        ProgressStyle::with_template("caching studies [{bar:30}] {pos}/{len}, ETA {eta} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut studies = Vec::new();
    for dir in dirs {
        bar.set_message(dir.display().to_string());
        let study = load_study(&dir).map_err(|e| e.to_string())?;
        if tracers.contains(&study.info.tracer) {
            studies.push(cache_study(&study).map_err(|e| e.to_string())?);
        }
        bar.inc(1);
    }
    for (tracer, seed) in phantoms {
        bar.set_message(format!("phantom {} seed {seed}", tracer.name()));
        let study =
            phantom_study(tracer, seed, cohort.phantom_preset).map_err(|e| e.to_string())?;
        studies.push(cache_study(&study).map_err(|e| e.to_string())?);
        bar.inc(1);
    }
    bar.finish_and_clear();
    if studies.is_empty() {
        return Err("no studies: give --data folders or --phantom-psma / --phantom-fdg".into());
    }
    Ok(studies)
}

pub fn run(args: Args) -> CliResult {
    let studies = load_cohort(&args.cohort, args.strategy.tracers())?;
    let candidates: usize = studies.iter().map(|s| s.candidates.len()).sum();
    eprintln!(
        "{}: {} studies, {candidates} candidate regions",
        args.strategy.name(),
        studies.len()
    );
    let (train_set, validation) =
        split_validation(studies, args.run.validation_fraction, args.run.seed);
    let config = TrainConfig {
        strategy: args.strategy,
        max_epochs: args.run.epochs,
        batch_size: args.run.batch_size,
        learning_rate: args.run.learning_rate,
        patience: args.run.patience,
        seed: args.run.seed,
    };
    let state = train(
        &config,
        &train_set,
        &validation,
        &RunDir(args.out.clone()),
        args.run.init.as_deref(),
        args.run.resume,
        &Device::flex(),
    )
    .map_err(|e| e.to_string())?;
    eprintln!(
        "done: {} epochs, best epoch {} (validation loss {:.4}){}; weights in {}",
        state.epochs_done,
        state.best_epoch,
        state.best_validation_loss,
        if state.stopped_early {
            ", stopped early"
        } else {
            ""
        },
        RunDir(args.out).best_model().display()
    );
    Ok(())
}
