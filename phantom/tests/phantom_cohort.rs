//! A seeded cohort reaches every staging category and every S6 location class.
//!
//! The cohort is drawn as disease *plans* (anatomy and lesions before rasterisation, a few
//! milliseconds each); two full renders check that the rendered label maps keep every class.

use std::collections::BTreeSet;

use uptake::classes::{V1_CLASS_COUNT, v1_classes};
use uptake::tracer::Tracer;
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset, disease::Avidity};

const COHORT: u64 = 200;

fn spec(tracer: Tracer, seed: u64) -> PhantomSpec {
    PhantomSpec {
        tracer,
        seed,
        preset: Preset::Small,
        coverage: Coverage::WholeBody,
    }
}

#[test]
fn every_staging_category_occurs() {
    for tracer in [Tracer::Psma, Tracer::Fdg] {
        let mut seen = BTreeSet::new();
        for seed in 0..COHORT {
            let (_, disease) = phantom::plan(&spec(tracer, seed));
            let t = phantom::plan_truth(&disease);
            seen.insert(t.mi_t.to_string());
            seen.insert(t.mi_n.to_string());
            seen.insert(t.mi_m.to_string());
            seen.extend(t.m_categories.iter().map(|m| m.to_string()));
            if let Some(p) = t.bone_pattern {
                seen.insert(format!("M1b{p}"));
            }
        }
        let mut wanted = vec!["T0", "T+", "N0", "N1", "N2", "M0", "M1a", "M1b", "M1c"];
        if tracer == Tracer::Psma {
            wanted.extend(["M1bu", "M1bo", "M1bd", "M1bdmi"]);
        } else {
            wanted.extend(["M1bu", "M1bo", "M1bd"]);
        }
        for w in wanted {
            assert!(
                seen.contains(w),
                "{tracer:?}: {w} never drawn in {COHORT} studies: {seen:?}"
            );
        }
    }
}

#[test]
fn every_class_occurs_as_a_structure_and_as_a_lesion_site() {
    let classes = v1_classes();
    let ganglion = uptake::classes::v1_id("ganglion").unwrap();
    let mut lesion_classes = BTreeSet::new();
    let mut volumes = Vec::new();
    let mut targets = Vec::new();
    let mut faint = 0;
    let mut next_to = BTreeSet::new();
    for tracer in [Tracer::Psma, Tracer::Fdg] {
        for seed in 0..COHORT {
            let (body, disease) = phantom::plan(&spec(tracer, seed));
            let present: BTreeSet<u32> =
                body.structures.iter().filter_map(|s| s.class_id).collect();
            assert_eq!(present.len(), V1_CLASS_COUNT, "seed {seed}: {present:?}");
            for l in &disease.lesions {
                assert_eq!(Some(l.class_id), body.structures[l.host].class_id);
                assert_eq!(l.role, classes[l.class_id as usize].role);
                lesion_classes.insert(l.class_id);
                volumes.push(l.volume_ml());
                match l.avidity {
                    Avidity::SuvMax(v) => targets.push(v),
                    Avidity::TimesHost(_) => faint += 1,
                }
                if let Some(n) = l.next_to {
                    next_to.insert(n);
                }
            }
        }
    }
    for c in &classes {
        if c.id == ganglion {
            continue;
        }
        assert!(
            lesion_classes.contains(&c.id),
            "no lesion in class {}",
            c.name
        );
    }
    assert!(!lesion_classes.contains(&ganglion));
    let (lo, hi) = volumes
        .iter()
        .fold((f64::MAX, 0.0f64), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    assert!((0.19..0.3).contains(&lo), "smallest lesion {lo} mL");
    assert!(hi <= 20.5 && hi > 12.0, "largest lesion {hi} mL");
    assert!(
        targets.iter().any(|&t| t > 50.0),
        "some lesions have SUVmax > 50"
    );
    assert!(faint > 20, "lesions barely above background: {faint}");
    assert!(
        next_to.contains("ureter") && next_to.contains("kidney"),
        "{next_to:?}"
    );
}

#[test]
fn rendered_label_maps_keep_every_class() {
    for (tracer, seed) in [(Tracer::Psma, 5), (Tracer::Fdg, 6)] {
        let study = phantom::generate(&spec(tracer, seed)).unwrap();
        let mut pet_classes = BTreeSet::new();
        for &l in study.pet_structures.data() {
            if let Some(c) = study.structures[l as usize].class_id {
                pet_classes.insert(c);
            }
        }
        // On 8 mm voxels an FDG lacrimal gland (0.7 mL, uptake near its surroundings) loses
        // every voxel's vote to its neighbours; with PSMA it is hot and keeps its voxels.
        let lacrimal = uptake::classes::v1_id("lacrimal_gland").unwrap();
        let missing: Vec<u32> = (0..V1_CLASS_COUNT as u32)
            .filter(|c| !pet_classes.contains(c))
            .collect();
        match tracer {
            Tracer::Psma => assert!(missing.is_empty(), "PSMA: {missing:?}"),
            Tracer::Fdg => assert!(missing.iter().all(|&c| c == lacrimal), "FDG: {missing:?}"),
        }
        let ct_classes: BTreeSet<u32> = study
            .ct_structures
            .data()
            .iter()
            .filter_map(|&l| study.structures[l as usize].class_id)
            .collect();
        assert_eq!(
            ct_classes.len(),
            V1_CLASS_COUNT,
            "CT {tracer:?}: {ct_classes:?}"
        );
        for l in &study.lesions {
            assert!(
                l.pet_voxels > 0 && l.ct_voxels > 0,
                "lesion {} has no voxel",
                l.id
            );
        }
    }
}
