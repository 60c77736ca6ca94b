//! The report (DESIGN S9): order of findings, JSON round trip, the documented schema and the
//! summary table.

mod staging_support;

use std::collections::BTreeSet;

use serde_json::Value;
use staging_support::{classes, finding, region, suspicious};
use uptake::Tracer;
use uptake::report::{CtCoverage, ModelInfo, Report, RunInfo, StageTiming};
use uptake::staging::{FindingInput, StagingConfig, stage};
use uptake::volume::{Geometry, Volume};

/// A study with every role, reference regions, and p ties.
fn study_findings() -> Vec<FindingInput> {
    let mut findings = vec![
        finding(1, "prostate", 0.97),
        finding(2, "ln_pelvic", 0.8),
        FindingInput {
            region: region(3, 1200.0, 8.0, 4.5),
            ..finding(3, "liver", 0.05)
        },
        finding(4, "ln_retroperitoneal", 0.8),
        finding(5, "lung", 0.51),
        finding(6, "kidney", 0.02),
    ];
    findings.extend(suspicious(7, 2, "bone"));
    findings
}

fn label_map() -> Volume<u32> {
    let g = Geometry::axis_aligned([4, 3, 2], [4.0, 4.0, 3.0], [-6.0, -4.0, 100.0]).unwrap();
    Volume::new(g, (0..24).map(|i| i % 9).collect()).unwrap()
}

fn report(trained: bool) -> Report {
    let staging = stage(
        &study_findings(),
        &classes(),
        4000.0,
        &StagingConfig::default(),
    )
    .unwrap();
    Report::new(
        staging,
        label_map(),
        RunInfo {
            tracer: Tracer::Psma,
            model: ModelInfo {
                id: "uptake-v1-test".into(),
                trained,
            },
            device: "cpu".into(),
            ct_coverage: CtCoverage {
                axial: 1.0,
                voxels: 1.0,
            },
            timings: vec![
                StageTiming {
                    stage: "regions".into(),
                    ms: 12.5,
                },
                StageTiming {
                    stage: "cnn".into(),
                    ms: 80.25,
                },
            ],
        },
    )
}

#[test]
fn findings_are_sorted_by_p_suspicious_descending_then_region_id() {
    let r = report(true);
    let order: Vec<(u32, f32)> = r
        .findings
        .iter()
        .map(|f| (f.region.id, f.p_suspicious))
        .collect();
    assert_eq!(
        order,
        vec![
            (1, 0.97),
            (7, 0.9),
            (8, 0.9),
            (2, 0.8),
            (4, 0.8),
            (5, 0.51),
            (3, 0.05),
            (6, 0.02)
        ]
    );
    assert_eq!(r.label_map, Some(label_map()));
}

#[test]
fn json_round_trips_without_the_label_map() {
    let r = report(true);
    let json = r.to_json().unwrap();
    let back: Report = serde_json::from_str(&json).unwrap();
    assert_eq!(back.label_map, None);
    let without_map = Report {
        label_map: None,
        ..r
    };
    assert_eq!(back, without_map);
    assert_eq!(back.to_json().unwrap(), json);
}

#[test]
fn json_follows_schema_version_2() {
    let v: Value = serde_json::from_str(&report(true).to_json().unwrap()).unwrap();
    assert_eq!(v["schema_version"], 2);
    assert_eq!(v["tracer"], "psma");
    assert_eq!(v["model"]["id"], "uptake-v1-test");
    assert_eq!(v["model"]["trained"], true);
    assert_eq!(v["device"], "cpu");
    assert_eq!(v["ct_coverage"]["axial"], 1.0);
    assert_eq!(v["ct_coverage"]["voxels"], 1.0);
    assert_eq!(v["staging_config"]["threshold"], 0.5);
    assert_eq!(v["staging_config"]["distant_threshold"], 0.5);
    assert_eq!(v["timings"][1]["stage"], "cnn");
    assert_eq!(v["timings"][1]["ms"], 80.25);
    let st = &v["staging"];
    assert_eq!(st["t"], "T+");
    assert_eq!(st["t_findings"], serde_json::json!([1]));
    assert_eq!(st["n"], "N1");
    assert_eq!(st["n_findings"], serde_json::json!([2]));
    assert_eq!(st["m"], "M1c");
    assert_eq!(
        st["m_categories"],
        serde_json::json!([
            {"category": "M1a", "finding_ids": [4]},
            {"category": "M1b", "finding_ids": [7, 8]},
            {"category": "M1c", "finding_ids": [5]},
        ])
    );
    assert_eq!(st["bone_pattern"], "o");
    assert_eq!(st["dmi"], false);
    let b = &v["burden"];
    assert_eq!(b["suspicious_count"], 6);
    assert_eq!(
        b["role_counts"],
        serde_json::json!({"t": 1, "n": 1, "m1a": 1, "m1b": 2, "m1c": 1})
    );
    assert_eq!(b["tumour_volume_ml"], 6.0);
    assert_eq!(b["total_lesion_uptake"], 36.0);
    assert_eq!(b["skeleton_volume_ml"], 4000.0);
    let refs = &v["references"];
    assert_eq!(refs["liver_suv"], 4.5);
    assert_eq!(refs["liver_region_ids"], serde_json::json!([3]));
    assert_eq!(refs["parotid_suv"], Value::Null);
    let top = &v["findings"][0];
    assert_eq!(top["region"]["id"], 1);
    assert_eq!(top["region"]["suv_max"], 10.0);
    assert_eq!(
        top["region"]["max_lps"],
        serde_json::json!([1.0, -20.5, 300.25])
    );
    assert_eq!(top["suspicious"], true);
    assert_eq!(top["location"]["name"], "prostate");
    assert_eq!(top["location"]["id"], 14);
    assert_eq!(top["top3"].as_array().unwrap().len(), 3);
    assert_eq!(top["role"], "T");
    // SUVmax 10 ≥ liver 4.5, no parotid reference: capped at 2.
    assert_eq!(top["expression_score"], 2);
    let liver = &v["findings"][6];
    assert_eq!(liver["region"]["id"], 3);
    assert_eq!(liver["role"], Value::Null);
    assert_eq!(liver["expression_score"], Value::Null);
    assert!(v.get("label_map").is_none());
}

fn keys(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            for (k, child) in map {
                out.insert(k.clone());
                keys(child, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| keys(i, out)),
        _ => {}
    }
}

#[test]
fn every_json_key_is_documented_in_the_schema() {
    let v: Value = serde_json::from_str(&report(true).to_json().unwrap()).unwrap();
    let mut all = BTreeSet::new();
    keys(&v, &mut all);
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/report-schema.md"
    ))
    .unwrap();
    let missing: Vec<&String> = all
        .iter()
        .filter(|k| !doc.contains(&format!("`{k}`")))
        .collect();
    assert!(missing.is_empty(), "undocumented keys: {missing:?}");
    assert!(doc.contains("`schema_version`: 2"));
}

#[test]
fn summary_table_has_the_stage_line_and_one_row_per_finding() {
    let r = report(true);
    let table = r.summary_table(true);
    let stage_line = "miTNM: T+ N1 M1c | T+ [1] | N1 [2] | M1a [4] | M1b/o [7, 8] | M1c [5]";
    assert_eq!(r.staging.line(), stage_line);
    assert!(
        table.lines().any(|l| l == stage_line),
        "no stage line in\n{table}"
    );
    assert!(table.contains("model uptake-v1-test (trained), device cpu"));
    assert!(table.contains("liver 4.50, parotid not found"));
    assert!(table.contains("regions 12.5 ms, cnn 80.2 ms"));
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("region"))
        .skip(1)
        .collect();
    assert_eq!(rows.len(), r.findings.len());
    let first: Vec<&str> = rows[0].split_whitespace().collect();
    assert_eq!(
        first,
        [
            "1", "0.970", "yes", "prostate", "0.80", "T", "10.00", "6.00", "8.00", "1.00", "2"
        ]
    );
    let liver: Vec<&str> = rows[6].split_whitespace().collect();
    assert_eq!(&liver[..6], ["3", "0.050", "no", "liver", "0.80", "-"]);
    assert_eq!(liver[10], "-");
    let untrained = report(false).summary_table(true);
    assert!(untrained.contains("UNTRAINED: results are not meaningful"));
}

#[test]
fn summary_table_lists_the_suspicious_findings_and_counts_the_rest() {
    let r = report(true);
    let table = r.summary_table(false);
    let rows: Vec<&str> = table
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("region"))
        .skip(1)
        .collect();
    let suspicious = r.findings.iter().filter(|f| f.suspicious).count();
    let others = r.findings.len() - suspicious;
    assert!(suspicious > 0 && others > 0, "the fixture needs both kinds");
    assert_eq!(rows.len(), suspicious + 1, "{table}");
    assert!(
        rows[..suspicious]
            .iter()
            .all(|l| l.split_whitespace().nth(2) == Some("yes"))
    );
    let top = r
        .findings
        .iter()
        .filter(|f| !f.suspicious)
        .max_by(|a, b| a.region.suv_max.total_cmp(&b.region.suv_max))
        .unwrap();
    assert_eq!(
        rows[suspicious],
        format!(
            "{others} other regions not suspicious; highest SUVmax among them {:.2} ({})",
            top.region.suv_max, top.location.name
        )
    );
}

#[test]
fn stage_line_shows_dmi_and_the_bone_pattern() {
    let findings: Vec<FindingInput> = (1..=4)
        .map(|id| FindingInput {
            region: region(id, 60.0, 10.0, 6.0),
            ..finding(id, "bone", 0.9)
        })
        .collect();
    let s = stage(&findings, &classes(), 1000.0, &StagingConfig::default()).unwrap();
    assert_eq!(
        s.tnm.line(),
        "miTNM: T0 N0 M1b/d+dmi | M1b/d+dmi [1, 2, 3, 4]"
    );
    let v = serde_json::to_value(&s.tnm).unwrap();
    assert_eq!(v["bone_pattern"], "d");
    assert_eq!(v["dmi"], true);
}
