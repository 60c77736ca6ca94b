//! The whole analysis on phantom studies and on degenerate input: report consistency,
//! determinism across threads, cancellation, empty studies and rejected input.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::sync::{Arc, OnceLock};

use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device, Stage};
use uptake::findings::{Finding, Source};
use uptake::report::Report;
use uptake::volume::{Geometry, Volume};
use uptake::{Error, Tracer};

mod study_support;
use study_support::study;

fn analyzer() -> &'static Arc<Analyzer> {
    static A: OnceLock<Arc<Analyzer>> = OnceLock::new();
    A.get_or_init(|| {
        Arc::new(
            Analyzer::new(AnalyzerConfig {
                device: Device::Cpu,
                threads: 2,
                ..AnalyzerConfig::default()
            })
            .unwrap(),
        )
    })
}

/// Everything in a report except wall-clock timings.
fn comparable(r: &Report) -> String {
    let mut r = r.clone();
    r.timings.clear();
    r.to_json().unwrap()
}

#[test]
fn phantom_report_is_consistent_with_its_regions() {
    let s = study();
    let analyzer = analyzer();
    let r = analyzer
        .analyze(&s.pet, &s.ct, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap();
    let classes = analyzer.model().classes();
    let labels = r.label_map.as_ref().unwrap();
    assert_eq!(labels.geometry(), s.pet.geometry());
    let subregions = r.subregion_map.as_ref().unwrap();
    assert_eq!(subregions.geometry(), s.pet.geometry());
    // S4's findings are the regions of the label map, the sub-regions' those of the second map.
    let map_of = |f: &Finding| match f.source {
        Source::S4 => labels,
        Source::Subregion => subregions,
    };
    for (map, source) in [(labels, Source::S4), (subregions, Source::Subregion)] {
        let ids: BTreeSet<u32> = map.data().iter().copied().filter(|&l| l != 0).collect();
        let found: BTreeSet<u32> = r
            .findings
            .iter()
            .filter(|f| f.source == source)
            .map(|f| f.region.id)
            .collect();
        assert_eq!(
            ids, found,
            "one {source:?} finding per region of its label map"
        );
    }
    assert!(
        r.findings.iter().any(|f| f.source == Source::S4),
        "a PSMA phantom has uptake regions"
    );
    for f in &r.findings {
        let labels = map_of(f);
        let voxels = labels.data().iter().filter(|&&l| l == f.region.id).count();
        assert_eq!(
            voxels as u64, f.region.voxel_count,
            "region {}",
            f.region.id
        );
        let [x, y, z] = f.region.max_voxel;
        assert_eq!(labels.data()[s.pet.geometry().index(x, y, z)], f.region.id);
        // Each finding at the operating point of its location's role (default reading).
        let operating_point = if classes[f.location.id as usize].role.is_distant() {
            r.staging_config.distant_threshold
        } else {
            r.staging_config.threshold
        };
        assert_eq!(f.suspicious, f.p_suspicious >= operating_point);
        assert_eq!(f.role.is_some(), f.suspicious);
        let total: f32 = f.top3.iter().map(|t| t.probability).sum();
        assert!(total <= 1.0 + 1e-5 && f.top3[0].probability >= f.top3[1].probability);
    }
    assert!(
        r.findings
            .windows(2)
            .all(|w| w[0].p_suspicious >= w[1].p_suspicious)
    );
    let stages: Vec<&str> = r.timings.iter().map(|t| t.stage.as_str()).collect();
    assert_eq!(
        stages,
        [
            "check", "grid", "regions", "reformat", "classify", "staging"
        ]
    );
    // The thresholds default to the model's operating points for the study's tracer.
    let model = analyzer.model().operating_points(Tracer::Psma);
    assert_eq!(
        (
            r.staging_config.threshold,
            r.staging_config.distant_threshold
        ),
        (model.threshold, model.distant_threshold)
    );
    assert_eq!(r.model.trained, analyzer.model().is_trained());
}

#[test]
fn a_study_is_staged_at_its_tracers_operating_points() {
    let s = study();
    let analyzer = analyzer();
    let [psma, fdg] = [Tracer::Psma, Tracer::Fdg].map(|tracer| {
        let r = analyzer
            .analyze(&s.pet, &s.ct, tracer, &AnalyzeOptions::default())
            .unwrap();
        let model = analyzer.model().operating_points(tracer);
        let used = (
            r.staging_config.threshold,
            r.staging_config.distant_threshold,
        );
        assert_eq!(
            used,
            (model.threshold, model.distant_threshold),
            "{tracer:?}"
        );
        used
    });
    // The embedded model gives FDG its own pair, so the tracer decides which is used.
    assert_ne!(psma, fdg);
}

#[test]
fn concurrent_analyses_equal_the_serial_one() {
    let s = study();
    let serial = comparable(
        &analyzer()
            .analyze(&s.pet, &s.ct, Tracer::Psma, &AnalyzeOptions::default())
            .unwrap(),
    );
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let a = Arc::clone(analyzer());
            std::thread::spawn(move || {
                let s = study();
                comparable(
                    &a.analyze(&s.pet, &s.ct, Tracer::Psma, &AnalyzeOptions::default())
                        .unwrap(),
                )
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), serial);
    }
}

#[test]
fn progress_reports_stages_in_order_and_can_cancel() {
    let s = study();
    let seen = RefCell::new(Vec::new());
    let record = |stage: Stage, fraction: f32| {
        assert!((0.0..=1.0).contains(&fraction));
        seen.borrow_mut().push(stage);
        true
    };
    let options = AnalyzeOptions {
        progress: Some(&record),
        ..AnalyzeOptions::default()
    };
    analyzer()
        .analyze(&s.pet, &s.ct, Tracer::Psma, &options)
        .unwrap();
    let mut order = seen.borrow().clone();
    order.dedup();
    // Reformation and CNN alternate, batch by batch (the phantom has more than one batch).
    let batches = &order[3..order.len() - 1];
    assert_eq!(order[..3], [Stage::Check, Stage::Grid, Stage::Regions]);
    assert_eq!(order.last(), Some(&Stage::Staging));
    assert!(batches.len() >= 4, "{order:?}");
    for pair in batches.chunks(2) {
        assert_eq!(pair, [Stage::Reformat, Stage::Classify], "{order:?}");
    }
    for stop_at in [
        Stage::Check,
        Stage::Regions,
        Stage::Reformat,
        Stage::Classify,
        Stage::Staging,
    ] {
        let stop = |stage: Stage, _: f32| stage != stop_at;
        let options = AnalyzeOptions {
            progress: Some(&stop),
            ..AnalyzeOptions::default()
        };
        let err = analyzer()
            .analyze(&s.pet, &s.ct, Tracer::Psma, &options)
            .unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{stop_at:?}: {err}");
    }
}

fn flat(dims: [usize; 3], spacing: f64, origin: [f64; 3], value: f32) -> Volume<f32> {
    let g = Geometry::axis_aligned(dims, [spacing; 3], origin).unwrap();
    Volume::filled(g, value)
}

#[test]
fn a_study_without_uptake_is_an_empty_report_staged_t0_n0_m0() {
    let pet = flat([20, 20, 20], 4.0, [-40.0; 3], 0.8);
    let ct = flat([40, 40, 40], 2.0, [-40.0; 3], 40.0);
    let r = analyzer()
        .analyze(&pet, &ct, Tracer::Fdg, &AnalyzeOptions::default())
        .unwrap();
    assert!(r.findings.is_empty());
    assert_eq!(
        r.staging.line().split(" |").next().unwrap(),
        "miTNM: T0 N0 M0"
    );
    assert_eq!(r.burden.tumour_volume_ml, 0.0);
}

#[test]
fn rejected_input_is_a_clear_error() {
    let pet = flat([20, 20, 20], 4.0, [-40.0; 3], 0.8);
    let far_ct = flat([10, 10, 10], 2.0, [5000.0; 3], 0.0);
    let err = analyzer()
        .analyze(&pet, &far_ct, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Grid(_)), "{err}");

    let ct = flat([20, 20, 20], 4.0, [-40.0; 3], 0.0);
    let mut nan_pet = pet.clone();
    nan_pet.data_mut()[17] = f32::NAN;
    let err = analyzer()
        .analyze(&nan_pet, &ct, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("non-finite"), "{err}");
    let replaced = AnalyzeOptions {
        replace_non_finite: true,
        ..AnalyzeOptions::default()
    };
    assert!(
        analyzer()
            .analyze(&nan_pet, &ct, Tracer::Psma, &replaced)
            .is_ok()
    );
    assert!(
        nan_pet.data()[17].is_nan(),
        "the caller's volume is not modified"
    );
}

#[test]
fn a_study_over_the_memory_budget_is_refused_before_allocating() {
    // 8³ voxels of 320 mm: a 16 KB study whose common 3 mm grid would hold 854³ voxels (5 GB).
    let pet = flat([8, 8, 8], 320.0, [0.0; 3], 2.0);
    let ct = flat([8, 8, 8], 320.0, [0.0; 3], 40.0);
    let err = analyzer()
        .analyze(&pet, &ct, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Memory(_)), "{err}");
    assert_eq!(
        uptake::ffi::status::Status::from(&err),
        uptake::ffi::status::Status::Memory
    );
    let message = err.to_string();
    for needle in ["854×854×854", "memory budget", "MiB"] {
        assert!(message.contains(needle), "{needle:?} missing: {message}");
    }

    // Voxels of 4 nm (a fuzzer's find): the SUVpeak sphere would span the whole volume, an
    // offset per voxel of its search box; within budget it is measured, not overflowed.
    let g = Geometry::axis_aligned([6, 6, 6], [4e-9, 3.0, 3.0], [0.0; 3]).unwrap();
    let mut tiny = Volume::filled(g, 0.5f32);
    tiny.data_mut()[100] = 6.0;
    let ct = flat([6, 6, 6], 3.0, [-1.5; 3], 40.0);
    let r = analyzer()
        .analyze(
            &tiny,
            &ct,
            Tracer::Psma,
            &AnalyzeOptions {
                min_ct_coverage: Some(0.0),
                ..AnalyzeOptions::default()
            },
        )
        .unwrap();
    assert_eq!(r.findings.len(), 1);

    // A small study within the default budget, refused under a budget of 1 MiB …
    let pet = flat([20, 20, 20], 4.0, [-40.0; 3], 0.8);
    let ct = flat([40, 40, 40], 2.0, [-40.0; 3], 40.0);
    let tight = AnalyzeOptions {
        memory_budget: Some(1 << 20),
        ..AnalyzeOptions::default()
    };
    let err = analyzer()
        .analyze(&pet, &ct, Tracer::Psma, &tight)
        .unwrap_err();
    assert!(matches!(err, Error::Memory(_)), "{err}");
    // … and analyzed under one of 256 MiB (one network batch of 64 regions bounds ~110 MiB).
    let roomy = AnalyzeOptions {
        memory_budget: Some(256 << 20),
        ..AnalyzeOptions::default()
    };
    assert!(analyzer().analyze(&pet, &ct, Tracer::Psma, &roomy).is_ok());
}

#[test]
fn a_ct_covering_little_of_the_pet_is_refused_and_coverage_is_reported() {
    // PET 100 slices of 3 mm (z −150 … 150 mm); the CT covers one PET slice's height.
    let pet = flat([10, 10, 100], 3.0, [-15.0, -15.0, -148.5], 0.8);
    let sliver = flat([10, 10, 1], 3.0, [-15.0, -15.0, 0.0], 40.0);
    let err = analyzer()
        .analyze(&pet, &sliver, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap_err();
    assert!(matches!(err, Error::Grid(_)), "{err}");
    assert!(
        err.to_string().contains("1.0 % of the PET's axial extent"),
        "{err}"
    );

    let allowed = AnalyzeOptions {
        min_ct_coverage: Some(0.0),
        ..AnalyzeOptions::default()
    };
    let r = analyzer()
        .analyze(&pet, &sliver, Tracer::Psma, &allowed)
        .unwrap();
    assert!(
        (r.ct_coverage.axial - 0.01).abs() < 1e-9,
        "{:?}",
        r.ct_coverage
    );
    assert!(r.ct_coverage.voxels > 0.0 && r.ct_coverage.voxels < 0.05);

    // Three quarters of the PET: refused by default, analyzed at a minimum of 0.7.
    let most = flat([10, 10, 75], 3.0, [-15.0, -15.0, -148.5], 40.0);
    let err = analyzer()
        .analyze(&pet, &most, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap_err();
    assert!(err.to_string().contains("75.0 %"), "{err}");
    let relaxed = AnalyzeOptions {
        min_ct_coverage: Some(0.7),
        ..AnalyzeOptions::default()
    };
    let r = analyzer()
        .analyze(&pet, &most, Tracer::Psma, &relaxed)
        .unwrap();
    assert!((r.ct_coverage.axial - 0.75).abs() < 1e-9);

    let full = flat([10, 10, 100], 3.0, [-15.0, -15.0, -148.5], 40.0);
    let r = analyzer()
        .analyze(&pet, &full, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap();
    assert_eq!((r.ct_coverage.axial, r.ct_coverage.voxels), (1.0, 1.0));
}

#[test]
fn thresholds_outside_0_1_are_refused_for_every_host() {
    let pet = flat([20, 20, 20], 4.0, [-40.0; 3], 0.8);
    let ct = flat([20, 20, 20], 4.0, [-40.0; 3], 40.0);
    for (threshold, distant) in [
        (Some(-0.1), None),
        (Some(1.5), None),
        (Some(f32::NAN), None),
        (None, Some(1.01)),
        (None, Some(-0.2)),
    ] {
        let options = AnalyzeOptions {
            threshold,
            distant_threshold: distant,
            ..AnalyzeOptions::default()
        };
        let err = analyzer()
            .analyze(&pet, &ct, Tracer::Psma, &options)
            .unwrap_err();
        assert!(
            matches!(err, Error::InvalidArgument(_)) && err.to_string().contains("[0, 1]"),
            "{threshold:?} {distant:?}: {err}"
        );
    }
    // 0 calls every region suspicious, as staging's rule allows (an ROC sweep's end).
    let all = AnalyzeOptions {
        threshold: Some(0.0),
        ..AnalyzeOptions::default()
    };
    assert!(analyzer().analyze(&pet, &ct, Tracer::Psma, &all).is_ok());
    let bad_coverage = AnalyzeOptions {
        min_ct_coverage: Some(1.5),
        ..AnalyzeOptions::default()
    };
    assert!(
        analyzer()
            .analyze(&pet, &ct, Tracer::Psma, &bad_coverage)
            .is_err()
    );
}
