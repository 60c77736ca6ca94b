//! `uptake-train predict --threshold`: the operating point decides which findings are reported
//! suspicious (and so the stage), without changing the findings or their scores; `--grid`
//! stages at other operating points from the same analyses. `uptake-train export
//! --from-model` gives a model file new operating points without touching its weights.

use std::path::{Path, PathBuf};
use std::process::Command;

use uptake_train::eval::agreement::{self, M_STAGES, N_STAGES, StagePair};

fn predict(out: &Path, threshold: &str) -> std::process::Output {
    predict_with(out, &["--threshold", threshold])
}

fn predict_with(out: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uptake-train"))
        .args(["predict", "--phantom-psma", "1", "--phantom-seed", "7004"])
        .args(args)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap()
}

/// `uptake-train export --from-model SOURCE --out OUT --model-id ID` with `extra` flags.
fn export_from(source: &str, out: &str, id: &str, extra: &[&str]) -> std::process::Output {
    let args = [
        "export",
        "--from-model",
        source,
        "--out",
        out,
        "--model-id",
        id,
    ];
    tool(&[&args[..], extra].concat())
}

/// The stdout of a run that must succeed (its stderr in the failure message).
fn succeeded(output: std::process::Output) -> String {
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// A model file as the library parses it.
fn model_file(path: impl AsRef<Path>) -> uptake::model::format::ModelFile {
    uptake::model::format::parse(&std::fs::read(path).unwrap()).unwrap()
}

fn tool(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_uptake-train"))
        .args(args)
        .output()
        .unwrap()
}

/// (n_exact, m_exact, n0_vs_n_positive, m0_vs_m1) of operating-points.csv's row for (threshold,
/// distant threshold), which the one PSMA subject's row repeats: an FDG row must not appear
/// without FDG studies.
fn grid_row(out: &Path, threshold: &str, distant: &str) -> [usize; 4] {
    let rows = csv_rows(
        out,
        "operating-points.csv",
        "tracer,threshold,distant_threshold,n_exact,m_exact,n_plus_m,n0_vs_n_positive,m0_vs_m1,studies",
    );
    assert_eq!(
        rows.len(),
        8,
        "2 × 2 operating points, all and psma: {rows:?}"
    );
    let agreements = |tracer: &str| {
        let row = rows
            .iter()
            .find(|r| r[0] == tracer && r[1] == threshold && r[2] == distant)
            .unwrap_or_else(|| panic!("no {tracer} row ({threshold}, {distant}) in {rows:?}"));
        let count = |i: usize| row[i].parse::<usize>().unwrap();
        assert_eq!(count(5), count(3) + count(4));
        assert_eq!(row[8], "1");
        [count(3), count(4), count(6), count(7)]
    };
    assert_eq!(agreements("psma"), agreements("all"));
    agreements("all")
}

/// The rows of `out`'s CSV `file`, split at commas, after checking its header.
fn csv_rows(out: &Path, file: &str, header: &str) -> Vec<Vec<String>> {
    let text = std::fs::read_to_string(out.join(file)).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(header), "{file}");
    lines
        .map(|l| l.split(',').map(str::to_string).collect())
        .collect()
}

/// (findings, suspicious findings) of the one subject, from findings.csv and detection.csv.
fn counts(out: &Path) -> (usize, usize) {
    let findings = std::fs::read_to_string(out.join("findings.csv")).unwrap();
    (findings.lines().count() - 1, detection(out)[2])
}

const DETECTION_HEADER: &str = "subject,lesions,detected,suspicious_findings,true_positive_findings,\
                                physiological_findings,dice,false_positive_ml,false_negative_ml";

/// The one subject's row of detection.csv: lesions, detected, suspicious, true-positive and
/// physiological findings.
fn detection(out: &Path) -> [usize; 5] {
    let rows = csv_rows(out, "detection.csv", DETECTION_HEADER);
    let values: Vec<usize> = rows[0][1..6].iter().map(|v| v.parse().unwrap()).collect();
    values.try_into().unwrap()
}

/// The one subject's autoPET figures in detection.csv: Dice, false-positive and false-negative
/// volume (ml), Dice and false-negative volume only for a study with lesions. Checks that they
/// are what a Dice and a volume can be, and that the physiological findings are the findings
/// the ground truth labels with no lesion.
fn segmentation(out: &Path) -> (Option<f64>, f64, Option<f64>) {
    let rows = csv_rows(out, "detection.csv", DETECTION_HEADER);
    let value = |i: usize| (!rows[0][i].is_empty()).then(|| rows[0][i].parse::<f64>().unwrap());
    let (dice, fp, fn_) = (value(6), value(7).unwrap(), value(8));
    let counts = detection(out);
    assert_eq!(dice.is_some(), counts[0] > 0, "{rows:?}");
    assert_eq!(fn_.is_some(), counts[0] > 0, "{rows:?}");
    assert!(dice.is_none_or(|d| (0.0..=1.0).contains(&d)), "{rows:?}");
    assert!(fp >= 0.0 && fn_.is_none_or(|v| v >= 0.0), "{rows:?}");
    let findings = csv_rows(
        out,
        "findings.csv",
        "subject,suspicious,p_suspicious,location,predicted_location,reported",
    );
    let physiological = findings.iter().filter(|r| r[1] == "0").count();
    assert_eq!(counts[4], physiological);
    (dice, fp, fn_)
}

/// lesions.csv has one row per lesion of detection.csv, as many reported as it detected, and
/// a score exactly where findings are labelled with the lesion.
fn lesions_add_up(out: &Path) {
    let rows = csv_rows(
        out,
        "lesions.csv",
        "subject,lesion,class,class_name,voxels,volume_ml,suv_max,fate,p_suspicious,in_reported_region",
    );
    let counts = detection(out);
    assert_eq!(rows.len(), counts[0], "{rows:?}");
    let reported = rows.iter().filter(|r| r[7] == "reported").count();
    assert_eq!(reported, counts[1], "{rows:?}");
    for r in &rows {
        assert_eq!(r[0], "psma-07004");
        let scored = matches!(r[7].as_str(), "reported" | "not_called");
        assert_eq!(!r[8].is_empty(), scored, "{r:?}");
        // Empty where the lesion's hottest voxel lies in no region, as it does for no_region
        // and never for a merged lesion.
        let seen = r[9].as_str();
        assert!(matches!(seen, "0" | "1" | ""), "{r:?}");
        match r[7].as_str() {
            "no_region" => assert!(seen.is_empty(), "{r:?}"),
            "merged_with_lesion" | "merged_with_uptake" => assert!(!seen.is_empty(), "{r:?}"),
            _ => {}
        }
        assert!(r[3].chars().all(|c| c.is_ascii_lowercase() || c == '_') && !r[3].is_empty());
    }
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
        let stdout = succeeded(predict_with(
            dir,
            &["--threshold", threshold, "--grid", "0,0.99"],
        ));
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
    // Each run's grid restages its own analyses: the pairs (0, 0) and (0.99, 0.99) agree as the
    // runs at those single operating points do, whichever run's grid is read.
    let agreements = |dir: &Path| {
        let [pair] = staging(dir, "staging.csv");
        [
            pair.expert_n == pair.predicted_n,
            pair.expert_m == pair.predicted_m,
            (pair.expert_n == N_STAGES[0]) == (pair.predicted_n == N_STAGES[0]),
            (pair.expert_m == M_STAGES[0]) == (pair.predicted_m == M_STAGES[0]),
        ]
        .map(usize::from)
    };
    for dir in [&all, &strict] {
        assert_eq!(grid_row(dir, "0", "0"), agreements(&all));
        assert_eq!(grid_row(dir, "0.99", "0.99"), agreements(&strict));
    }
    // The findings carry the reports' calls: evaluating them as reported equals evaluating
    // them at the pair the reports used, and differs from another pair.
    let evaluate = |dir: &Path, calls: &[&str]| {
        let findings = dir.join("findings.csv");
        let args = [
            "evaluate",
            "--findings",
            findings.to_str().unwrap(),
            "--resamples",
            "20",
        ];
        succeeded(tool(&[&args[..], calls].concat()))
    };
    let as_reported = evaluate(&strict, &["--as-reported"]);
    assert_eq!(as_reported, evaluate(&strict, &["--threshold", "0.99"]));
    assert_ne!(as_reported, evaluate(&strict, &["--threshold", "0"]));
    let (findings_all, suspicious_all) = counts(&all);
    let (findings_strict, suspicious_strict) = counts(&strict);
    // The same findings either way; at 0 every one is suspicious, at 0.99 fewer are.
    assert_eq!(findings_all, findings_strict);
    assert!(findings_all > 0);
    assert_eq!(suspicious_all, findings_all);
    assert!(suspicious_strict < suspicious_all);
    // Calling more regions suspicious can only add false-positive volume and remove
    // false-negative volume.
    let ((_, fp_all, fn_all), (_, fp_strict, fn_strict)) =
        (segmentation(&all), segmentation(&strict));
    assert!(fp_all >= fp_strict);
    assert!(fn_all.zip(fn_strict).is_none_or(|(a, s)| a <= s));
    assert!(
        fp_all > 0.0,
        "at 0 every physiological region is a false positive"
    );
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

#[test]
fn a_distant_operating_point_is_stored_and_used() {
    let dir = scratch("distant");
    std::fs::create_dir_all(&dir).unwrap();
    let original = concat!(env!("CARGO_MANIFEST_DIR"), "/../models/default.safetensors");
    let file = dir.join("two-points.safetensors");
    let file_arg = file.to_str().unwrap();
    succeeded(export_from(
        original,
        file_arg,
        "two-points",
        &["--threshold", "0.4", "--distant-threshold", "0.8"],
    ));
    let before = model_file(original);
    let after = model_file(&file);
    // The weights and what they mean are kept bit for bit; the operating points are new.
    assert_eq!(after.tensors, before.tensors);
    assert_eq!(after.metadata.architecture, before.metadata.architecture);
    assert_eq!(after.metadata.classes, before.metadata.classes);
    assert_eq!(
        after.metadata.training.strategy,
        before.metadata.training.strategy
    );
    assert_eq!(after.metadata.model_id, "two-points");
    assert_eq!(
        (after.metadata.threshold, after.metadata.distant_threshold),
        (0.4, Some(0.8))
    );
    // The shipped model's own FDG pair gives way to the new general one.
    assert!(!before.metadata.operating_points.is_empty());
    assert!(after.metadata.operating_points.is_empty());
    // Without operating points --from-model keeps the file's.
    let kept_path = dir.join("kept.safetensors");
    let kept_arg = kept_path.to_str().unwrap();
    succeeded(export_from(file_arg, kept_arg, "kept", &[]));
    let kept = model_file(&kept_path);
    assert_eq!(
        (kept.metadata.threshold, kept.metadata.distant_threshold),
        (0.4, Some(0.8))
    );
    assert!(!kept.metadata.training.untrained);
    // predict reads both from the file unless told otherwise.
    let out = dir.join("predict");
    let stdout = succeeded(predict_with(&out, &["--model", file_arg]));
    // FDG studies too: the file no longer holds FDG's own pair.
    assert!(
        stdout.contains("fdg: threshold 0.4, distant 0.8"),
        "{stdout}"
    );
    // A tracer's own operating points are stored beside the general ones and kept by a later
    // export that sets none; predict uses them for that tracer's studies.
    let own = dir.join("own.safetensors");
    let own_arg = own.to_str().unwrap();
    for (source, out, extra) in [
        (
            file_arg,
            own_arg,
            &["--tracer-operating-points", "psma=0.01,0.02"][..],
        ),
        (own_arg, kept_arg, &[][..]),
    ] {
        succeeded(export_from(source, out, "own", extra));
        let parsed = model_file(out);
        let psma = parsed.metadata.operating_points[&uptake::Tracer::Psma];
        assert_eq!((psma.threshold, psma.distant_threshold), (0.01, 0.02));
        assert_eq!(
            (parsed.metadata.threshold, parsed.metadata.distant_threshold),
            (0.4, Some(0.8))
        );
    }
    let own_out = dir.join("predict-own");
    let stdout = succeeded(predict_with(&own_out, &["--model", own_arg]));
    assert!(
        stdout.contains("psma: threshold 0.01, distant 0.02"),
        "{stdout}"
    );
    // The PSMA study was analyzed at its tracer's pair: as if the pair had been given.
    let given_out = dir.join("predict-given");
    let given = ["--threshold", "0.01", "--distant-threshold", "0.02"];
    succeeded(predict_with(
        &given_out,
        &[&["--model", file_arg][..], &given].concat(),
    ));
    assert_eq!(counts(&own_out), counts(&given_out));
    assert_ne!(
        counts(&own_out),
        counts(&out),
        "the pairs call different findings"
    );
    assert_eq!(
        staging(&own_out, "staging.csv"),
        staging(&given_out, "staging.csv")
    );
    // New general operating points replace the tracers' own.
    succeeded(export_from(
        own_arg,
        kept_arg,
        "general",
        &["--threshold", "0.6"],
    ));
    let general = model_file(&kept_path);
    assert!(general.metadata.operating_points.is_empty());
    assert_eq!(general.metadata.threshold, 0.6);
    for bad in ["fdg=0.5", "fdg", "pet=0.5,0.5", "fdg=0.5,x", "fdg=0.5,1.5"] {
        let output = export_from(
            own_arg,
            kept_arg,
            "bad",
            &["--tracer-operating-points", bad],
        );
        assert!(!output.status.success(), "{bad} was accepted");
    }
    // Exactly one source of weights.
    for args in [
        &["export", "--out", file_arg, "--model-id", "x"][..],
        &[
            "export",
            "--run",
            "runs/x",
            "--from-model",
            original,
            "--out",
            file_arg,
            "--model-id",
            "x",
        ],
    ] {
        let output = tool(args);
        assert!(!output.status.success(), "{args:?} was accepted");
    }
    // An operating point outside (0, 1) is refused by the file's own check.
    let bad = dir.join("bad.safetensors");
    let output = export_from(
        original,
        bad.to_str().unwrap(),
        "bad",
        &["--distant-threshold", "1"],
    );
    assert!(!output.status.success());
    assert!(
        String::from_utf8_lossy(&output.stderr).contains("distant_threshold"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn region_fraction_sets_s4s_threshold() {
    // A higher fraction merges less, so the same study has more regions, each a finding.
    let default = scratch("fraction-default");
    let higher = scratch("fraction-higher");
    succeeded(predict_with(&default, &[]));
    succeeded(predict_with(&higher, &["--region-fraction", "0.6"]));
    let (at_default, _) = counts(&default);
    let (at_higher, _) = counts(&higher);
    for dir in [&default, &higher] {
        lesions_add_up(dir);
    }
    assert!(
        at_higher > at_default,
        "{at_higher} vs {at_default} findings"
    );
    let refused = predict_with(&scratch("fraction-bad"), &["--region-fraction", "1.5"]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("threshold fraction 1.5"), "{stderr}");
}

/// A tiny study folder: a 4³ PET and CT and empty label maps, with `extra` in its study.json.
fn tiny_study(dir: &Path, extra: &str) {
    use uptake::volume::{Geometry, Volume, nifti};
    std::fs::create_dir_all(dir).unwrap();
    let g = Geometry::axis_aligned([4, 4, 4], [4.0; 3], [0.0; 3]).unwrap();
    nifti::write(dir.join("pet.nii.gz"), &Volume::filled(g, 1.0f32)).unwrap();
    nifti::write(dir.join("ct.nii.gz"), &Volume::filled(g, 40.0f32)).unwrap();
    nifti::write(dir.join("structures.nii.gz"), &Volume::filled(g, 0u8)).unwrap();
    nifti::write(dir.join("lesions.nii.gz"), &Volume::filled(g, 0u8)).unwrap();
    let json = format!(r#"{{"subject": "tiny", "tracer": "psma", "lesion_classes": []{extra}}}"#);
    std::fs::write(dir.join("study.json"), json).unwrap();
}

#[test]
fn training_refuses_a_hybrid_study() {
    let root = std::env::temp_dir().join(format!("uptake-train-hybrid-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    tiny_study(&root.join("study"), r#", "hybrid": true"#);
    let out = root.join("run");
    let run = |strategy: &str| {
        tool(&[
            "train",
            "--strategy",
            strategy,
            "--data",
            root.join("study").to_str().unwrap(),
            "--epochs",
            "1",
            "--out",
            out.to_str().unwrap(),
        ])
    };
    let output = run("i");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "trained on a hybrid study");
    assert!(
        stderr.contains("study tiny") && stderr.contains("evaluation only"),
        "{stderr}"
    );
    assert!(!out.join("state.json").exists());
    std::fs::remove_dir_all(&root).unwrap();
}
