//! Clinical and small grids: spacing, matrix, field of view (vertex to mid-thigh), without
//! rendering the clinical study (too slow for a test; see phantom/benches/phantom.rs).

use uptake::tracer::Tracer;
use uptake_phantom::scanner::{AxialCoverage, FieldOfView};
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset};

#[test]
fn clinical_grids_cover_vertex_to_mid_thigh() {
    for seed in [1, 2, 3] {
        let spec = PhantomSpec {
            tracer: Tracer::Psma,
            seed,
            preset: Preset::Clinical,
            coverage: Coverage::WholeBody,
        };
        let (body, _) = phantom::plan(&spec);
        let fov = FieldOfView::default();
        let (pet, ct) = phantom::geometries(Preset::Clinical, &body, &fov).unwrap();
        assert_eq!(pet.spacing_mm(), [4.0728f32 as f64, 4.0728f32 as f64, 3.0]);
        assert_eq!(&pet.dims()[..2], &[168, 168]);
        assert!((ct.spacing_mm()[0] - 0.9765625).abs() < 1e-12);
        assert_eq!(ct.spacing_mm()[2], 3.0);
        assert_eq!(&ct.dims()[..2], &[512, 512]);
        assert_eq!(pet.orientation_code(), "LPS");
        // Both grids span the same slices.
        assert_eq!(pet.dims()[2], ct.dims()[2]);
        assert_eq!(pet.origin_mm()[2], ct.origin_mm()[2]);

        // The skull is inside the top of the field of view, the femoral shafts reach its
        // bottom: the whole trunk is covered.
        let h = body.habitus.height_mm;
        let top = pet.voxel_to_patient([0.0, 0.0, (pet.dims()[2] - 1) as f64])[2];
        let bottom = pet.origin_mm()[2];
        let skull = body.structure_id("skull").unwrap();
        let skull_top = body
            .primitives
            .iter()
            .filter(|p| p.structure == skull)
            .map(|p| p.bounds.hi[2])
            .fold(f64::MIN, f64::max);
        assert!(
            skull_top < top && top - skull_top < 30.0,
            "{skull_top} {top}"
        );
        let length = top - bottom;
        assert!(length > 0.58 * h && length < 0.7 * h, "{length} of {h}");
        let extent_x = 168.0 * 4.0728;
        assert!(extent_x > 680.0);
    }
}

#[test]
fn small_grids_are_coarser() {
    let g = Preset::Small.grids();
    assert!(g.pet_spacing_mm[0] > 8.0 && g.ct_spacing_mm[0] < 4.0);
    assert_eq!(g.pet_spacing_mm[2], g.ct_spacing_mm[2]);
}

/// Each drawn axial coverage holds its landmarks and stops short of the organs beyond them;
/// the CT's pixel follows its reconstruction diameter.
#[test]
fn fields_of_view_end_at_their_landmarks() {
    let spec = PhantomSpec {
        tracer: Tracer::Psma,
        seed: 4,
        preset: Preset::Clinical,
        coverage: Coverage::WholeBody,
    };
    let (body, _) = phantom::plan(&spec);
    let z = |name: &str| {
        let s = body.structure_id(name).unwrap();
        let b: Vec<_> = body
            .primitives
            .iter()
            .filter(|p| p.structure == s)
            .collect();
        let lo = b.iter().map(|p| p.bounds.lo[2]).fold(f64::MAX, f64::min);
        let hi = b.iter().map(|p| p.bounds.hi[2]).fold(f64::MIN, f64::max);
        (lo, hi)
    };
    let mid = |name: &str| (z(name).0 + z(name).1) / 2.0;
    // (coverage, organs whose middle is inside, organs wholly outside)
    let cases = [
        (
            AxialCoverage::SkullBaseToThigh,
            vec!["thyroid", "bladder"],
            vec!["brain_white_matter"],
        ),
        (
            AxialCoverage::ChestAbdomenPelvis,
            vec!["heart_blood_pool", "bladder"],
            vec!["parotid_gland", "ln_inguinal"],
        ),
        (
            AxialCoverage::AbdomenPelvis,
            vec!["kidney_left", "bladder"],
            vec!["heart_blood_pool"],
        ),
        (
            AxialCoverage::Pelvis,
            vec!["bladder", "ln_obturator"],
            vec!["kidney_left", "liver"],
        ),
    ];
    for (axial, inside, outside) in cases {
        let fov = FieldOfView {
            axial,
            top_shift_mm: 0.0,
            bottom_shift_mm: 0.0,
            ct_diameter_mm: 400.0,
        };
        let (pet, ct) = phantom::geometries(Preset::Clinical, &body, &fov).unwrap();
        let bottom = pet.origin_mm()[2];
        let top = pet.voxel_to_patient([0.0, 0.0, (pet.dims()[2] - 1) as f64])[2];
        for name in inside {
            assert!(
                (bottom..=top).contains(&mid(name)),
                "{axial:?}: {name} not in {bottom}..{top}"
            );
        }
        for name in outside {
            let (lo, hi) = z(name);
            assert!(
                lo > top || hi < bottom,
                "{axial:?}: {name} {lo}..{hi} in {bottom}..{top}"
            );
        }
        assert_eq!(ct.dims()[2], pet.dims()[2]);
        assert_eq!(ct.origin_mm()[2], bottom);
        assert!((ct.spacing_mm()[0] - 400.0 / 512.0).abs() < 1e-6);
    }
}
