//! One file per subcommand: `Args` (clap) and `run`.

pub mod agreement;
pub mod candidates;
pub mod cv;
pub mod evaluate;
pub mod export;
pub mod predict;
pub mod train;

/// Errors reach the user as one message.
pub type CliResult = Result<(), String>;

/// Parses a number given on the command line (surrounding spaces allowed).
pub fn parse_number<T: std::str::FromStr>(text: &str) -> Result<T, String> {
    text.trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))
}

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
