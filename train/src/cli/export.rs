//! `uptake-train export --run runs/vi --out model.safetensors`

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::prelude::Device;
use uptake::model::TrainingInfo;
use uptake_train::export::{v1_metadata, write_model};
use uptake_train::network::NetShape;
use uptake_train::train::{RunDir, RunState, load_net};

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Run folder of `uptake-train train` (its best.bpk and state.json are exported).
    #[arg(long)]
    run: PathBuf,
    /// Model file to write.
    #[arg(long)]
    out: PathBuf,
    #[arg(long)]
    model_id: String,
    /// Training data, for the provenance metadata (e.g. "phantom v1: 40 PSMA + 80 FDG").
    #[arg(long, default_value = "")]
    data: String,
    /// Held-out metrics NAME=VALUE to store in the metadata.
    #[arg(long, value_parser = parse_metric)]
    metric: Vec<(String, f64)>,
    #[arg(long, default_value = "")]
    notes: String,
    /// Training date for the provenance (ISO 8601, e.g. 2026-11-29).
    #[arg(long, default_value = "")]
    date: String,
    /// Operating point stored in the file.
    #[arg(long, default_value_t = 0.5)]
    threshold: f32,
}

fn parse_metric(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    let value = value
        .parse()
        .map_err(|_| format!("{value:?} is not a number"))?;
    Ok((name.to_string(), value))
}

pub fn run(args: Args) -> CliResult {
    let run = RunDir(args.run.clone());
    let text = std::fs::read_to_string(run.state())
        .map_err(|e| format!("{}: {e}", run.state().display()))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    let device = Device::flex();
    let net = load_net(&run.best_model(), NetShape::v1(), &device).map_err(|e| e.to_string())?;
    let c = &state.config;
    let training = TrainingInfo {
        untrained: false,
        data: args.data,
        strategy: format!(
            "{}; best epoch {} of {}; batch {}, Adam lr {}, seed {}",
            c.strategy.name(),
            state.best_epoch,
            state.epochs_done,
            c.batch_size,
            c.learning_rate,
            c.seed
        ),
        date: args.date,
        metrics: args.metric.into_iter().collect::<BTreeMap<_, _>>(),
        notes: args.notes,
    };
    write_model(
        &net,
        v1_metadata(&args.model_id, training, args.threshold),
        &args.out,
    )
    .map_err(|e| e.to_string())?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
