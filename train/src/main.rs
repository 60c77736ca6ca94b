//! `uptake-train`: train the uptake network and evaluate it (DESIGN S12).

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(
    name = "uptake-train",
    version,
    about = "Train and evaluate the uptake network"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pooled and per-subject metrics with bootstrap intervals, and paired tests between models.
    Evaluate(cli::evaluate::Args),
    /// miN / miM confusion matrices and percent agreement from a staging CSV.
    Agreement(cli::agreement::Args),
    /// Train the network with one of the paper's strategies (I–VI).
    Train(cli::train::Args),
    /// Write a run's best weights as a model file (batch norm folded, fp16).
    Export(cli::export::Args),
    /// Four-fold cross-validation of a strategy on the PSMA subjects (pooled out-of-fold findings).
    Cv(cli::cv::Args),
    /// Analyze held-out annotated studies with a model file through the plugin's own engine:
    /// findings.csv and staging.csv for `evaluate` and `agreement`, and lesion detection.
    Predict(cli::predict::Args),
    /// Lesion recall ceiling and extra candidates of the sub-region stage on annotated studies.
    Candidates(cli::candidates::Args),
}

fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Evaluate(args) => cli::evaluate::run(args),
        Command::Agreement(args) => cli::agreement::run(args),
        Command::Train(args) => cli::train::run(args),
        Command::Cv(args) => cli::cv::run(args),
        Command::Export(args) => cli::export::run(args),
        Command::Predict(args) => cli::predict::run(args),
        Command::Candidates(args) => cli::candidates::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}
