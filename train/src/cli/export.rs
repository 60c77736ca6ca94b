//! `uptake-train export --run runs/vi --out model.safetensors`; `--from-model old.safetensors`
//! instead of `--run` gives an exported model's weights new operating points or provenance.

use std::collections::BTreeMap;
use std::path::PathBuf;

use burn::prelude::Device;
use uptake::Tracer;
use uptake::model::format::{self, parse, read_file};
use uptake::model::{ModelMetadata, OperatingPoints, TrainingInfo};
use uptake_train::export::{v1_metadata, write_model};
use uptake_train::network::NetShape;
use uptake_train::train::{RunDir, RunState, load_net};

use super::{CliResult, parse_number};

#[derive(clap::Args)]
pub struct Args {
    /// Run folder of `uptake-train train` (its best.bpk and state.json are exported).
    #[arg(
        long,
        required_unless_present = "from_model",
        conflicts_with = "from_model"
    )]
    run: Option<PathBuf>,
    /// A model file whose weights, layers, classes, input, training strategy and (unless given
    /// below) operating points are kept; the other fields come from the flags below.
    #[arg(long)]
    from_model: Option<PathBuf>,
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
    /// Operating point stored in the file; without it 0.5 (`--run`) or the model file's.
    #[arg(long)]
    threshold: Option<f32>,
    /// Separate operating point of distant findings (M1a, M1b, M1c) stored in the file; without
    /// it none (`--run`: `--threshold` holds for all) or the model file's.
    #[arg(long)]
    distant_threshold: Option<f32>,
    /// A tracer's own operating points, TRACER=THRESHOLD,DISTANT (e.g. fdg=0.5,0.5), stored in
    /// the file (repeatable); a tracer without them uses the two above. `--from-model` keeps the
    /// file's for the tracers not given, unless --threshold or --distant-threshold is given.
    #[arg(long, value_parser = parse_tracer_points)]
    tracer_operating_points: Vec<(Tracer, OperatingPoints)>,
}

fn parse_tracer_points(text: &str) -> Result<(Tracer, OperatingPoints), String> {
    let (tracer, pair) = text
        .split_once('=')
        .ok_or_else(|| format!("expected TRACER=THRESHOLD,DISTANT, got {text:?}"))?;
    let (threshold, distant) = pair
        .split_once(',')
        .ok_or_else(|| format!("expected THRESHOLD,DISTANT after {tracer}=, got {pair:?}"))?;
    Ok((
        tracer.parse()?,
        OperatingPoints {
            threshold: parse_number(threshold)?,
            distant_threshold: parse_number(distant)?,
        },
    ))
}

fn parse_metric(text: &str) -> Result<(String, f64), String> {
    let (name, value) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got {text:?}"))?;
    Ok((name.to_string(), parse_number(value)?))
}

pub fn run(args: Args) -> CliResult {
    let training = |strategy: String, untrained: bool| TrainingInfo {
        untrained,
        data: args.data.clone(),
        strategy,
        date: args.date.clone(),
        metrics: args.metric.iter().cloned().collect::<BTreeMap<_, _>>(),
        notes: args.notes.clone(),
    };
    let written = match (&args.run, &args.from_model) {
        (Some(run), _) => {
            let run = RunDir(run.clone());
            let text = std::fs::read_to_string(run.state())
                .map_err(|e| format!("{}: {e}", run.state().display()))?;
            let state: RunState = serde_json::from_str(&text).map_err(|e| e.to_string())?;
            let net = load_net(&run.best_model(), NetShape::v1(), &Device::flex())
                .map_err(|e| e.to_string())?;
            let strategy = state.provenance();
            let threshold = args.threshold.unwrap_or(0.5);
            let metadata = ModelMetadata {
                distant_threshold: args.distant_threshold,
                operating_points: args.tracer_operating_points.iter().copied().collect(),
                ..v1_metadata(
                    &args.model_id,
                    training(strategy, false),
                    threshold,
                    state.config.input_spec(),
                )
            };
            write_model(&net, metadata, &args.out)
        }
        (None, Some(path)) => {
            let file = read_file(path)
                .and_then(|bytes| parse(&bytes))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            let source = &file.metadata;
            // New general operating points replace the tracers' own too.
            let mut operating_points = source.operating_points.clone();
            if args.threshold.is_some() || args.distant_threshold.is_some() {
                for tracer in std::mem::take(&mut operating_points).keys() {
                    eprintln!("dropped {}'s own operating points", tracer.name());
                }
            }
            operating_points.extend(args.tracer_operating_points.iter().copied());
            let metadata = ModelMetadata {
                model_id: args.model_id.clone(),
                training: training(source.training.strategy.clone(), source.training.untrained),
                threshold: args.threshold.unwrap_or(source.threshold),
                distant_threshold: args.distant_threshold.or(source.distant_threshold),
                operating_points,
                ..file.metadata
            };
            format::write_model(&args.out, &metadata, &file.tensors)
        }
        (None, None) => return Err("give --run or --from-model".into()),
    };
    written.map_err(|e| e.to_string())?;
    eprintln!("wrote {}", args.out.display());
    Ok(())
}
