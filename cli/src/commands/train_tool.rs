//! `uptake train …` and `uptake evaluate …`: served by the `uptake-train` tool (workspace member
//! `train/`), so that neither the library nor this command links the training framework. The
//! arguments go to `uptake-train train` and `uptake-train predict` unchanged.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::CliResult;

/// Name of the training tool's executable.
const TOOL: &str = "uptake-train";

#[derive(clap::Args)]
pub struct Args {
    /// Arguments of the tool's subcommand (`--help` lists them).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    rest: Vec<OsString>,
}

/// Runs `uptake-train <subcommand> <args>` for `uptake <command>` and fails with its exit status.
pub fn run(command: &str, subcommand: &str, args: Args) -> CliResult {
    let exe_dir = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(Path::to_path_buf));
    let tool =
        find_tool(exe_dir.as_deref(), std::env::var_os("PATH").as_deref()).ok_or_else(|| {
            format!(
                "`uptake {command}` needs the {TOOL} tool, found neither next to this program \
                 nor on PATH; build it with `cargo build --release -p uptake-train`"
            )
        })?;
    let status = Command::new(&tool)
        .arg(subcommand)
        .args(&args.rest)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", tool.display()))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{TOOL} {subcommand} failed ({status})").into())
    }
}

/// The tool next to this program (how cargo and installers place the workspace's binaries),
/// else the first on `path`.
fn find_tool(exe_dir: Option<&Path>, path: Option<&std::ffi::OsStr>) -> Option<PathBuf> {
    let name = format!("{TOOL}{}", std::env::consts::EXE_SUFFIX);
    exe_dir
        .into_iter()
        .map(Path::to_path_buf)
        .chain(path.into_iter().flat_map(std::env::split_paths))
        .map(|dir| dir.join(&name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tool_next_to_the_program_wins_over_path() {
        let root = std::env::temp_dir().join(format!("uptake-find-tool-{}", std::process::id()));
        let (beside, on_path, empty) = (root.join("bin"), root.join("path"), root.join("empty"));
        for dir in [&beside, &on_path, &empty] {
            std::fs::create_dir_all(dir).unwrap();
        }
        let name = format!("{TOOL}{}", std::env::consts::EXE_SUFFIX);
        std::fs::write(on_path.join(&name), b"").unwrap();
        let path = std::env::join_paths([&empty, &on_path]).unwrap();
        assert_eq!(
            find_tool(Some(&empty), Some(&path)),
            Some(on_path.join(&name))
        );
        std::fs::write(beside.join(&name), b"").unwrap();
        assert_eq!(
            find_tool(Some(&beside), Some(&path)),
            Some(beside.join(&name))
        );
        assert_eq!(find_tool(Some(&empty), None), None);
        std::fs::remove_dir_all(&root).unwrap();
    }
}
