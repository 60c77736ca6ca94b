//! Same seed → identical bytes; different seeds → different patients; files round-trip.

use uptake::tracer::Tracer;
use uptake::volume::nifti;
use uptake_phantom::{self as phantom, Coverage, Manifest, PhantomSpec, Preset};

fn spec(tracer: Tracer, seed: u64) -> PhantomSpec {
    PhantomSpec {
        tracer,
        seed,
        preset: Preset::Small,
        coverage: Coverage::WholeBody,
    }
}

fn bytes(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

#[test]
fn same_seed_gives_identical_studies_and_files() {
    let a = phantom::generate(&spec(Tracer::Psma, 11)).unwrap();
    let b = phantom::generate(&spec(Tracer::Psma, 11)).unwrap();
    assert_eq!(bytes(a.pet.data()), bytes(b.pet.data()));
    assert_eq!(bytes(a.ct.data()), bytes(b.ct.data()));
    assert_eq!(a.pet_structures, b.pet_structures);
    assert_eq!(a.pet_lesions, b.pet_lesions);
    assert_eq!(a.ct_structures, b.ct_structures);
    assert_eq!(a.ct_lesions, b.ct_lesions);
    assert_eq!(
        serde_json::to_string(&a.manifest()).unwrap(),
        serde_json::to_string(&b.manifest()).unwrap()
    );

    let root = std::env::temp_dir().join(format!("uptake-phantom-det-{}", std::process::id()));
    let (da, db) = (root.join("a"), root.join("b"));
    a.write(&da).unwrap();
    b.write(&db).unwrap();
    let mut names: Vec<_> = std::fs::read_dir(&da)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(names.len(), 7, "{names:?}");
    for name in &names {
        let fa = std::fs::read(da.join(name)).unwrap();
        let fb = std::fs::read(db.join(name)).unwrap();
        assert!(fa == fb, "{name:?} differs between two runs");
    }

    // Read back: PET exactly, CT as rounded int16 HU, labels exactly, manifest parses.
    let pet = nifti::read_volume(da.join("pet.nii.gz")).unwrap();
    assert_eq!(pet.geometry(), a.pet.geometry());
    assert_eq!(bytes(pet.data()), bytes(a.pet.data()));
    let ct = nifti::read_volume(da.join("ct.nii.gz")).unwrap();
    assert_eq!(ct.dims(), a.ct.dims());
    for (r, w) in ct.data().iter().zip(a.ct.data()) {
        assert_eq!(*r, w.round().clamp(-1024.0, 3071.0));
    }
    let lesions = nifti::read_volume(da.join("pet_lesions.nii.gz")).unwrap();
    for (r, w) in lesions.data().iter().zip(a.pet_lesions.data()) {
        assert_eq!(*r, *w as f32);
    }
    let manifest: Manifest =
        serde_json::from_str(&std::fs::read_to_string(da.join("manifest.json")).unwrap()).unwrap();
    // (serde_json parses floats to within one ulp, so compare what is not a float exactly.)
    let expected = a.manifest();
    assert_eq!(manifest.truth, expected.truth);
    assert_eq!(manifest.pet_grid.dims, expected.pet_grid.dims);
    assert_eq!(manifest.lesions.len(), expected.lesions.len());
    for (r, w) in manifest.lesions.iter().zip(&expected.lesions) {
        assert_eq!(
            (r.id, r.class_id, r.role, r.pet_voxels),
            (w.id, w.class_id, w.role, w.pet_voxels)
        );
        assert!((r.volume_ml - w.volume_ml).abs() < 1e-12);
    }
    let names = |m: &Manifest| {
        m.structures
            .iter()
            .map(|s| (s.label, s.name.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(names(&manifest), names(&expected));
    std::fs::remove_dir_all(&root).ok();
}

#[test]
fn different_seeds_differ_and_tracers_share_the_patient() {
    let a = phantom::generate(&spec(Tracer::Fdg, 12)).unwrap();
    let b = phantom::generate(&spec(Tracer::Fdg, 13)).unwrap();
    assert_ne!(bytes(a.pet.data()), bytes(b.pet.data()));
    assert_ne!(a.habitus.height_mm, b.habitus.height_mm);

    // The seed fixes the anatomy; the tracer changes only uptake and disease.
    let p = phantom::generate(&spec(Tracer::Psma, 12)).unwrap();
    assert_eq!(p.habitus.height_mm, a.habitus.height_mm);
    assert_eq!(p.ct.geometry(), a.ct.geometry());
    let same = p
        .ct_structures
        .data()
        .iter()
        .zip(a.ct_structures.data())
        .zip(p.ct_lesions.data().iter().zip(a.ct_lesions.data()))
        .filter(|(_, (lp, la))| **lp == 0 && **la == 0)
        .all(|((sp, sa), _)| sp == sa);
    assert!(
        same,
        "outside lesions the CT structure maps of both tracers agree"
    );
}
