//! Hybrid studies (issue #27) on the real TotalSegmentator example: determinism, lesion
//! placement against the segmentation and CT, lesion contrast, the `hybrid` flag.

use std::collections::BTreeMap;
use std::path::PathBuf;

use uptake::tracer::Tracer;
use uptake::volume::{Volume, nifti};
use uptake_phantom::hybrid::{self, HybridSpec, HybridStudy};

/// The example segmentation covers CT slices 82–111.
const OFFSET: i64 = 82;

struct Data {
    ct: Volume<f32>,
    seg: Volume<f32>,
    classes: BTreeMap<u32, String>,
}

fn data() -> Option<Data> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real-ct");
    let ct = dir.join("example_ct.nii.gz");
    if !ct.exists() {
        println!("skipped: no real CT data");
        return None;
    }
    let text = std::fs::read_to_string(dir.join("classes.json")).unwrap();
    Some(Data {
        ct: nifti::read_volume(&ct).unwrap(),
        seg: nifti::read_volume(dir.join("example_seg.nii.gz")).unwrap(),
        classes: hybrid::parse_classes(&text).unwrap(),
    })
}

fn build(d: &Data, tracer: Tracer, seed: u64) -> HybridStudy {
    let spec = HybridSpec {
        tracer,
        seed,
        seg_slice_offset: OFFSET,
    };
    hybrid::generate(&d.ct, &d.seg, &d.classes, &spec).unwrap()
}

/// Segmentation class name at a CT voxel, with the slab offset.
fn seg_name(d: &Data, v: [usize; 3]) -> Option<&str> {
    let z = v[2] as i64 - OFFSET;
    let sd = d.seg.dims();
    if z < 0 || z >= sd[2] as i64 {
        return None;
    }
    let label = d.seg.data()[d.seg.geometry().index(v[0], v[1], z as usize)].round() as u32;
    d.classes.get(&label).map(String::as_str)
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn same_seed_same_study_and_files() {
    let Some(d) = data() else { return };
    let a = build(&d, Tracer::Psma, 0);
    let b = build(&d, Tracer::Psma, 0);
    assert_eq!(bits(a.pet.data()), bits(b.pet.data()));
    assert_eq!(a.lesions.data(), b.lesions.data());
    assert_eq!(a.info, b.info);
    let other = build(&d, Tracer::Psma, 1);
    assert_ne!(bits(a.pet.data()), bits(other.pet.data()));

    let base = std::env::temp_dir().join(format!("uptake-hybrid-test-{}", std::process::id()));
    let (da, db) = (base.join("a"), base.join("b"));
    a.write(&da).unwrap();
    b.write(&db).unwrap();
    for f in [
        "pet.nii.gz",
        "ct.nii.gz",
        "structures.nii.gz",
        "lesions.nii.gz",
        "study.json",
    ] {
        let (x, y) = (
            std::fs::read(da.join(f)).unwrap(),
            std::fs::read(db.join(f)).unwrap(),
        );
        assert!(x == y, "{f} differs between two runs of one seed");
    }
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(da.join("study.json")).unwrap()).unwrap();
    assert_eq!(json["hybrid"], serde_json::Value::Bool(true));
    assert_eq!(json["tracer"], "psma");
    let n = json["lesions"].as_array().unwrap().len();
    assert_eq!(json["lesion_classes"].as_array().unwrap().len(), n);
    // The label maps read back on the PET grid with the lesion numbers.
    let lesions = nifti::read_volume(da.join("lesions.nii.gz")).unwrap();
    let pet = nifti::read_volume(da.join("pet.nii.gz")).unwrap();
    assert_eq!(lesions.dims(), pet.dims());
    let max = lesions.data().iter().cloned().fold(0.0f32, f32::max);
    assert_eq!(max as usize, n);
    std::fs::remove_dir_all(&base).ok();
}

#[test]
fn lesions_sit_in_their_hosts_and_are_hot() {
    let Some(d) = data() else { return };
    let hu = d.ct.data();
    let g = *d.ct.geometry();
    let s = g.spacing_mm();
    let mut roles = BTreeMap::new();
    for (tracer, seed) in [(Tracer::Psma, 0), (Tracer::Psma, 1), (Tracer::Fdg, 2)] {
        let st = build(&d, tracer, seed);
        assert!(st.info.hybrid);
        assert!(
            !st.info.lesions.is_empty(),
            "seed {seed}: no lesion planted"
        );
        let lmap = st.lesions.data();
        let pet = st.pet.data();
        for l in &st.info.lesions {
            *roles.entry(format!("{:?}", l.role)).or_insert(0) += 1;
            let v = l.centre_voxel;
            let c = g.index(v[0], v[1], v[2]);
            assert_eq!(
                lmap[c], l.id,
                "seed {seed} lesion {}: centre not labelled",
                l.id
            );
            let p = g.voxel_to_patient(v.map(|x| x as f64));
            assert!((0..3).all(|a| (p[a] - l.centre_lps[a]).abs() < 1e-6));
            assert_eq!(
                st.info.lesion_classes[l.id as usize - 1],
                l.class_id,
                "lesion_classes"
            );
            let name = seg_name(&d, v);
            match l.host.as_str() {
                "bone" => assert!(
                    hu[c] > 150.0
                        || name.is_some_and(|n| ["vertebrae", "rib", "hip", "sacrum"]
                            .iter()
                            .any(|b| n.starts_with(b))),
                    "seed {seed} lesion {}: bone lesion at {} HU in {name:?}",
                    l.id,
                    hu[c]
                ),
                "liver" => assert_eq!(name, Some("liver")),
                "adrenal" => assert!(name.is_some_and(|n| n.starts_with("adrenal_gland"))),
                "lung" => assert!(name.is_some_and(|n| n.starts_with("lung_"))),
                "bowel_wall" => assert!(
                    name.is_some_and(|n| ["stomach", "small_bowel", "duodenum", "colon"]
                        .iter()
                        .any(|b| n.starts_with(b))),
                    "bowel-wall lesion in {name:?}"
                ),
                "ln_retroperitoneal" | "ln_pelvic" => {
                    assert!(name.is_none(), "node in {name:?}");
                    assert!((-150.0..=80.0).contains(&hu[c]), "node at {} HU", hu[c]);
                }
                other => panic!("unexpected host {other}"),
            }
            // The CT shows the lesion: its voxels (each at least half covered) moved by between
            // half and all of the stated shift, the real CT's noise kept.
            let moved: Vec<f64> = lmap
                .iter()
                .zip(st.ct.data().iter().zip(hu))
                .filter(|(m, _)| **m == l.id)
                .map(|(_, (&after, &before))| f64::from(after - before))
                .collect();
            let mean = moved.iter().sum::<f64>() / moved.len() as f64;
            let shift = l.ct_hu_shift;
            assert!(
                mean.abs() <= shift.abs() + 1e-3
                    && mean.abs() >= 0.5 * shift.abs() - 1e-3
                    && mean * shift >= 0.0,
                "seed {seed} lesion {} ({}, {}): CT moved {mean:.1} HU for a shift of {shift:.1}",
                l.id,
                l.host,
                l.ct_appearance
            );
            assert_eq!(l.ct_appearance == "occult", shift == 0.0);
            // PET max inside the lesion against the median of the host-like voxels in a shell
            // around it (other lesions left out).
            let lesion_max = lmap
                .iter()
                .zip(pet)
                .filter(|(m, _)| **m == l.id)
                .map(|(_, &p)| p)
                .fold(0.0f32, f32::max);
            let (r_in, r_out) = (l.radius_mm + 10.0, l.radius_mm + 20.0);
            let h = [0, 1, 2].map(|a| (r_out / s[a]).ceil() as i64);
            let mut shell = Vec::new();
            let dims = g.dims();
            for dz in -h[2]..=h[2] {
                for dy in -h[1]..=h[1] {
                    for dx in -h[0]..=h[0] {
                        let dd = [dx, dy, dz];
                        let r = (0..3)
                            .map(|a| (dd[a] as f64 * s[a]).powi(2))
                            .sum::<f64>()
                            .sqrt();
                        if r < r_in || r > r_out {
                            continue;
                        }
                        let q = [0, 1, 2].map(|a| v[a] as i64 + dd[a]);
                        if (0..3).any(|a| q[a] < 0 || q[a] >= dims[a] as i64) {
                            continue;
                        }
                        let q = q.map(|x| x as usize);
                        let j = g.index(q[0], q[1], q[2]);
                        if lmap[j] != 0 {
                            continue;
                        }
                        let n = seg_name(&d, q);
                        let same = match l.host.as_str() {
                            "bone" => hu[j] > 150.0,
                            "liver" => n == Some("liver"),
                            _ => n.is_none() && (-150.0..=80.0).contains(&hu[j]),
                        };
                        if same {
                            shell.push(pet[j]);
                        }
                    }
                }
            }
            if shell.is_empty() {
                continue;
            }
            shell.sort_by(f32::total_cmp);
            let median = shell[shell.len() / 2];
            assert!(
                lesion_max > median,
                "seed {seed} lesion {} ({}): max {lesion_max} not above host {median}",
                l.id,
                l.host
            );
        }
    }
    println!("lesions by role: {roles:?}");
}
