//! The `uptake` command line under hostile or mistaken use: every refusal comes before the work,
//! names what is wrong, and never ends in a panic.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use uptake::volume::{Geometry, Volume, nifti};

/// A fresh folder for one test.
fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("uptake-cli-hostile-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A small PET (SUV) and CT (HU) as NIfTI in `dir`.
fn study(dir: &Path) -> (PathBuf, PathBuf) {
    let g = Geometry::axis_aligned([12, 12, 12], [4.0; 3], [-24.0; 3]).unwrap();
    let (pet, ct) = (dir.join("pet.nii.gz"), dir.join("ct.nii.gz"));
    nifti::write(&pet, &Volume::filled(g, 0.8f32)).unwrap();
    nifti::write(&ct, &Volume::filled(g, 40.0f32)).unwrap();
    (pet, ct)
}

fn uptake(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_uptake"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn analyze_args<'a>(pet: &'a str, ct: &'a str, out: &'a str) -> Vec<&'a str> {
    vec![
        "analyze", "--pet", pet, "--ct", ct, "--tracer", "psma", "--out", out,
    ]
}

#[test]
fn an_output_path_that_is_a_file_or_cannot_be_made_is_refused_first() {
    let dir = scratch("out");
    let (pet, ct) = study(&dir);
    let (pet, ct) = (pet.to_str().unwrap(), ct.to_str().unwrap());
    let file = dir.join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let o = uptake(&analyze_args(pet, ct, file.to_str().unwrap()));
    assert!(!o.status.success());
    let e = stderr(&o);
    assert!(
        e.contains("exists and is not a folder") && e.contains("a-file"),
        "{e}"
    );
    assert!(!e.contains("os error 17"), "{e}");

    // A folder below a file cannot be created; the message names it.
    let below = file.join("sub");
    let o = uptake(&analyze_args(pet, ct, below.to_str().unwrap()));
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(
        e.contains("cannot create output folder") && e.contains("a-file/sub"),
        "{e}"
    );
    assert!(!e.contains("panicked"), "{e}");

    let good = dir.join("result");
    let o = uptake(&analyze_args(pet, ct, good.to_str().unwrap()));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(good.join("report.json").is_file());
    assert!(!good.join(".uptake-write-check").exists());
}

#[test]
fn a_threshold_outside_0_1_is_refused_before_the_volumes_are_read() {
    let dir = scratch("threshold");
    let out = dir.join("out");
    for threshold in ["2", "1.5", "NaN"] {
        let mut args = analyze_args(
            "/nonexistent/pet.nii",
            "/nonexistent/ct.nii",
            out.to_str().unwrap(),
        );
        args.extend(["--threshold", threshold]);
        let o = uptake(&args);
        let e = stderr(&o);
        assert!(!o.status.success());
        assert!(
            e.contains("threshold") && e.contains("[0, 1]"),
            "{threshold}: {e}"
        );
        assert!(!e.contains("nonexistent"), "checked before reading: {e}");
    }
    let mut args = analyze_args(
        "/nonexistent/pet.nii",
        "/nonexistent/ct.nii",
        out.to_str().unwrap(),
    );
    args.extend(["--min-ct-coverage", "2"]);
    assert!(stderr(&uptake(&args)).contains("min_ct_coverage"));
}

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = scratch("pipe");
    let (pet, _) = study(&dir);
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader); // the reader is gone before the command writes: `uptake info --json F | head -0`
    let o = Command::new(env!("CARGO_BIN_EXE_uptake"))
        .args(["info", "--json", pet.to_str().unwrap()])
        .stdout(writer)
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let e = stderr(&o);
    assert!(o.status.success(), "{:?}: {e}", o.status);
    assert!(e.is_empty(), "{e}");
}

#[test]
fn writing_into_a_missing_folder_names_it_plainly() {
    let dir = scratch("missing");
    let (pet, _) = study(&dir);
    let target = dir.join("no-such-folder").join("pet3.nii.gz");
    let o = uptake(&["resample", pet.to_str().unwrap(), target.to_str().unwrap()]);
    let e = stderr(&o);
    assert!(!o.status.success());
    assert!(e.contains("no-such-folder does not exist"), "{e}");
    assert!(
        !e.contains("Os {") && !e.contains("kind:"),
        "no debug form: {e}"
    );
}
