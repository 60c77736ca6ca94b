//! The held-out test labels the plugin's report exactly as training labels its candidates.

use std::collections::BTreeSet;

use uptake::Tracer;
use uptake::classes::v1_classes;
use uptake::findings::Finding;
use uptake::model::OperatingPoints;
use uptake::regions::RegionParams;
use uptake::report::Report;
use uptake::staging::{BonePattern, MStage, MiTnm, NStage, TStage};
use uptake::{AnalyzeOptions, Analyzer, AnalyzerConfig};
use uptake_phantom::{Preset, truth};
use uptake_train::data::Candidate;
use uptake_train::phantom_cohort::phantom_study;
use uptake_train::predict::{Detection, LesionFate, ceiling_stage, label_report, m_code, restage};
use uptake_train::studies::{AnnotatedStudy, cache_study};

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
    let cache = cache_study(&study, &RegionParams::default()).unwrap();
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
    assert_eq!(detection.detected(), lesions_hit.len());
    assert_eq!(detection.suspicious_findings, findings.len());
    assert_eq!(detection.true_positive_findings, suspicious);
    check_fates(
        &study,
        &report,
        &cache.candidates,
        &detection,
        LesionFate::Reported,
    );
    // The same findings all called physiological: the network, not the regions, loses the
    // lesions that regions are labelled with; the others keep their fates.
    let mut none_called = report.clone();
    for f in &mut none_called.findings {
        f.suspicious = false;
    }
    let (_, detection) = label_report(&study, &none_called).unwrap();
    assert_eq!(detection.detected(), 0);
    check_fates(
        &study,
        &none_called,
        &cache.candidates,
        &detection,
        LesionFate::NotCalled,
    );
    // The report's own p_suspicious and predicted location travel into the rows.
    for (f, row) in report.findings.iter().zip(&findings) {
        assert_eq!(row.p_suspicious, f64::from(f.p_suspicious));
        assert_eq!(row.predicted_location, f.location.id);
    }
}

/// Every drawn lesion has one outcome: `labelled_fate` when a region is labelled with it (by
/// training's own labels, `candidates`), else by the region (or none) at its hottest voxel,
/// found here from the volumes themselves.
fn check_fates(
    study: &AnnotatedStudy,
    report: &Report,
    candidates: &[Candidate],
    detection: &Detection,
    labelled_fate: LesionFate,
) {
    let pet = study.pet.data();
    let lesion_map = study.lesions.data();
    let region_map = report.label_map.as_ref().unwrap().data();
    // Training's label of a finding, and the report's finding with a region.
    let label = |f: &Finding| {
        let at = f.region.max_lps;
        candidates.iter().find(|c| c.centre_lps == at).unwrap()
    };
    let finding = |region: u32| {
        report
            .findings
            .iter()
            .find(|f| f.region.id == region)
            .unwrap()
    };
    let drawn: BTreeSet<u32> = lesion_map.iter().copied().filter(|&l| l != 0).collect();
    let numbers: Vec<u32> = detection.lesions.iter().map(|l| l.lesion).collect();
    assert_eq!(numbers, drawn.iter().copied().collect::<Vec<_>>());
    let mut fates = BTreeSet::new();
    for outcome in &detection.lesions {
        let voxels: Vec<usize> = (0..lesion_map.len())
            .filter(|&i| lesion_map[i] == outcome.lesion)
            .collect();
        assert_eq!(outcome.voxels, voxels.len());
        let hottest = voxels
            .iter()
            .copied()
            .reduce(|a, b| if pet[b] > pet[a] { b } else { a })
            .unwrap();
        assert_eq!(outcome.suv_max, Some(pet[hottest]));
        assert_eq!(
            outcome.class,
            Some(study.info.lesion_classes[outcome.lesion as usize - 1])
        );
        let scores: Vec<f32> = report
            .findings
            .iter()
            .filter(|f| label(f).lesion == Some(outcome.lesion))
            .map(|f| f.p_suspicious)
            .collect();
        assert_eq!(
            outcome.p_suspicious,
            scores.iter().copied().reduce(f32::max)
        );
        let region = region_map[hottest];
        let expected = match region {
            _ if !scores.is_empty() => labelled_fate,
            0 => LesionFate::NoRegion,
            _ if label(finding(region)).suspicious() => LesionFate::MergedWithLesion,
            _ => LesionFate::MergedWithUptake,
        };
        assert_eq!(outcome.fate, expected, "lesion {}", outcome.lesion);
        let in_reported = (region != 0).then(|| finding(region).suspicious);
        assert_eq!(
            outcome.in_reported_region, in_reported,
            "lesion {}",
            outcome.lesion
        );
        fates.insert(outcome.fate.name());
    }
    assert!(fates.len() >= 2, "one fate only: {fates:?}");
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

/// The ceiling stage is the phantom's own truth rule (phantom::truth, written apart from the
/// staging module) applied to the regions that the ground truth labels suspicious, one role per
/// region; and it does not depend on the network's scores.
#[test]
fn ceiling_stages_the_regions_by_their_labels() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let classes = v1_classes();
    let mut staged_m = Vec::new();
    // PSMA and FDG phantoms with nodes, bone and visceral lesions between them.
    for (tracer, seed) in [
        (Tracer::Psma, 1004),
        (Tracer::Fdg, 8021),
        (Tracer::Psma, 8009),
    ] {
        let study = phantom_study(tracer, seed, Preset::Small).unwrap();
        let at = |threshold| {
            let options = AnalyzeOptions {
                threshold: Some(threshold),
                ..AnalyzeOptions::default()
            };
            let report = analyzer
                .analyze(&study.pet, &study.ct, tracer, &options)
                .unwrap();
            let (labelled, _) = label_report(&study, &report).unwrap();
            let ceiling = ceiling_stage(&report, &labelled, analyzer.model().classes()).unwrap();
            (labelled, ceiling)
        };
        let (labelled, ceiling) = at(0.5);
        let roles: Vec<_> = labelled
            .iter()
            .filter(|f| f.suspicious)
            .map(|f| classes[f.location.unwrap() as usize].role)
            .collect();
        assert!(!roles.is_empty(), "seed {seed}: no lesion formed a region");
        let expected = truth::stage(&roles, false);
        let expected_m = expected.m_code();
        assert_eq!(ceiling.n, expected.mi_n, "seed {seed}");
        assert_eq!(m_code(&ceiling), expected_m, "seed {seed}");
        // At another operating point the network calls other findings suspicious; the ceiling
        // reads only the labels.
        let (_, at_zero) = at(0.0);
        assert_eq!(at_zero, ceiling, "seed {seed}");
        staged_m.push(expected_m);
    }
    staged_m.sort();
    staged_m.dedup();
    assert!(staged_m.len() > 1, "the studies stage alike: {staged_m:?}");
}

/// Restaging one report at other operating points gives what the analyzer reports when it runs
/// at them: the operating-point grid of `predict` needs one analysis per study, not one per point.
#[test]
fn restaging_a_report_equals_analyzing_at_those_operating_points() {
    let analyzer = Analyzer::new(AnalyzerConfig::default()).unwrap();
    let classes = analyzer.model().classes();
    // Studies until one whose stage depends on the operating point, so that the comparison
    // covers findings crossing a threshold; each is checked at every point.
    let mut varied = false;
    for seed in 8009..8013 {
        let study = phantom_study(Tracer::Psma, seed, Preset::Small).unwrap();
        let analyze = |threshold, distant_threshold| {
            let options = AnalyzeOptions {
                threshold,
                distant_threshold,
                ..AnalyzeOptions::default()
            };
            analyzer
                .analyze(&study.pet, &study.ct, Tracer::Psma, &options)
                .unwrap()
        };
        let report = analyze(None, None);
        let mut stages = Vec::new();
        for (t, t_distant) in [(0.5, 0.5), (0.2, 0.9), (0.9, 0.2), (0.05, 0.05)] {
            let points = OperatingPoints {
                threshold: t,
                distant_threshold: t_distant,
            };
            let restaged = restage(&report, classes, points).unwrap();
            let analyzed = analyze(Some(t), Some(t_distant));
            assert_eq!(
                restaged, analyzed.staging,
                "seed {seed} at ({t}, {t_distant})"
            );
            stages.push((restaged.n, m_code(&restaged)));
        }
        stages.dedup();
        if stages.len() > 1 {
            varied = true;
            break;
        }
    }
    assert!(varied, "every study stages alike at every operating point");
}
