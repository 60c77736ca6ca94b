//! `uptake-train cv --strategy III --data cohort/ --out runs/cv-iii --folds 4`
//!
//! Four-fold cross-validation over the PSMA subjects (the paper's Table 1): each fold trains on
//! the other folds (early stopping on a validation split of them; strategy VI adds every FDG
//! study to training, V starts from `--init`), predicts its own PSMA subjects, and the pooled
//! out-of-fold findings are written to `findings.csv` for `uptake-train evaluate`.

use std::path::PathBuf;

use burn::prelude::Device;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use uptake::Tracer;
use uptake_train::data::StudyCache;
use uptake_train::eval::metrics::{Finding, FindingSet};
use uptake_train::network::NetShape;
use uptake_train::train::{
    RunDir, Strategy, TrainConfig, argmax, load_net, predict, split_validation, train,
};

use super::CliResult;
use super::train::{Cohort, RunArgs, load_cohort};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, ignore_case = true)]
    strategy: Strategy,
    #[command(flatten)]
    cohort: Cohort,
    /// Folder for the folds' runs and the pooled findings.csv.
    #[arg(long)]
    out: PathBuf,
    #[arg(long, default_value_t = 4)]
    folds: usize,
    #[command(flatten)]
    run: RunArgs,
}

pub fn run(args: Args) -> CliResult {
    if args.strategy == Strategy::IV {
        return Err("strategy IV trains on FDG only: use `train` (single 90/10 split)".into());
    }
    if args.folds < 2 {
        return Err("need at least 2 folds".into());
    }
    let mut tracers = vec![Tracer::Psma];
    if args.strategy == Strategy::VI {
        tracers.push(Tracer::Fdg);
    }
    // Every fold's settings but its seed, checked before the studies are read.
    let fold_run = |fold: usize| RunDir(args.out.join(format!("fold{fold}")));
    let runs: Vec<RunDir> = (0..args.folds).map(fold_run).collect();
    let base = args
        .run
        .config(args.strategy, &args.cohort, args.run.seed, &runs)?;
    let all = load_cohort(&args.cohort, &tracers)?;
    let (mut psma, fdg): (Vec<StudyCache>, Vec<StudyCache>) =
        all.into_iter().partition(|s| s.tracer == Tracer::Psma);
    psma.sort_by(|a, b| a.subject.cmp(&b.subject));
    let mut order: Vec<usize> = (0..psma.len()).collect();
    order.shuffle(&mut ChaCha8Rng::seed_from_u64(args.run.seed));
    let fold_of: Vec<usize> = {
        let mut f = vec![0; psma.len()];
        for (rank, &i) in order.iter().enumerate() {
            f[i] = rank % args.folds;
        }
        f
    };
    let device = Device::flex();
    let mut rows = Vec::new();
    for (fold, run) in runs.iter().enumerate() {
        let (test, mut training): (Vec<StudyCache>, Vec<StudyCache>) = psma
            .iter()
            .enumerate()
            .map(|(i, s)| (fold_of[i] == fold, s))
            .fold(
                (Vec::new(), Vec::new()),
                |(mut test, mut training), (held_out, s)| {
                    if held_out {
                        test.push(s.clone());
                    } else {
                        training.push(s.clone());
                    }
                    (test, training)
                },
            );
        // Strategy VI: every FDG study joins every fold's training.
        training.extend(fdg.iter().cloned());
        let (train_set, validation) = split_validation(
            training,
            args.run.validation_fraction,
            args.run.seed + fold as u64,
        );
        let config = TrainConfig {
            seed: args.run.seed + fold as u64,
            ..base.clone()
        };
        eprintln!(
            "fold {}/{}: {} training, {} validation, {} test subjects",
            fold + 1,
            args.folds,
            train_set.len(),
            validation.len(),
            test.len()
        );
        train(
            &config,
            &train_set,
            &validation,
            run,
            args.run.init.as_deref(),
            args.run.resume,
            &device,
        )
        .map_err(|e| e.to_string())?;
        let net =
            load_net(&run.best_model(), NetShape::v1(), &device).map_err(|e| e.to_string())?;
        let predictions = predict(&net, &test, &config, &device).map_err(|e| e.to_string())?;
        let candidates = test
            .iter()
            .flat_map(|s| s.candidates.iter().map(move |c| (s, c)));
        let outputs = predictions
            .p_suspicious
            .iter()
            .zip(&predictions.location_probabilities);
        for ((study, c), (p, probs)) in candidates.zip(outputs) {
            rows.push((
                study.subject.clone(),
                Finding {
                    subject: 0,
                    suspicious: c.suspicious(),
                    p_suspicious: f64::from(*p),
                    location: c.location,
                    predicted_location: argmax(probs) as u32,
                    reported: None,
                },
            ));
        }
    }
    let findings = FindingSet::new(rows).map_err(|e| e.to_string())?;
    let path = args.out.join("findings.csv");
    findings.write_csv(&path).map_err(|e| e.to_string())?;
    eprintln!(
        "wrote {} out-of-fold findings of {} subjects to {}",
        findings.findings.len(),
        findings.subjects.len(),
        path.display()
    );
    Ok(())
}
