//! `uptake suv`.

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(_args: Args) -> CliResult {
    Err("`uptake suv` is not implemented in this version".into())
}
