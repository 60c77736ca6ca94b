//! `uptake-train predict --threshold`: the operating point decides which findings are reported
//! suspicious (and so the stage), without changing the findings or their scores.

use std::path::{Path, PathBuf};
use std::process::Command;

use uptake_train::eval::agreement::{self, StagePair};

fn predict(out: &Path, threshold: &str) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uptake-train"))
        .args([
            "predict",
            "--phantom-psma",
            "1",
            "--phantom-seed",
            "7004",
            "--threshold",
            threshold,
            "--out",
        ])
        .arg(out)
        .output()
        .unwrap()
}

/// (findings, suspicious findings) of the one subject, from findings.csv and detection.csv.
fn counts(out: &Path) -> (usize, usize) {
    let findings = std::fs::read_to_string(out.join("findings.csv")).unwrap();
    let detection = std::fs::read_to_string(out.join("detection.csv")).unwrap();
    let row: Vec<&str> = detection.lines().nth(1).unwrap().split(',').collect();
    (findings.lines().count() - 1, row[3].parse().unwrap())
}

/// The one subject's stage pair in a staging CSV of `out`.
fn staging(out: &Path, file: &str) -> [StagePair; 1] {
    let pairs = agreement::read_csv(&out.join(file)).unwrap();
    assert_eq!(pairs[0].subject, "psma-07004");
    pairs.try_into().unwrap()
}

fn scratch(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("uptake-cli-predict-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn threshold_sets_the_operating_point() {
    let all = scratch("all");
    let strict = scratch("strict");
    for (dir, threshold) in [(&all, "0"), (&strict, "0.99")] {
        let output = predict(dir, threshold);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            stdout.contains(&format!("threshold {threshold}")),
            "{stdout}"
        );
        // Each printed agreement is that of the pair written to its file.
        let (staged, ceiling) = stdout.split_once("\nCeiling:").expect("a ceiling section");
        for (section, file) in [(staged, "staging.csv"), (ceiling, "staging-ceiling.csv")] {
            let [pair] = staging(dir, file);
            for (name, agree) in [
                ("N agreement", pair.expert_n == pair.predicted_n),
                ("M agreement", pair.expert_m == pair.predicted_m),
            ] {
                let agree = usize::from(agree);
                let line = format!("{name:<28} {:>5.1} %  ({agree}/1)", 100.0 * agree as f64);
                assert!(section.contains(&line), "{line:?} not in {section}");
            }
        }
    }
    // The ceiling stages the regions by their ground truth: the threshold does not matter.
    assert_eq!(
        staging(&all, "staging-ceiling.csv"),
        staging(&strict, "staging-ceiling.csv")
    );
    let (findings_all, suspicious_all) = counts(&all);
    let (findings_strict, suspicious_strict) = counts(&strict);
    // The same findings either way; at 0 every one is suspicious, at 0.99 fewer are.
    assert_eq!(findings_all, findings_strict);
    assert!(findings_all > 0);
    assert_eq!(suspicious_all, findings_all);
    assert!(suspicious_strict < suspicious_all);
    let _ = std::fs::remove_dir_all(&all);
    let _ = std::fs::remove_dir_all(&strict);
}

#[test]
fn threshold_outside_zero_to_one_is_refused() {
    let out = scratch("refused");
    let output = predict(&out, "1.5");
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("must lie in [0, 1]"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&out);
}
