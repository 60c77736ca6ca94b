//! `uptake train …` and `uptake evaluate …` hand their arguments, `--help` included, to the
//! `uptake-train` tool next to the program, and fail when it fails or is missing.

#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};

/// Held by each test while it writes and runs its programs. A program written by one test thread
/// is still open for writing in any child that another thread forks at that moment, and
/// executing it then fails with "Text file busy" (ETXTBSY); one test at a time avoids that.
fn one_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A folder holding a copy of `uptake` and, optionally, a fake `uptake-train` that prints its
/// arguments and exits with the status given in `UPTAKE_FAKE_STATUS`.
fn install(name: &str, with_tool: bool) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("uptake-cli-tool-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(env!("CARGO_BIN_EXE_uptake"), dir.join("uptake")).unwrap();
    if with_tool {
        let tool = dir.join("uptake-train");
        std::fs::write(
            &tool,
            "#!/bin/sh\necho \"tool: $*\"\nexit \"${UPTAKE_FAKE_STATUS:-0}\"\n",
        )
        .unwrap();
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    dir
}

#[test]
fn train_and_evaluate_forward_every_argument() {
    let _serial = one_at_a_time();
    let dir = install("forward", true);
    let run = |args: &[&str], status: &str| {
        Command::new(dir.join("uptake"))
            .args(args)
            .env("PATH", "/nonexistent")
            .env("UPTAKE_FAKE_STATUS", status)
            .output()
            .unwrap()
    };
    let out = run(&["evaluate", "--phantom-psma", "2", "--help"], "0");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tool: predict --phantom-psma 2 --help\n"
    );
    let out = run(&["train", "--strategy", "vi"], "0");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "tool: train --strategy vi\n"
    );
    let out = run(&["train", "--epochs", "x"], "3");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("uptake-train train failed"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_missing_tool_is_a_clear_error() {
    let _serial = one_at_a_time();
    let dir = install("missing", false);
    let out = Command::new(dir.join("uptake"))
        .args(["evaluate", "--out", "x"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("`uptake evaluate` needs")
            && stderr.contains("cargo build --release -p uptake-train"),
        "{stderr}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}
