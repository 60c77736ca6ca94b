//! `uptake` command line: analysis, the demo, and one command per pipeline stage for researchers.

mod commands;
mod figure;
mod picture;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "uptake",
    version,
    about = "Whole-body PET/CT uptake detection, classification and PROMISE miTNM staging"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print a NIfTI volume's dims, spacing, orientation and value range.
    Info(commands::info::Args),
    /// Rewrite one frame of a NIfTI file as float32 NIfTI-1 (as uptake reads it).
    Convert(commands::convert::Args),
    /// Generate synthetic PET/CT studies with ground truth.
    Phantom(commands::phantom::Args),
    /// Build a hybrid test study: a real CT and its segmentation with a synthesised PET.
    Hybrid(commands::hybrid::Args),
    /// Compute the SUVbw factor of a PET DICOM series and write the PET in SUV as NIfTI.
    Suv(commands::suv::Args),
    /// Resample a NIfTI volume onto the common 3 mm LPS grid.
    Resample(commands::resample::Args),
    /// Write the 26-plane network input for a point as a PNG contact sheet.
    Mpr(commands::mpr::Args),
    /// Segment uptake regions (45 % of SUVmax) in a PET volume.
    Regions(commands::regions::Args),
    /// Analyze a PET/CT study: findings, miTNM staging and burden.
    Analyze(commands::analyze::Args),
    /// Generate a phantom study and analyze it.
    Demo(commands::demo::Args),
    /// Train the network (runs `uptake-train train`; `--help` lists its options).
    #[command(disable_help_flag = true)]
    Train(commands::train_tool::Args),
    /// Evaluate a model on annotated studies it never saw: findings, lesion detection, staging
    /// agreement (runs `uptake-train predict`; `--help` lists its options).
    #[command(disable_help_flag = true)]
    Evaluate(commands::train_tool::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Info(a) => commands::info::run(a),
        Command::Convert(a) => commands::convert::run(a),
        Command::Phantom(a) => commands::phantom::run(a),
        Command::Hybrid(a) => commands::hybrid::run(a),
        Command::Suv(a) => commands::suv::run(a),
        Command::Resample(a) => commands::resample::run(a),
        Command::Mpr(a) => commands::mpr::run(a),
        Command::Regions(a) => commands::regions::run(a),
        Command::Analyze(a) => commands::analyze::run(a),
        Command::Demo(a) => commands::demo::run(a),
        Command::Train(a) => commands::train_tool::run("train", "train", a),
        Command::Evaluate(a) => commands::train_tool::run("evaluate", "predict", a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of stdout went away (`uptake info F | head`): nothing left to say.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("uptake: {e}");
            ExitCode::FAILURE
        }
    }
}
