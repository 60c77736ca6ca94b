//! Every PROMISE miTNM rule of DESIGN S8 and its boundaries, table-driven.

mod staging_support;

use staging_support::{classes, finding, region, suspicious};
use uptake::classes::Role;
use uptake::staging::{
    BonePattern, FindingInput, MCategory, MStage, MiTnm, NStage, Staging, StagingConfig,
    StagingError, TStage, skeleton_volume_ml, stage,
};
use uptake::volume::{Geometry, Volume};

fn run(findings: &[FindingInput]) -> Staging {
    stage(findings, &classes(), 5000.0, &StagingConfig::default()).unwrap()
}

fn run_with(findings: &[FindingInput], skeleton_ml: f64, config: &StagingConfig) -> Staging {
    stage(findings, &classes(), skeleton_ml, config).unwrap()
}

#[test]
fn n_stage_counts_regional_nodes() {
    let cases = [
        (0, NStage::N0),
        (1, NStage::N1),
        (2, NStage::N2),
        (3, NStage::N2),
    ];
    for (nodes, expected) in cases {
        let mut findings = suspicious(10, nodes, "ln_pelvic");
        // A non-suspicious pelvic node never counts.
        findings.push(finding(99, "ln_pelvic", 0.2));
        let s = run(&findings);
        assert_eq!(s.tnm.n, expected, "{nodes} regional nodes");
        assert_eq!(s.tnm.n_findings, (10..10 + nodes).collect::<Vec<_>>());
        assert_eq!(s.tnm.m, MStage::M0);
        assert_eq!(s.burden.role_counts.n, nodes as usize);
    }
}

#[test]
fn bone_pattern_follows_lesion_count() {
    let cases = [
        (0, None),
        (1, Some(BonePattern::Unifocal)),
        (2, Some(BonePattern::Oligometastatic)),
        (3, Some(BonePattern::Oligometastatic)),
        (4, Some(BonePattern::Disseminated)),
        (5, Some(BonePattern::Disseminated)),
    ];
    for (lesions, pattern) in cases {
        let s = run(&suspicious(1, lesions, "bone"));
        assert_eq!(s.tnm.bone_pattern, pattern, "{lesions} bone lesions");
        let expected_m = if lesions == 0 {
            MStage::M0
        } else {
            MStage::M1b
        };
        assert_eq!(s.tnm.m, expected_m);
        assert_eq!(s.burden.role_counts.m1b, lesions as usize);
        assert!(!s.tnm.dmi);
    }
}

#[test]
fn dmi_when_bone_volume_exceeds_the_fraction_of_the_skeleton() {
    // fraction 0.25 × 800 mL = 200 mL exactly in binary floating point.
    let config = StagingConfig {
        dmi_fraction: 0.25,
        ..Default::default()
    };
    let bone = |volumes: &[f64]| -> Vec<FindingInput> {
        volumes
            .iter()
            .enumerate()
            .map(|(i, &v)| FindingInput {
                region: region(i as u32 + 1, v, 10.0, 6.0),
                ..finding(i as u32 + 1, "bone", 0.9)
            })
            .collect()
    };
    let cases: [(&[f64], f64, bool); 6] = [
        (&[200.0], 800.0, false),
        (&[200.0 + 1e-9], 800.0, true),
        (&[100.0, 100.0], 800.0, false),
        (&[100.0, 100.5], 800.0, true),
        (&[150.0, 150.0], 0.0, false),
        (&[], 800.0, false),
    ];
    for (volumes, skeleton, dmi) in cases {
        let s = run_with(&bone(volumes), skeleton, &config);
        assert_eq!(
            s.tnm.dmi, dmi,
            "bone {volumes:?} mL, skeleton {skeleton} mL"
        );
        assert_eq!(
            s.burden.suspicious_bone_volume_ml,
            volumes.iter().sum::<f64>()
        );
        assert_eq!(s.burden.skeleton_volume_ml, skeleton);
    }
    // Non-suspicious bone uptake is not tumour volume.
    let mut findings = bone(&[150.0]);
    findings[0].p_suspicious = 0.1;
    assert!(!run_with(&findings, 100.0, &config).tnm.dmi);
}

#[test]
fn reported_m_is_the_highest_present_with_every_category_listed() {
    let cases: [(&[&str], MStage); 7] = [
        (&[], MStage::M0),
        (&["ln_retroperitoneal"], MStage::M1a),
        (&["ln_inguinal", "bone"], MStage::M1b),
        (&["ln_supradiaphragmatic", "lung"], MStage::M1c),
        (&["bone", "liver"], MStage::M1c),
        (
            &["ln_retroperitoneal", "bone", "adrenal_other_organ"],
            MStage::M1c,
        ),
        (&["brain"], MStage::M1c),
    ];
    for (sites, expected) in cases {
        let findings: Vec<FindingInput> = sites
            .iter()
            .enumerate()
            .map(|(i, site)| finding(i as u32 + 1, site, 0.9))
            .collect();
        let s = run(&findings);
        assert_eq!(s.tnm.m, expected, "{sites:?}");
        let listed: Vec<MStage> = s.tnm.m_categories.iter().map(|c| c.category).collect();
        let mut present: Vec<MStage> = s.findings.iter().filter_map(|f| m_of(f.role)).collect();
        present.sort();
        present.dedup();
        assert_eq!(listed, present, "{sites:?}");
        assert_eq!(s.tnm.n, NStage::N0);
        assert_eq!(s.tnm.t, TStage::T0);
    }
    let s = run(&[
        finding(7, "bone", 0.9),
        finding(3, "ln_inguinal", 0.9),
        finding(5, "bone", 0.9),
        finding(4, "liver", 0.95),
    ]);
    assert_eq!(
        s.tnm.m_categories,
        vec![
            MCategory {
                category: MStage::M1a,
                finding_ids: vec![3]
            },
            MCategory {
                category: MStage::M1b,
                finding_ids: vec![5, 7]
            },
            MCategory {
                category: MStage::M1c,
                finding_ids: vec![4]
            },
        ]
    );
    assert_eq!(s.tnm.bone_pattern, Some(BonePattern::Oligometastatic));
}

fn m_of(role: Option<Role>) -> Option<MStage> {
    match role? {
        Role::M1a => Some(MStage::M1a),
        Role::M1b => Some(MStage::M1b),
        Role::M1c => Some(MStage::M1c),
        Role::T | Role::N => None,
    }
}

#[test]
fn t_stage_from_local_findings() {
    type Sites<'a> = &'a [(&'a str, f32)];
    let cases: [(Sites, TStage, &[u32]); 5] = [
        (&[], TStage::T0, &[]),
        (&[("prostate", 0.9)], TStage::TPlus, &[1]),
        (&[("bladder", 0.6)], TStage::TPlus, &[1]),
        (&[("prostate", 0.4), ("bone", 0.9)], TStage::T0, &[]),
        (
            &[("bladder", 0.9), ("prostate", 0.9)],
            TStage::TPlus,
            &[1, 2],
        ),
    ];
    for (sites, expected, ids) in cases {
        let findings: Vec<FindingInput> = sites
            .iter()
            .enumerate()
            .map(|(i, (site, p))| finding(i as u32 + 1, site, *p))
            .collect();
        let s = run(&findings);
        assert_eq!(s.tnm.t, expected, "{sites:?}");
        assert_eq!(s.tnm.t_findings, ids, "{sites:?}");
        assert_eq!(s.burden.role_counts.t, ids.len());
    }
}

#[test]
fn common_iliac_nodes_are_m1a_unless_configured_as_regional() {
    let findings = suspicious(1, 2, "ln_common_iliac");
    let s = run(&findings);
    assert_eq!(
        (s.tnm.n, s.tnm.m),
        (NStage::N0, MStage::M1a),
        "default reading"
    );
    assert_eq!(s.findings[0].role, Some(Role::M1a));
    let regional = StagingConfig {
        common_iliac_as_regional: true,
        ..Default::default()
    };
    let s = run_with(&findings, 5000.0, &regional);
    assert_eq!((s.tnm.n, s.tnm.m), (NStage::N2, MStage::M0));
    assert_eq!(s.tnm.n_findings, vec![1, 2]);
    assert_eq!(s.burden.role_counts.n, 2);
    // Only classes with an alternative role move: extrapelvic nodes stay M1a.
    let s = run_with(&suspicious(1, 1, "ln_retroperitoneal"), 5000.0, &regional);
    assert_eq!((s.tnm.n, s.tnm.m), (NStage::N0, MStage::M1a));
}

#[test]
fn p_equal_to_the_threshold_is_suspicious() {
    // Each operating point at its own role: bone (M1b) at the distant one, a pelvic node (N) at
    // the other; the other operating point is set out of the way.
    let cases = [("bone", Role::M1b, true), ("ln_pelvic", Role::N, false)];
    for (site, role, distant) in cases {
        for threshold in [0.5f32, 0.7, 0.0, 1.0] {
            let other = if threshold > 0.5 { 0.0 } else { 1.0 };
            let config = if distant {
                StagingConfig {
                    threshold: other,
                    distant_threshold: threshold,
                    ..Default::default()
                }
            } else {
                StagingConfig {
                    threshold,
                    distant_threshold: other,
                    ..Default::default()
                }
            };
            let below = if threshold > 0.0 {
                threshold.next_down()
            } else {
                -1.0
            };
            let mut findings = vec![finding(1, site, threshold)];
            if below >= 0.0 {
                findings.push(finding(2, site, below));
            }
            let s = run_with(&findings, 5000.0, &config);
            assert!(
                s.findings[0].suspicious,
                "{site}: p == threshold {threshold}"
            );
            assert_eq!(s.findings[0].role, Some(role));
            assert!(s.findings[0].expression_score.is_some());
            if let Some(f) = s.findings.get(1) {
                assert!(!f.suspicious, "{site}: p just below {threshold}");
                assert_eq!(f.role, None);
                assert_eq!(f.expression_score, None);
            }
            if distant {
                assert_eq!(m1b_ids(&s.tnm), vec![1]);
            } else {
                assert_eq!(s.tnm.n_findings, vec![1]);
            }
        }
    }
}

#[test]
fn each_role_uses_its_operating_point() {
    // One finding of each role at p = 0.6: with the distant operating point above it only the
    // local and regional findings count, with the other one above it only the distant ones.
    let sites = [
        "prostate",
        "ln_pelvic",
        "ln_retroperitoneal",
        "bone",
        "liver",
    ];
    let findings: Vec<FindingInput> = sites
        .iter()
        .enumerate()
        .map(|(i, site)| finding(i as u32 + 1, site, 0.6))
        .collect();
    let config = |threshold, distant_threshold| StagingConfig {
        threshold,
        distant_threshold,
        ..Default::default()
    };
    let cases = [
        (
            config(0.5, 0.7),
            [true, true, false, false, false],
            (TStage::TPlus, NStage::N1, MStage::M0),
        ),
        (
            config(0.7, 0.5),
            [false, false, true, true, true],
            (TStage::T0, NStage::N0, MStage::M1c),
        ),
    ];
    for (config, flags, stage) in cases {
        let s = run_with(&findings, 5000.0, &config);
        let got: Vec<bool> = s.findings.iter().map(|f| f.suspicious).collect();
        assert_eq!(got, flags, "{config:?}");
        assert_eq!((s.tnm.t, s.tnm.n, s.tnm.m), stage, "{config:?}");
        let distant =
            s.burden.role_counts.m1a + s.burden.role_counts.m1b + s.burden.role_counts.m1c;
        assert_eq!(distant, flags[2..].iter().filter(|&&f| f).count());
    }
    let strict_distant = config(0.5, 0.7);
    // The role follows the configured reading: a common iliac node read as regional uses the
    // regional operating point.
    let common_iliac = [finding(1, "ln_common_iliac", 0.6)];
    let s = run_with(&common_iliac, 5000.0, &strict_distant);
    assert_eq!(s.tnm.m, MStage::M0);
    let regional = StagingConfig {
        common_iliac_as_regional: true,
        ..strict_distant
    };
    let s = run_with(&common_iliac, 5000.0, &regional);
    assert_eq!((s.tnm.n, s.tnm.m), (NStage::N1, MStage::M0));
}

fn m1b_ids(tnm: &MiTnm) -> Vec<u32> {
    tnm.m_categories
        .iter()
        .find(|c| c.category == MStage::M1b)
        .map_or_else(Vec::new, |c| c.finding_ids.clone())
}

/// A study with liver and parotid reference regions and one suspicious bone lesion per SUVmax.
fn expression_study(liver: bool, parotid: bool, lesion_suv_max: &[f64]) -> Staging {
    let mut findings = Vec::new();
    if liver {
        // Volume-weighted: (4·900 + 6.5·100) / 1000 = 4.25.
        findings.push(FindingInput {
            region: region(1, 900.0, 9.0, 4.0),
            ..finding(1, "liver", 0.1)
        });
        findings.push(FindingInput {
            region: region(2, 100.0, 9.0, 6.5),
            ..finding(2, "liver", 0.3)
        });
    }
    if parotid {
        // (11·20 + 13·20) / 40 = 12.
        findings.push(FindingInput {
            region: region(3, 20.0, 20.0, 11.0),
            ..finding(3, "salivary_gland", 0.2)
        });
        findings.push(FindingInput {
            region: region(4, 20.0, 20.0, 13.0),
            ..finding(4, "salivary_gland", 0.2)
        });
    }
    // A suspicious liver lesion and a suspicious salivary finding are not references.
    findings.push(FindingInput {
        region: region(5, 3.0, 40.0, 30.0),
        ..finding(5, "liver", 0.9)
    });
    findings.push(FindingInput {
        region: region(6, 3.0, 40.0, 30.0),
        ..finding(6, "salivary_gland", 0.9)
    });
    for (i, &suv_max) in lesion_suv_max.iter().enumerate() {
        let id = 100 + i as u32;
        findings.push(FindingInput {
            region: region(id, 1.0, suv_max, suv_max * 0.6),
            ..finding(id, "bone", 0.9)
        });
    }
    run(&findings)
}

fn lesion_scores(s: &Staging) -> Vec<Option<u8>> {
    s.findings
        .iter()
        .filter(|f| f.region.id >= 100)
        .map(|f| f.expression_score)
        .collect()
}

#[test]
fn reference_values_come_from_non_suspicious_liver_and_salivary_regions() {
    let s = expression_study(true, true, &[]);
    let r = &s.references;
    assert_eq!(r.blood_pool_suv, 1.5);
    assert!((r.liver_suv.unwrap() - 4.25).abs() < 1e-12, "{r:?}");
    assert_eq!(r.liver_region_ids, vec![1, 2]);
    assert_eq!(r.parotid_suv, Some(12.0));
    assert_eq!(r.parotid_region_ids, vec![3, 4]);
    let s = expression_study(false, false, &[]);
    assert_eq!(s.references.liver_suv, None);
    assert_eq!(s.references.parotid_suv, None);
    assert!(s.references.liver_region_ids.is_empty());
    let config = StagingConfig {
        blood_pool_suv: 2.25,
        ..Default::default()
    };
    let s = run_with(&[finding(1, "bone", 0.9)], 1.0, &config);
    assert_eq!(s.references.blood_pool_suv, 2.25);
}

#[test]
fn expression_score_boundaries_give_the_higher_score() {
    // SUVmax is the PET's f32, so the values just below a boundary are f32 ones.
    let liver = 4.25f32;
    let suv_max = [
        (1.5f32.next_down(), 0),
        (1.5, 1),
        (liver.next_down(), 1),
        (liver, 2),
        (12.0f32.next_down(), 2),
        (12.0, 3),
        (80.0, 3),
    ];
    let s = expression_study(true, true, &suv_max.map(|(v, _)| f64::from(v)));
    // The liver reference is computed, not typed in: check it is the value used above.
    assert_eq!(s.references.liver_suv, Some(f64::from(liver)));
    let expected: Vec<Option<u8>> = suv_max.iter().map(|&(_, score)| Some(score)).collect();
    assert_eq!(lesion_scores(&s), expected);
    // Non-suspicious regions carry no score.
    assert!(
        s.findings
            .iter()
            .filter(|f| !f.suspicious)
            .all(|f| f.expression_score.is_none())
    );
}

#[test]
fn missing_references_cap_the_expression_score() {
    let suv_max = [1.0, 2.0, 5.0, 20.0];
    let cases = [
        (true, true, [0, 1, 2, 3]),
        (false, true, [0, 1, 1, 1]),
        (true, false, [0, 1, 2, 2]),
        (false, false, [0, 1, 1, 1]),
    ];
    for (liver, parotid, scores) in cases {
        let s = expression_study(liver, parotid, &suv_max);
        assert_eq!(
            lesion_scores(&s),
            scores.map(Some).to_vec(),
            "liver {liver}, parotid {parotid}"
        );
    }
}

#[test]
fn burden_sums_suspicious_findings_only() {
    let findings = vec![
        FindingInput {
            region: region(1, 2.5, 12.0, 7.0),
            ..finding(1, "prostate", 0.9)
        },
        FindingInput {
            region: region(2, 1.25, 8.0, 5.0),
            ..finding(2, "ln_pelvic", 0.8)
        },
        FindingInput {
            region: region(3, 4.0, 6.0, 3.0),
            ..finding(3, "bone", 0.55)
        },
        FindingInput {
            region: region(4, 0.5, 5.0, 2.0),
            ..finding(4, "lung", 0.5)
        },
        FindingInput {
            region: region(5, 0.75, 4.0, 2.0),
            ..finding(5, "ln_inguinal", 0.6)
        },
        // Physiological: kidney with a large volume, not counted.
        FindingInput {
            region: region(6, 150.0, 30.0, 12.0),
            ..finding(6, "kidney", 0.05)
        },
    ];
    let s = run(&findings);
    let b = &s.burden;
    assert_eq!(b.suspicious_count, 5);
    assert_eq!(
        (
            b.role_counts.t,
            b.role_counts.n,
            b.role_counts.m1a,
            b.role_counts.m1b,
            b.role_counts.m1c
        ),
        (1, 1, 1, 1, 1)
    );
    assert_eq!(b.tumour_volume_ml, 2.5 + 1.25 + 4.0 + 0.5 + 0.75);
    let tl = 2.5 * 7.0 + 1.25 * 5.0 + 4.0 * 3.0 + 0.5 * 2.0 + 0.75 * 2.0;
    assert!((b.total_lesion_uptake - tl).abs() < 1e-12);
    assert_eq!(b.suspicious_bone_volume_ml, 4.0);
    assert_eq!(
        (s.tnm.t, s.tnm.n, s.tnm.m),
        (TStage::TPlus, NStage::N1, MStage::M1c)
    );
}

#[test]
fn location_is_the_argmax_and_top3_breaks_ties_by_lower_id() {
    let mut probs = vec![0.0f32; 23];
    probs[21] = 0.4; // bone
    probs[14] = 0.25; // prostate
    probs[16] = 0.25; // ln_pelvic
    probs[3] = 0.1;
    let s = run(&[FindingInput {
        location_probs: probs,
        ..finding(1, "bone", 0.9)
    }]);
    let f = &s.findings[0];
    assert_eq!((f.location.id, f.location.name.as_str()), (21, "bone"));
    assert_eq!(f.location.probability, 0.4);
    let top: Vec<(u32, &str, f32)> = f
        .top3
        .iter()
        .map(|p| (p.id, p.name.as_str(), p.probability))
        .collect();
    assert_eq!(
        top,
        vec![
            (21, "bone", 0.4),
            (14, "prostate", 0.25),
            (16, "ln_pelvic", 0.25)
        ]
    );
    // An exact tie for the first place goes to the lower id.
    let mut probs = vec![0.0f32; 23];
    probs[20] = 0.5;
    probs[7] = 0.5;
    let s = run(&[FindingInput {
        location_probs: probs,
        ..finding(1, "bone", 0.9)
    }]);
    assert_eq!(s.findings[0].location.name, "lung");
    assert_eq!(s.findings[0].role, Some(Role::M1c));
    assert_eq!(s.findings[0].top3[1].name, "ln_supradiaphragmatic");
    assert_eq!(s.findings[0].top3[2].id, 0);
}

#[test]
fn roles_come_from_the_given_class_table() {
    // A table whose class 0 is a regional node: the role is read from the table, not constants.
    let mut table = classes();
    table[0].role = Role::N;
    let s = stage(
        &[finding(1, "soft_tissue", 0.9)],
        &table,
        1.0,
        &StagingConfig::default(),
    )
    .unwrap();
    assert_eq!(s.tnm.n, NStage::N1);
    assert_eq!(s.tnm.m, MStage::M0);
}

#[test]
fn invalid_input_gives_typed_errors() {
    let c = classes();
    let ok = StagingConfig::default();
    let bad_config = |config: StagingConfig| stage(&[], &c, 1.0, &config).unwrap_err();
    assert_eq!(
        bad_config(StagingConfig {
            threshold: f32::NAN,
            ..ok.clone()
        })
        .to_string(),
        "threshold is NaN; it must lie in [0, 1]"
    );
    assert!(matches!(
        bad_config(StagingConfig {
            threshold: 1.5,
            ..ok.clone()
        }),
        StagingError::Threshold {
            name: "threshold",
            ..
        }
    ));
    assert_eq!(
        bad_config(StagingConfig {
            distant_threshold: -0.1,
            ..ok.clone()
        })
        .to_string(),
        "distant_threshold is -0.1; it must lie in [0, 1]"
    );
    for dmi_fraction in [0.0, -0.1, 1.01, f64::NAN] {
        assert!(matches!(
            bad_config(StagingConfig {
                dmi_fraction,
                ..ok.clone()
            }),
            StagingError::DmiFraction(_)
        ));
    }
    for blood_pool_suv in [0.0, -1.0, f64::INFINITY, f64::NAN] {
        assert!(matches!(
            bad_config(StagingConfig {
                blood_pool_suv,
                ..ok.clone()
            }),
            StagingError::BloodPool(_)
        ));
    }
    for skeleton in [-1.0, f64::NAN, f64::INFINITY] {
        assert!(matches!(
            stage(&[], &c, skeleton, &ok),
            Err(StagingError::SkeletonVolume(_))
        ));
    }
    assert_eq!(
        stage(&[], &c[..2], 1.0, &ok),
        Err(StagingError::TooFewClasses(2))
    );
    let err = |f: FindingInput| stage(&[f], &c, 1.0, &ok).unwrap_err();
    let mut short = finding(3, "bone", 0.9);
    short.location_probs.pop();
    assert_eq!(
        err(short),
        StagingError::LocationCount {
            region: 3,
            got: 22,
            expected: 23
        }
    );
    for p in [f32::NAN, -0.01, 1.01] {
        assert!(matches!(
            err(finding(3, "bone", p)),
            StagingError::Probability {
                region: 3,
                what: "p_suspicious",
                ..
            }
        ));
    }
    let mut nan_prob = finding(3, "bone", 0.9);
    nan_prob.location_probs[4] = f32::NAN;
    assert!(matches!(
        err(nan_prob),
        StagingError::Probability { region: 3, .. }
    ));
    let mut nan_suv = finding(3, "bone", 0.9);
    nan_suv.region.suv_max = f32::NAN;
    assert!(matches!(
        err(nan_suv),
        StagingError::NonFinite {
            region: 3,
            field: "suv_max",
            ..
        }
    ));
    let mut negative = finding(3, "bone", 0.9);
    negative.region.volume_ml = -1.0;
    assert!(matches!(
        err(negative),
        StagingError::NegativeVolume { region: 3, .. }
    ));
    assert_eq!(err(finding(0, "bone", 0.9)), StagingError::ZeroRegionId);
    assert_eq!(
        stage(
            &[finding(4, "bone", 0.9), finding(4, "lung", 0.2)],
            &c,
            1.0,
            &ok
        ),
        Err(StagingError::DuplicateRegion(4))
    );
}

#[test]
fn skeleton_volume_counts_ct_voxels_above_200_hu() {
    // 2 × 2 × 3 mm voxels: 0.012 mL each.
    let g = Geometry::axis_aligned([4, 3, 2], [2.0, 2.0, 3.0], [0.0; 3]).unwrap();
    let mut hu = vec![-1000.0f32; 24];
    for (i, v) in [200.0, 200.01, 700.0, 1500.0, 199.9, 201.0]
        .into_iter()
        .enumerate()
    {
        hu[i * 4] = v;
    }
    let ct = Volume::new(g, hu).unwrap();
    let expected = 4.0 * 2.0 * 2.0 * 3.0 / 1000.0;
    assert!((skeleton_volume_ml(&ct) - expected).abs() < 1e-15);
}

#[test]
fn findings_keep_input_order_and_stats() {
    let findings = vec![finding(9, "bone", 0.2), finding(2, "lung", 0.9)];
    let s = run(&findings);
    let ids: Vec<u32> = s.findings.iter().map(|f| f.region.id).collect();
    assert_eq!(ids, vec![9, 2]);
    assert_eq!(s.findings[1].region, findings[1].region);
    assert_eq!(s.findings[0].location.probability, 0.8);
    assert_eq!(s.config, StagingConfig::default());
}
