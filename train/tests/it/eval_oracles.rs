//! Evaluation statistics against independent oracles: scikit-learn and numpy through
//! `$UPTAKE_PYTHON` (the test venv's interpreter), and the paper's Tables 3 and 4.

use std::path::PathBuf;
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::model::OperatingPoints;
use uptake_train::eval::agreement;
use uptake_train::eval::ap::average_precision;
use uptake_train::eval::autopet::segmentation_metrics;
use uptake_train::eval::metrics::{Finding, FindingSet};
use uptake_train::eval::stats::quantile;

fn python() -> String {
    std::env::var("UPTAKE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "UPTAKE_PYTHON is not set: point it at a Python with scikit-learn and numpy \
             (e.g. UPTAKE_PYTHON=$PWD/.venv/bin/python cargo test -p uptake-train)"
        )
    })
}

/// Runs `script` with the data file as argv[1]; returns stdout parsed as whitespace-separated
/// floats.
fn oracle(script: &str, data: &str) -> Vec<f64> {
    let dir = std::env::temp_dir().join(format!("uptake-train-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format!("data-{}.txt", rand::random::<u64>()));
    std::fs::write(&path, data).unwrap();
    let output = Command::new(python())
        .args(["-c", script])
        .arg(&path)
        .output()
        .expect("run UPTAKE_PYTHON");
    std::fs::remove_file(&path).unwrap();
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .split_whitespace()
        .map(|v| v.parse().unwrap())
        .collect()
}

/// Random scores (coarsely rounded in some cases, so ties occur) and labels.
fn random_case(rng: &mut ChaCha8Rng) -> (Vec<f64>, Vec<bool>) {
    let n = rng.random_range(2..400);
    let prevalence = rng.random_range(0.02..0.6);
    let decimals = [1, 2, 6][rng.random_range(0..3)];
    let scale = 10f64.powi(decimals);
    let mut positives: Vec<bool> = (0..n).map(|_| rng.random_bool(prevalence)).collect();
    positives[0] = true;
    let scores = positives
        .iter()
        .map(|&p| {
            let s: f64 = rng.random::<f64>() * 0.8 + if p { 0.2 } else { 0.0 };
            (s * scale).round() / scale
        })
        .collect();
    (scores, positives)
}

#[test]
fn average_precision_equals_scikit_learn() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let cases: Vec<_> = (0..60).map(|_| random_case(&mut rng)).collect();
    let mut data = String::new();
    for (scores, positives) in &cases {
        let s: Vec<String> = scores.iter().map(|v| format!("{v:.17e}")).collect();
        let p: Vec<&str> = positives
            .iter()
            .map(|&b| if b { "1" } else { "0" })
            .collect();
        data.push_str(&format!("{}\n{}\n", s.join(" "), p.join(" ")));
    }
    let script = "import sys, numpy as np\n\
        from sklearn.metrics import average_precision_score\n\
        lines = open(sys.argv[1]).read().splitlines()\n\
        for s, p in zip(lines[0::2], lines[1::2]):\n\
        \x20   print(repr(float(average_precision_score(np.array(p.split(), int), np.array(s.split(), float)))))\n";
    let expected = oracle(script, &data);
    assert_eq!(expected.len(), cases.len());
    for ((scores, positives), sklearn) in cases.iter().zip(expected) {
        let ours = average_precision(scores, positives).unwrap();
        assert!(
            (ours - sklearn).abs() <= 1e-12 * sklearn.abs(),
            "AP {ours} vs scikit-learn {sklearn} on {} findings",
            scores.len()
        );
    }
}

#[test]
fn operating_point_and_quantiles_equal_scikit_learn_and_numpy() {
    let mut rng = ChaCha8Rng::seed_from_u64(11);
    let mut rows = Vec::new();
    for s in 0..25 {
        for _ in 0..rng.random_range(1..12) {
            let suspicious = rng.random_bool(0.3);
            rows.push((
                format!("subject{s:02}"),
                Finding {
                    subject: 0,
                    suspicious,
                    p_suspicious: rng.random(),
                    location: rng.random_bool(0.8).then(|| rng.random_range(0..4)),
                    predicted_location: rng.random_range(0..4),
                    reported: None,
                },
            ));
        }
    }
    let set = FindingSet::new(rows).unwrap();
    let pooled = set.pooled(
        &vec![1.0; set.subjects.len()],
        OperatingPoints::single(0.5).into(),
    );
    let per_subject = set.per_subject(OperatingPoints::single(0.5).into());
    let recalls: Vec<f64> = per_subject.iter().filter_map(|m| m.recall).collect();
    let mut data = String::new();
    for f in &set.findings {
        data.push_str(&format!(
            "{} {} {} {}\n",
            u8::from(f.suspicious),
            f.p_suspicious,
            f.location.map_or(-1, |l| l as i64),
            f.predicted_location
        ));
    }
    data.push_str(&format!(
        "R {}\n",
        recalls
            .iter()
            .map(|r| format!("{r:.17e}"))
            .collect::<Vec<_>>()
            .join(" ")
    ));
    let script = "import sys, numpy as np\n\
        from sklearn.metrics import recall_score, precision_score, confusion_matrix, accuracy_score\n\
        lines = open(sys.argv[1]).read().splitlines()\n\
        rows = np.array([l.split() for l in lines[:-1]], float)\n\
        y, p, loc, pred = rows[:, 0].astype(int), rows[:, 1], rows[:, 2].astype(int), rows[:, 3].astype(int)\n\
        call = (p >= 0.5).astype(int)\n\
        tn, fp, fn, tp = confusion_matrix(y, call, labels=[0, 1]).ravel()\n\
        known = loc >= 0\n\
        sus = known & (y == 1)\n\
        r = np.array(lines[-1].split()[1:], float)\n\
        q = np.quantile(r, [0.25, 0.5, 0.75])\n\
        print(recall_score(y, call), precision_score(y, call), tp, fp, fn,\n\
        \x20     accuracy_score(loc[sus], pred[sus]), accuracy_score(loc[known], pred[known]), *q)\n";
    let v = oracle(script, &data);
    let close = |a: f64, b: f64, what: &str| assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}");
    close(pooled.recall.unwrap(), v[0], "recall");
    close(pooled.ppv.unwrap(), v[1], "PPV");
    close(pooled.true_positives.unwrap(), v[2], "TP");
    close(pooled.false_positives.unwrap(), v[3], "FP");
    close(pooled.false_negatives.unwrap(), v[4], "FN");
    close(
        pooled.accuracy_suspicious.unwrap(),
        v[5],
        "accuracy on suspicious",
    );
    close(pooled.accuracy_all.unwrap(), v[6], "accuracy on all");
    close(quantile(&recalls, 0.25).unwrap(), v[7], "Q1");
    close(quantile(&recalls, 0.5).unwrap(), v[8], "median");
    close(quantile(&recalls, 0.75).unwrap(), v[9], "Q3");
}

#[test]
fn paper_tables_3_and_4_reproduce() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/paper_tables_3_4.csv");
    let result = agreement::agreement(&agreement::read_csv(&path).unwrap(), 0);
    // Table 3 (rows expert miN0..miN2, columns predicted).
    assert_eq!(result.n_confusion, [[14, 7, 1], [2, 11, 4], [0, 3, 10]]);
    // Table 4 (M0, M1a, M1b/u, M1b/o, M1b/d, M1c); M1b/dmi (index 5) is absent in the paper.
    let table4 = [
        [8, 5, 4, 0, 0, 0],
        [2, 6, 1, 0, 0, 0],
        [1, 0, 7, 4, 0, 1],
        [0, 0, 0, 3, 1, 0],
        [0, 0, 0, 1, 6, 0],
        [0, 0, 0, 0, 0, 2],
    ];
    let paper_index = [0, 1, 2, 3, 4, 6];
    for (r, row) in table4.iter().enumerate() {
        for (c, &count) in row.iter().enumerate() {
            assert_eq!(result.m_confusion[paper_index[r]][paper_index[c]], count);
        }
    }
    assert!(result.m_confusion[5].iter().all(|&c| c == 0));
    let percent = |a: agreement::Agreement| (100.0 * a.fraction).round();
    // The paper: 67 %, 81 %, 62 %, 73 %, 77 %.
    assert_eq!(percent(result.n_exact), 67.0);
    assert_eq!(percent(result.n0_vs_n_positive), 81.0);
    assert_eq!(percent(result.m_exact), 62.0);
    assert_eq!(percent(result.m_without_bone_pattern), 73.0);
    assert_eq!(percent(result.m0_vs_m1), 77.0);
}

/// Dice, false-positive and false-negative volume against the autoPET challenge's own
/// definitions (`val_script.py`: cc3d components with connectivity 18), on random blobby masks.
#[test]
fn autopet_metrics_equal_the_challenge_script() {
    let mut rng = ChaCha8Rng::seed_from_u64(13);
    let dims = [13, 11, 9];
    let n = dims.iter().product::<usize>();
    let mut data = String::new();
    let mut ours = Vec::new();
    for case in 0..30 {
        // Sparse random voxels make many small components, some touching only by an edge or a
        // corner, where the connectivity matters; case 0 has no lesion at all.
        let density = rng.random_range(0.02..0.25);
        let truth: Vec<bool> = (0..n)
            .map(|_| case != 0 && rng.random_bool(density))
            .collect();
        let predicted: Vec<bool> = truth
            .iter()
            .map(|&t| {
                if t {
                    rng.random_bool(0.6)
                } else {
                    rng.random_bool(density / 2.0)
                }
            })
            .collect();
        let bits = |m: &[bool]| {
            m.iter()
                .map(|&b| if b { '1' } else { '0' })
                .collect::<String>()
        };
        data.push_str(&format!("{}\n{}\n", bits(&predicted), bits(&truth)));
        ours.push(segmentation_metrics(&predicted, &truth, dims, 0.027));
    }
    // Axis order: our x fastest is numpy's last axis in C order.
    let script = "import sys, numpy as np, cc3d\n\
        lines = open(sys.argv[1]).read().splitlines()\n\
        def unmatched(a, b):\n\
        \x20   cc = cc3d.connected_components(a, connectivity=18)\n\
        \x20   return sum(int((cc == i).sum()) for i in range(1, int(cc.max()) + 1) if not (b[cc == i]).any())\n\
        for p, t in zip(lines[0::2], lines[1::2]):\n\
        \x20   p = np.array([c == '1' for c in p], np.uint8).reshape(9, 11, 13)\n\
        \x20   t = np.array([c == '1' for c in t], np.uint8).reshape(9, 11, 13)\n\
        \x20   dice = 2 * (p & t).sum() / (p.sum() + t.sum()) if t.sum() else -1\n\
        \x20   fn = unmatched(t, p) * 0.027 if t.sum() else -1\n\
        \x20   print(repr(float(dice)), repr(unmatched(p, t) * 0.027), repr(float(fn)))\n";
    let expected = oracle(script, &data);
    assert_eq!(expected.len(), 3 * ours.len());
    for (m, e) in ours.iter().zip(expected.chunks(3)) {
        let close = |a: f64, b: f64| (a - b).abs() <= 1e-12 * b.abs().max(1.0);
        assert!(close(m.dice.unwrap_or(-1.0), e[0]), "Dice {m:?} vs {e:?}");
        assert!(close(m.false_positive_ml, e[1]), "FP volume {m:?} vs {e:?}");
        assert!(
            close(m.false_negative_ml.unwrap_or(-1.0), e[2]),
            "FN volume {m:?} vs {e:?}"
        );
    }
}
