//! One file per subcommand: `Args` (clap) and `run`.

pub mod agreement;
pub mod cv;
pub mod evaluate;
pub mod export;
pub mod predict;
pub mod train;

/// Errors reach the user as one message.
pub type CliResult = Result<(), String>;

/// Writes `value` as pretty JSON to `path`.
pub fn write_json(path: &std::path::Path, value: &impl serde::Serialize) -> CliResult {
    let text = serde_json::to_string_pretty(value).map_err(|e| e.to_string())?;
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
