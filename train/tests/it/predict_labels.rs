//! The held-out test labels the plugin's report exactly as training labels its candidates.

use std::collections::BTreeSet;

use uptake::Tracer;
use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig};
use uptake::phantom::Preset;
use uptake::staging::{BonePattern, MStage, MiTnm, NStage, TStage};
use uptake_train::phantom_cohort::phantom_study;
use uptake_train::predict::{label_report, m_code};
use uptake_train::studies::cache_study;

#[test]
fn report_findings_carry_the_training_labels() {
    let study = phantom_study(Tracer::Psma, 1004, Preset::Small).unwrap();
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    // Threshold 0: every finding is reported suspicious, so every lesion a region is labelled
    // with counts as detected and every suspicious finding is a true positive or not by label.
    let report = analyzer
        .analyze(
            &study.pet,
            &study.ct,
            study.info.tracer,
            &AnalyzeOptions {
                threshold: Some(0.0),
                ..AnalyzeOptions::default()
            },
        )
        .unwrap();
    let (findings, detection) = label_report(&study, &report).unwrap();

    // Independently: training's own path segments the PET itself and labels its regions.
    let cache = cache_study(&study).unwrap();
    assert_eq!(findings.len(), cache.candidates.len());
    // The report sorts by p_suspicious; compare as multisets keyed by the SUVmax point.
    let mut by_point: Vec<([u64; 3], bool, Option<u32>)> = report
        .findings
        .iter()
        .zip(&findings)
        .map(|(f, l)| (f.region.max_lps.map(f64::to_bits), l.suspicious, l.location))
        .collect();
    let mut cached_by_point: Vec<([u64; 3], bool, Option<u32>)> = cache
        .candidates
        .iter()
        .map(|c| (c.centre_lps.map(f64::to_bits), c.suspicious(), c.location))
        .collect();
    by_point.sort();
    cached_by_point.sort();
    assert_eq!(by_point, cached_by_point);
    let suspicious = cache.candidates.iter().filter(|c| c.suspicious()).count();
    assert!(suspicious > 0, "the phantom has lesions found as regions");

    let lesions_hit: BTreeSet<u32> = cache.candidates.iter().filter_map(|c| c.lesion).collect();
    assert_eq!(detection.detected, lesions_hit.len());
    assert_eq!(detection.suspicious_findings, findings.len());
    assert_eq!(detection.true_positive_findings, suspicious);
    let drawn: BTreeSet<u32> = study
        .lesions
        .data()
        .iter()
        .copied()
        .filter(|&l| l != 0)
        .collect();
    assert_eq!(detection.lesions, drawn.len());
    assert!(detection.detected <= detection.lesions);
    // The report's own p_suspicious and predicted location travel into the rows.
    for (f, row) in report.findings.iter().zip(&findings) {
        assert_eq!(row.p_suspicious, f64::from(f.p_suspicious));
        assert_eq!(row.predicted_location, f.location.id);
    }
}

#[test]
fn m_codes_match_the_staging_csv() {
    let tnm = |m, bone_pattern, dmi| MiTnm {
        t: TStage::T0,
        t_findings: vec![],
        n: NStage::N0,
        n_findings: vec![],
        m,
        m_categories: vec![],
        bone_pattern,
        dmi,
    };
    assert_eq!(m_code(&tnm(MStage::M0, None, false)), "M0");
    assert_eq!(m_code(&tnm(MStage::M1a, None, false)), "M1a");
    let oligo = Some(BonePattern::Oligometastatic);
    assert_eq!(m_code(&tnm(MStage::M1b, oligo, false)), "M1b/o");
    let disseminated = Some(BonePattern::Disseminated);
    assert_eq!(m_code(&tnm(MStage::M1b, disseminated, true)), "M1b/dmi");
    // M1c is the highest category: bone involvement does not change its code.
    assert_eq!(m_code(&tnm(MStage::M1c, oligo, false)), "M1c");
}
