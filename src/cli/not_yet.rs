//! Subcommands whose pipeline stage is not built yet: they say so and fail, never fake output.

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
    rest: Vec<String>,
}

pub fn run(name: &str, _args: Args) -> CliResult {
    Err(format!("`uptake {name}` is not implemented in this version").into())
}
