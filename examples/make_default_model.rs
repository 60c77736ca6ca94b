//! Writes the embedded default model: the v1 network with seeded He-normal weights, marked
//! untrained in its metadata.
//!
//! `cargo run --release --example make_default_model -- models/default.safetensors [seed]`

use std::process::ExitCode;

use uptake::model::init::{DEFAULT_MODEL_SEED, he_normal, untrained_v1_metadata};

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: make_default_model OUTPUT.safetensors [SEED]");
        return ExitCode::from(2);
    };
    let seed = match args.next().map(|s| s.parse::<u64>()) {
        None => DEFAULT_MODEL_SEED,
        Some(Ok(seed)) => seed,
        Some(Err(e)) => {
            eprintln!("seed: {e}");
            return ExitCode::from(2);
        }
    };
    let written = he_normal(untrained_v1_metadata(seed), seed).and_then(|w| w.write(&path));
    match written {
        Ok(()) => {
            println!("wrote {path} (seed {seed}, untrained)");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
