//! `uptake-train train --strategy VI --data cohort/ --out runs/vi`

use std::path::PathBuf;

use burn::prelude::Device;
use indicatif::{ProgressBar, ProgressStyle};
use uptake::Tracer;
use uptake::regions::RegionParams;
use uptake_phantom::{Coverage, PhantomSpec, Preset};
use uptake_train::data::StudyCache;
use uptake_train::phantom_cohort::phantom_study_over;
use uptake_train::studies::{AnnotatedStudy, cache_study, load_study, study_dirs};
use uptake_train::train::{RunDir, Strategy, TrainConfig, check_run, split_validation, train};

use super::{CliResult, parse_number};

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
    /// Start from these weights: a run's checkpoint (strategy V: the best.bpk of a strategy IV
    /// run) or a model file (.safetensors), whose folded network trains without batch norm.
    #[arg(long)]
    pub init: Option<PathBuf>,
    /// Continue an interrupted run (`cv`: its folds) from the last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Weight of the suspicious term for findings whose true location stages as miM (distant
    /// nodes, bone, organs); 1 is the paper's loss.
    #[arg(long, default_value_t = 1.0)]
    pub distant_weight: f32,
    /// Focusing exponent γ of the suspicious term: each finding's BCE is scaled by (1 − p_t)^γ
    /// so that hard findings count more (focal loss); 0 is the paper's loss.
    #[arg(long, default_value_t = 0.0)]
    pub focal_gamma: f32,
    /// CT window of the network input, LOW,HIGH in HU (default S5's -300,300), written into the
    /// exported model file; from a model file (`--init`), the upper end may differ from its own.
    #[arg(long, value_parser = parse_window, allow_hyphen_values = true)]
    pub ct_window: Option<[f64; 2]>,
}

impl RunArgs {
    /// The settings of a run of `strategy` on `cohort`'s regions with `seed`, checked for each
    /// of `runs` (with the run to resume or the initial weights) before any study is read.
    pub fn config(
        &self,
        strategy: Strategy,
        cohort: &Cohort,
        seed: u64,
        runs: &[RunDir],
    ) -> Result<TrainConfig, String> {
        let config = TrainConfig {
            strategy,
            max_epochs: self.epochs,
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            patience: self.patience,
            seed,
            distant_weight: self.distant_weight,
            focal_gamma: self.focal_gamma,
            region_fraction: Some(cohort.region_params()?.fraction),
            ct_window_hu: self.ct_window,
        };
        for run in runs {
            check_run(&config, run, self.init.as_deref(), self.resume)
                .map_err(|e| e.to_string())?;
        }
        Ok(config)
    }
}

fn parse_window(text: &str) -> Result<[f64; 2], String> {
    let (lo, hi) = text
        .split_once(',')
        .ok_or_else(|| format!("expected LOW,HIGH, got {text:?}"))?;
    Ok([parse_number(lo)?, parse_number(hi)?])
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
    /// Phantom grid presets (small, clinical), comma-separated: the k-th phantom of each tracer
    /// uses preset k mod their number.
    #[arg(long, default_value = "small", value_delimiter = ',')]
    phantom_preset: Vec<Preset>,
    /// Phantom field of view: whole-body (vertex to mid-thigh) or drawn by seed (truncated
    /// axial ranges and smaller CT diameters, as clinical studies come; docs/phantom.md).
    #[arg(long, default_value = "whole-body")]
    phantom_coverage: Coverage,
    /// S4's threshold fraction f for the studies' regions: a region holds the connected voxels
    /// ≥ f × its SUVmax.
    #[arg(long, default_value_t = RegionParams::default().fraction)]
    region_fraction: f32,
}

impl Cohort {
    /// The S4 parameters the cohort's regions are found with, checked before any study is
    /// generated or read.
    pub fn region_params(&self) -> Result<RegionParams, String> {
        let params = RegionParams {
            fraction: self.region_fraction,
            ..RegionParams::default()
        };
        params
            .candidate_threshold()
            .map_err(|e| format!("--region-fraction: {e}"))?;
        Ok(params)
    }

    /// Study folders and phantom (tracer, seed) pairs of the cohort whose tracer is in `tracers`
    /// (folders are filtered when loaded: their tracer is in study.json).
    fn sources(&self, tracers: &[Tracer]) -> Result<Vec<Source>, String> {
        let mut sources = Vec::new();
        for root in &self.data {
            let dirs = study_dirs(root).map_err(|e| e.to_string())?;
            sources.extend(dirs.into_iter().map(Source::Folder));
        }
        if self.phantom_preset.is_empty() {
            return Err("--phantom-preset: give at least one preset".into());
        }
        let preset = |k: u64| self.phantom_preset[k as usize % self.phantom_preset.len()];
        let psma = (0..self.phantom_psma).map(|k| (Tracer::Psma, self.phantom_seed + k, preset(k)));
        let fdg = (0..self.phantom_fdg).map(|k| {
            (
                Tracer::Fdg,
                self.phantom_seed + self.phantom_psma + k,
                preset(k),
            )
        });
        sources.extend(psma.chain(fdg).filter(|(t, _, _)| tracers.contains(t)).map(
            |(tracer, seed, preset)| {
                Source::Phantom(PhantomSpec {
                    tracer,
                    seed,
                    preset,
                    coverage: self.phantom_coverage,
                })
            },
        ));
        if sources.is_empty() {
            return Err("no studies: give --data folders or --phantom-psma / --phantom-fdg".into());
        }
        Ok(sources)
    }

    /// Visits every study of the cohort whose tracer is in `tracers`, one at a time (a study's
    /// volumes are dropped before the next is read), with a progress bar titled `title`.
    pub fn for_each_study(
        &self,
        tracers: &[Tracer],
        title: &str,
        mut visit: impl FnMut(AnnotatedStudy) -> Result<(), String>,
    ) -> Result<(), String> {
        let sources = self.sources(tracers)?;
        let bar = ProgressBar::new(sources.len() as u64);
        bar.set_style(
            ProgressStyle::with_template(&format!(
                "{title} [{{bar:30}}] {{pos}}/{{len}}, ETA {{eta}} {{msg}}"
            ))
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        for source in sources {
            let study = match &source {
                Source::Folder(dir) => {
                    bar.set_message(dir.display().to_string());
                    load_study(dir).map_err(|e| e.to_string())?
                }
                Source::Phantom(spec) => {
                    let (tracer, seed) = (spec.tracer, spec.seed);
                    bar.set_message(format!("phantom {} seed {seed}", tracer.name()));
                    phantom_study_over(*spec).map_err(|e| e.to_string())?
                }
            };
            if tracers.contains(&study.info.tracer) {
                bar.suspend(|| visit(study))?;
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        Ok(())
    }
}

/// Where one study comes from.
enum Source {
    Folder(PathBuf),
    Phantom(PhantomSpec),
}

/// Loads (or generates) and caches every study of `cohort` whose tracer is in `tracers`.
pub fn load_cohort(cohort: &Cohort, tracers: &[Tracer]) -> Result<Vec<StudyCache>, String> {
    let mut studies = Vec::new();
    let regions = cohort.region_params()?;
    cohort.for_each_study(tracers, "caching studies", |study| {
        study.info.check_trainable()?;
        studies.push(cache_study(&study, &regions).map_err(|e| e.to_string())?);
        Ok(())
    })?;
    if studies.is_empty() {
        return Err("no studies of the strategy's tracers in the cohort".into());
    }
    Ok(studies)
}

pub fn run(args: Args) -> CliResult {
    let run = RunDir(args.out.clone());
    let config = args.run.config(
        args.strategy,
        &args.cohort,
        args.run.seed,
        std::slice::from_ref(&run),
    )?;
    let studies = load_cohort(&args.cohort, args.strategy.tracers())?;
    let candidates: usize = studies.iter().map(|s| s.candidates.len()).sum();
    eprintln!(
        "{}: {} studies, {candidates} candidate regions",
        args.strategy.name(),
        studies.len()
    );
    let (train_set, validation) =
        split_validation(studies, args.run.validation_fraction, args.run.seed);
    let state = train(
        &config,
        &train_set,
        &validation,
        &run,
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
        run.best_model().display()
    );
    Ok(())
}
