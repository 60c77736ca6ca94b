//! Ground truth agrees with the images: lesion label maps against the lesion ellipsoids,
//! rendered physiological SUVs against the published ranges, CT HU against tissue ranges.

use uptake::tracer::Tracer;
use uptake::volume::Geometry;
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset, Study};

fn small(tracer: Tracer, seed: u64) -> PhantomSpec {
    PhantomSpec {
        tracer,
        seed,
        preset: Preset::Small,
        coverage: Coverage::WholeBody,
    }
}

/// Half the voxel diagonal (mm).
fn half_diagonal(g: &Geometry) -> f64 {
    g.spacing_mm().iter().map(|s| s * s).sum::<f64>().sqrt() / 2.0
}

/// Bound on |label volume − true volume| for an ellipsoid with semi-axes `radii` on a grid
/// with half-diagonal h. Every misassigned voxel straddles the surface, so it lies within 2h
/// (a full diagonal) of it. For an ellipsoid E with smallest semi-axis c, the points within d
/// of the surface lie between (1 − d/c)·E and (1 + d/c)·E (a ball of radius d fits in
/// (d/c)·E), so the error is at most V·((1 + 2h/c)³ − max(0, 1 − 2h/c)³).
fn partial_volume_bound(radii: [f64; 3], h: f64) -> f64 {
    let v = 4.0 / 3.0 * std::f64::consts::PI * radii.iter().product::<f64>() / 1000.0;
    let c = radii.iter().cloned().fold(f64::MAX, f64::min);
    let t = 2.0 * h / c;
    v * ((1.0 + t).powi(3) - (1.0 - t).max(0.0).powi(3))
}

/// The studies every test of this file reads (generated once).
fn studies() -> &'static [(PhantomSpec, Study)] {
    static STUDIES: std::sync::OnceLock<Vec<(PhantomSpec, Study)>> = std::sync::OnceLock::new();
    STUDIES.get_or_init(|| {
        [
            (Tracer::Psma, 31),
            (Tracer::Psma, 33),
            (Tracer::Psma, 35),
            (Tracer::Fdg, 32),
            (Tracer::Fdg, 34),
            (Tracer::Fdg, 36),
        ]
        .iter()
        .map(|&(t, s)| {
            let spec = small(t, s);
            (spec, phantom::generate(&spec).unwrap())
        })
        .collect()
    })
}

#[test]
fn lesion_label_maps_match_the_lesion_ellipsoids() {
    let mut checked = 0;
    for (spec, study) in studies() {
        let (_, plan) = phantom::plan(spec);
        let ct_g = *study.ct.geometry();
        let pet_g = *study.pet.geometry();
        for (l, p) in study.lesions.iter().zip(&plan.lesions) {
            assert_eq!(l.id, p.id);
            // Oracle for the CT: a voxel belongs to the lesion iff its centre lies inside the
            // ellipsoid (the one exception: a lesion between all centres keeps one voxel).
            let inside = |q: [f64; 3]| {
                let d = [0, 1, 2].map(|i| q[i] - p.centre[i]);
                (0..3)
                    .map(|j| {
                        let r = &p.rotation;
                        ((r[0][j] * d[0] + r[1][j] * d[1] + r[2][j] * d[2]) / p.radii[j]).powi(2)
                    })
                    .sum::<f64>()
                    <= 1.0
            };
            let mut expected = 0;
            let mut mismatch = 0;
            for (i, &lab) in study.ct_lesions.data().iter().enumerate() {
                let q = ct_g.voxel_to_patient(ct_g.coords(i).map(|c| c as f64));
                let want = inside(q);
                expected += want as usize;
                if want != (lab == l.id) {
                    mismatch += 1;
                }
            }
            assert!(
                mismatch == 0 || (expected == 0 && mismatch == 1),
                "lesion {}: {mismatch} CT voxels disagree with the ellipsoid",
                l.id
            );
            assert_eq!(l.ct_voxels, expected.max(1));
            assert_eq!(
                study
                    .pet_lesions
                    .data()
                    .iter()
                    .filter(|&&x| x == l.id)
                    .count(),
                l.pet_voxels
            );

            // Volumes: label-map volume within the partial-volume bound of the true volume.
            for (g, voxels) in [(ct_g, l.ct_voxels), (pet_g, l.pet_voxels)] {
                let label_ml = voxels as f64 * g.voxel_volume_ml();
                let bound =
                    partial_volume_bound(l.radii_mm, half_diagonal(&g)) + g.voxel_volume_ml();
                assert!(
                    (label_ml - l.volume_ml).abs() <= bound,
                    "lesion {} ({:.2} mL): label map {label_ml:.2} mL, bound {bound:.2}",
                    l.id,
                    l.volume_ml
                );
            }
            // The structure under a lesion is its host.
            let idx = study
                .ct_lesions
                .data()
                .iter()
                .position(|&x| x == l.id)
                .unwrap();
            assert_eq!(study.ct_structures.data()[idx], l.host_label);
            checked += 1;
        }
    }
    assert!(checked >= 8, "too few lesions checked: {checked}");
}

/// SUVmax mean ± SD of the 55-patient 68Ga-PSMA-11 series quoted in issue 5.
const PSMA_SUVMAX: [(&str, f64, f64); 12] = [
    ("lacrimal_gland", 15.7, 7.2),
    ("parotid_gland", 24.4, 8.1),
    ("submandibular_gland", 26.7, 7.1),
    ("liver", 8.2, 2.5),
    ("spleen", 10.9, 3.9),
    ("kidney_left", 66.4, 25.4),
    ("kidney_right", 66.4, 25.4),
    ("duodenum", 17.6, 8.9),
    ("colon", 10.6, 9.2),
    ("rectum", 3.7, 1.1),
    ("thyroid", 4.5, 1.2),
    ("waldeyer_ring", 10.4, 4.3),
];

#[test]
fn physiological_uptake_is_within_the_published_ranges() {
    for (spec, study) in studies().iter().filter(|s| s.0.tracer == Tracer::Psma) {
        let seed = spec.seed;
        for (name, mean, sd) in PSMA_SUVMAX {
            let p = study
                .physiological
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("{name} has no PET voxel"));
            // Organ SUVmax as a reader measures it: inside the organ, away from the border
            // where a hot neighbour's blur spills in; glands too small to have an inside are
            // read at their hottest voxel.
            let suv_max = p.suv_max_core.unwrap_or(p.suv_max);
            let (lo, hi) = ((mean - 3.0 * sd).max(0.0), mean + 3.0 * sd);
            assert!(
                suv_max >= lo && suv_max <= hi,
                "seed {seed} {name}: SUVmax {suv_max:.1} outside {lo:.1}..{hi:.1}"
            );
            // The generator aimed at a value drawn within mean ± 2 SD.
            let (_, target) = p.target.clone().unwrap();
            assert!((mean - 2.0 * sd..=mean + 2.0 * sd).contains(&target) || target == 0.25 * mean);
        }
        let get = |n: &str| study.physiological.iter().find(|p| p.name == n).unwrap();
        assert!(
            get("bladder").suv_max > get("liver").suv_max_core.unwrap(),
            "urine is hotter than liver"
        );
        let blood = get("heart_blood_pool").suv_mean_core.unwrap();
        assert!((1.0..2.2).contains(&blood), "blood pool {blood}");
    }
    for (_, study) in studies().iter().filter(|s| s.0.tracer == Tracer::Fdg) {
        let get = |n: &str| study.physiological.iter().find(|p| p.name == n).unwrap();
        let cerebellum = get("cerebellum").suv_mean_core.unwrap();
        assert!(
            (8.0 - 6.6..=8.0 + 6.6).contains(&cerebellum),
            "cerebellum SUVmean {cerebellum}"
        );
        let liver = get("liver").suv_mean_core.unwrap();
        assert!(
            (1.9 - 1.2..=1.9 + 1.2).contains(&liver),
            "liver SUVmean {liver}"
        );
        assert!(get("brain_grey_matter").suv_max > 3.0 * liver);
    }
}

/// Median HU of the interior voxels (all six neighbours with the same label, no lesion) of
/// each structure, where there are at least 20.
fn interior_medians(study: &Study) -> Vec<(String, String, f32)> {
    let [nx, ny, nz] = study.ct.dims();
    let lab = study.ct_structures.data();
    let les = study.ct_lesions.data();
    let hu = study.ct.data();
    let mut values: Vec<Vec<f32>> = vec![Vec::new(); study.structures.len()];
    for z in 1..nz - 1 {
        for y in 1..ny - 1 {
            for x in 1..nx - 1 {
                let i = x + nx * (y + ny * z);
                let l = lab[i];
                let plane = nx * ny;
                if les[i] == 0
                    && [i - 1, i + 1, i - nx, i + nx, i - plane, i + plane]
                        .iter()
                        .all(|&j| lab[j] == l && les[j] == 0)
                {
                    values[l as usize].push(hu[i]);
                }
            }
        }
    }
    values
        .into_iter()
        .enumerate()
        .filter(|(_, v)| v.len() >= 20)
        .map(|(l, mut v)| {
            v.sort_by(f32::total_cmp);
            let s = &study.structures[l];
            (s.name.clone(), s.tissue.clone(), v[v.len() / 2])
        })
        .collect()
}

#[test]
fn ct_hu_per_tissue() {
    let mut seen_contrast = [false, false];
    for (_, study) in studies() {
        let contrast = study.habitus.iv_contrast;
        seen_contrast[contrast as usize] = true;
        // The drawn tissue values.
        for s in &study.structures {
            let ok = match s.tissue.as_str() {
                "CorticalBone" => (700.0..=1500.0).contains(&s.hu),
                // Ranges calibrated against the real test CT (physiology::hu).
                "TrabecularBone" => (120.0..=260.0).contains(&s.hu),
                "Lung" => (-880.0..=-790.0).contains(&s.hu),
                "Fat" => (-120.0..=-80.0).contains(&s.hu),
                "Muscle" => (25.0..=55.0).contains(&s.hu),
                "Air" => s.hu == -1000.0,
                _ => (-1000.0..=2500.0).contains(&s.hu),
            };
            assert!(ok, "{} ({}) has {} HU", s.name, s.tissue, s.hu);
        }
        // What the CT shows, noise and partial volume included.
        for (name, tissue, median) in interior_medians(study) {
            let range = match (tissue.as_str(), contrast) {
                ("Air", _) => -1030.0..=-970.0,
                ("Lung", _) => -900.0..=-760.0,
                ("Fat", _) => -125.0..=-70.0,
                // Fat streaks (physiology::inclusion) pull muscle down by up to 12 %.
                ("Muscle", _) => 5.0..=65.0,
                ("Liver", false) => 35.0..=70.0,
                ("Liver", true) => 85.0..=130.0,
                ("KidneyCortex", true) => 130.0..=200.0,
                ("KidneyCortex", false) => 15.0..=45.0,
                ("TrabecularBone", _) => 110.0..=300.0,
                ("Bladder", _) => -10.0..=25.0,
                _ => continue,
            };
            assert!(
                range.contains(&median),
                "{name} ({tissue}, contrast {contrast}): median {median} HU"
            );
        }
        let cortical: Vec<f32> = study
            .ct
            .data()
            .iter()
            .zip(study.ct_structures.data())
            .filter(|(_, l)| study.structures[**l as usize].tissue == "CorticalBone")
            .map(|(h, _)| *h)
            .collect();
        let max = cortical.iter().cloned().fold(f32::MIN, f32::max);
        assert!(max > 700.0, "densest cortical bone {max} HU");
    }
    assert!(
        seen_contrast[0] && seen_contrast[1],
        "test both contrast phases"
    );
}

/// The stage is read from the lesions the scan shows. PSMA seed 575 plans a single bone lesion
/// below the field of view (mid-thigh): the body has it, the PET does not, so the study is M0.
#[test]
fn lesions_beyond_the_field_of_view_do_not_stage() {
    let spec = small(Tracer::Psma, 575);
    let study = phantom::generate(&spec).unwrap();
    let pet_g = *study.pet.geometry();
    let [_, _, nz] = pet_g.dims();
    let bottom_z = pet_g.voxel_to_patient([0.0, 0.0, 0.0])[2]
        .min(pet_g.voxel_to_patient([0.0, 0.0, (nz - 1) as f64])[2]);
    let unseen: Vec<_> = study.lesions.iter().filter(|l| l.pet_voxels == 0).collect();
    assert_eq!(unseen.len(), 1, "{:?}", study.lesions);
    assert_eq!(unseen[0].role, uptake::classes::Role::M1b);
    assert!(unseen[0].centre_lps[2] < bottom_z, "{:?}", unseen[0]);
    let (_, plan) = phantom::plan(&spec);
    assert_eq!(phantom::plan_truth(&plan).mi_m.code(), "M1b");
    assert_eq!(study.truth.mi_m.code(), "M0");
    assert_eq!(study.truth.bone_pattern, None);
    // Lesions in view stage as before.
    let roles = roles_in_view(&study);
    assert!(!roles.is_empty());
    assert_eq!(study.truth, phantom::truth::stage(&roles, false));
}

/// A drawn field of view images part of the body: lesions beyond it have no voxels, the
/// truth stages only those in view, and the CT grid follows the drawn diameter.
#[test]
fn drawn_fields_of_view_stage_what_they_image() {
    let mut truncated = 0;
    for seed in 20..32 {
        let spec = PhantomSpec {
            coverage: Coverage::Drawn,
            ..small(Tracer::Psma, seed)
        };
        let study = phantom::generate(&spec).unwrap();
        let whole = phantom::generate(&small(Tracer::Psma, seed)).unwrap();
        let fov = study.field_of_view;
        let ct_pixel = fov.ct_diameter_mm / 128.0;
        assert!((study.ct.geometry().spacing_mm()[0] - ct_pixel).abs() < 1e-4);
        let g = study.pet.geometry();
        let (bottom, top) = (
            g.origin_mm()[2],
            g.voxel_to_patient([0.0, 0.0, (g.dims()[2] - 1) as f64])[2],
        );
        // The same patient and disease: only the images differ.
        assert_eq!(study.lesions.len(), whole.lesions.len());
        for l in &study.lesions {
            let z = l.centre_lps[2];
            let margin = 2.0 * l.radii_mm.iter().cloned().fold(0.0, f64::max) + 6.0;
            if z > top + margin || z < bottom - margin {
                assert_eq!(
                    l.pet_voxels, 0,
                    "lesion {} at z {z} outside {bottom}..{top}",
                    l.id
                );
            }
            if z < top - margin && z > bottom + margin {
                assert!(
                    l.pet_voxels > 0,
                    "lesion {} at z {z} inside {bottom}..{top}",
                    l.id
                );
            }
        }
        let roles = roles_in_view(&study);
        assert_eq!(
            study.truth,
            phantom::truth::stage(&roles, study.diffuse_marrow)
        );
        if g.dims()[2] < whole.pet.geometry().dims()[2] {
            truncated += 1;
        }
    }
    assert!(truncated >= 4, "{truncated} of 12 drawn studies truncated");
}

/// The staging roles of the lesions the PET images.
fn roles_in_view(study: &Study) -> Vec<uptake::Role> {
    study
        .lesions
        .iter()
        .filter(|l| l.pet_voxels > 0)
        .map(|l| l.role)
        .collect()
}
