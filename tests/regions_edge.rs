//! Hand-made S4 cases: seeds, ties, saddles, tails, thresholds, borders and bad input.
//! Expected label maps are derived by hand from the numbered steps of DESIGN S4.

use uptake::regions::{Connectivity, RegionParams, RegionsError, segment};
use uptake::volume::{Geometry, Volume, VolumeError};

fn volume(dims: [usize; 3], values: Vec<f32>) -> Volume<f32> {
    let geometry = Geometry::axis_aligned(dims, [4.0, 4.0, 3.0], [0.0; 3]).unwrap();
    Volume::new(geometry, values).unwrap()
}

/// A profile along x.
fn line(values: &[f32]) -> Volume<f32> {
    volume([values.len(), 1, 1], values.to_vec())
}

fn labels(pet: &Volume<f32>, params: &RegionParams) -> Vec<u32> {
    segment(pet, params).unwrap().labels.into_data()
}

fn default_labels(pet: &Volume<f32>) -> Vec<u32> {
    labels(pet, &RegionParams::default())
}

fn with_connectivity(connectivity: Connectivity) -> RegionParams {
    RegionParams {
        connectivity,
        ..RegionParams::default()
    }
}

#[test]
fn single_voxel_volume() {
    let s = segment(&line(&[2.5]), &RegionParams::default()).unwrap();
    assert_eq!(s.labels.data(), &[1]);
    assert_eq!(s.regions.len(), 1);
    let r = &s.regions[0];
    assert_eq!((r.id, r.voxel_count, r.suv_max), (1, 1, 2.5));
    assert_eq!(
        (r.max_voxel, r.bbox_min, r.bbox_max),
        ([0; 3], [0; 3], [0; 3])
    );
    assert_eq!((r.suv_mean, r.suv_peak), (2.5, 2.5));
    assert!((r.volume_ml - 0.048).abs() < 1e-12);
    assert!((r.total_uptake - 2.5 * 0.048).abs() < 1e-12);
    for background in [1.0, 0.7, 0.0, -3.0] {
        let s = segment(&line(&[background]), &RegionParams::default()).unwrap();
        assert_eq!(
            (s.labels.data(), s.regions.len()),
            (&[0u32][..], 0),
            "{background}"
        );
    }
}

#[test]
fn seed_needs_suv_strictly_above_t() {
    let t = 1.0f32;
    let above = f32::from_bits(t.to_bits() + 1);
    assert_eq!(default_labels(&line(&[t, 0.0, above])), [0, 0, 1]);
    // A voxel exactly at t still joins a region as any other voxel ≥ f·peak does.
    assert_eq!(default_labels(&line(&[2.0, t])), [1, 1]);
    let custom = RegionParams {
        seed_min_suv: 2.5,
        ..RegionParams::default()
    };
    assert_eq!(labels(&line(&[2.5, 0.0, 2.6, 1.2]), &custom), [0, 0, 1, 1]);
}

#[test]
fn acceptance_is_inclusive_at_f_times_peak_in_f32() {
    let peak = 3.7f32;
    let at = 0.45f32 * peak;
    let below = f32::from_bits(at.to_bits() - 1);
    assert_eq!(default_labels(&line(&[peak, at, 0.0])), [1, 1, 0]);
    // `below` is a candidate (≥ f·t) on the tail of the peak: visited, in no region.
    assert_eq!(default_labels(&line(&[peak, below, 0.0])), [1, 0, 0]);
    // Visited tail voxels block the voxels behind them from seeding even above t.
    assert_eq!(
        default_labels(&line(&[peak, below, 1.5, 0.0])),
        [1, 0, 0, 0]
    );
}

#[test]
fn fraction_one_keeps_only_plateaus_at_the_peak() {
    // f = 1: a region accepts only voxels equal to its peak. 3 seeds A, the first 2 seeds B,
    // the second 2 joins B, 1.5 is rejected by both.
    let params = RegionParams {
        fraction: 1.0,
        ..RegionParams::default()
    };
    assert_eq!(labels(&line(&[2.0, 2.0, 1.5, 3.0]), &params), [2, 2, 0, 1]);
}

#[test]
fn no_voxel_above_t_gives_no_regions() {
    let pet = volume([4, 3, 2], (0..24).map(|i| 0.45 + 0.02 * i as f32).collect());
    let s = segment(&pet, &RegionParams::default()).unwrap();
    assert!(s.regions.is_empty());
    assert!(s.labels.data().iter().all(|&l| l == 0));
}

#[test]
fn all_zero_and_negative_volumes_have_no_regions() {
    for value in [0.0, -0.0, -5.0] {
        let pet = volume([5, 4, 3], vec![value; 60]);
        let s = segment(&pet, &RegionParams::default()).unwrap();
        assert!(s.regions.is_empty(), "{value}");
        assert!(s.labels.data().iter().all(|&l| l == 0));
    }
    // Negative SUV next to a region is background, not a member.
    assert_eq!(default_labels(&line(&[-2.0, 3.0, -0.1])), [0, 1, 0]);
}

#[test]
fn saddle_above_45_percent_of_the_higher_peak_merges() {
    // 10 seeds A, 8 seeds B, 6 joins A, 5 ≥ 4.5 is accepted by both: B merges into A.
    assert_eq!(
        default_labels(&line(&[0.0, 10.0, 6.0, 5.0, 8.0, 0.0])),
        [0, 1, 1, 1, 1, 0]
    );
}

#[test]
fn saddle_below_45_percent_of_the_higher_peak_joins_the_lower() {
    // 4 < 4.5 = f·10 but 4 ≥ 3.6 = f·8: only B accepts it.
    assert_eq!(
        default_labels(&line(&[0.0, 10.0, 6.0, 4.0, 8.0, 0.0])),
        [0, 1, 1, 2, 2, 0]
    );
    // 3 is rejected by both: background between two regions.
    assert_eq!(
        default_labels(&line(&[0.0, 10.0, 6.0, 3.0, 8.0, 0.0])),
        [0, 1, 1, 0, 2, 0]
    );
}

#[test]
fn lesion_next_to_the_tail_of_a_brighter_organ() {
    // Organ 20 keeps ≥ 9; 8 and 5 are its tail. The lesion's maximum 4 has no visited
    // neighbour when visited and seeds; 3 touches only the tail and stays background; 2.5 and 2
    // join the lesion.
    let pet = line(&[20.0, 12.0, 8.0, 5.0, 3.0, 2.5, 4.0, 2.0, 0.0]);
    assert_eq!(default_labels(&pet), [1, 1, 0, 0, 0, 2, 2, 2, 0]);
    // A voxel touching both the organ and the lesion joins the lesion, whose peak it reaches.
    assert_eq!(default_labels(&line(&[20.0, 12.0, 3.0, 4.0])), [1, 1, 2, 2]);
    // On the tail itself no region can start: 4 is visited after its brighter neighbour 5.
    assert_eq!(
        default_labels(&line(&[20.0, 12.0, 8.0, 5.0, 4.0, 3.0])),
        [1, 1, 0, 0, 0, 0]
    );
}

#[test]
fn equal_peaks_merge_into_the_first_created() {
    // Both 5s seed (index 0 first); the 3 between them is accepted by both.
    let s = segment(&line(&[5.0, 3.0, 5.0]), &RegionParams::default()).unwrap();
    assert_eq!(s.labels.data(), &[1, 1, 1]);
    assert_eq!(s.regions[0].max_voxel, [0, 0, 0]);
    // Separate equal peaks: ids by the linear index of the maximum.
    let s = segment(
        &line(&[0.0, 5.0, 0.0, 5.0, 0.0, 7.0]),
        &RegionParams::default(),
    )
    .unwrap();
    assert_eq!(s.labels.data(), &[0, 2, 0, 3, 0, 1]);
    let maxima: Vec<_> = s.regions.iter().map(|r| r.max_voxel[0]).collect();
    assert_eq!(maxima, [5, 1, 3]);
}

#[test]
fn plateau_seeded_twice_becomes_one_region() {
    // Plane z = 0, 3 × 3, 6-connectivity, plateau cells a = (2,0), b = (0,1), c = (1,1),
    // d = (2,1). In index order a seeds; b has no visited neighbour and seeds too; c joins b;
    // d touches a and c, both regions accept it and b's region merges into a's.
    let p = 2.0;
    let pet = volume([3, 3, 1], vec![0.0, 0.0, p, p, p, p, 0.0, 0.0, 0.0]);
    let s = segment(&pet, &with_connectivity(Connectivity::Six)).unwrap();
    assert_eq!(s.labels.data(), &[0, 0, 1, 1, 1, 1, 0, 0, 0]);
    assert_eq!(s.regions.len(), 1);
    assert_eq!(
        s.regions[0].max_voxel,
        [2, 0, 0],
        "lowest index among equal maxima"
    );
    assert_eq!(s.regions[0].voxel_count, 4);
}

#[test]
fn a_peak_on_a_plateau_edge_is_not_a_separate_region() {
    // Plateau of 3.0 with a slightly lower voxel inside it: every voxel belongs to one region.
    let mut values = vec![3.0f32; 27];
    values[13] = 2.9;
    let pet = volume([3, 3, 3], values);
    for c in Connectivity::all() {
        assert!(
            labels(&pet, &with_connectivity(c)).iter().all(|&l| l == 1),
            "{c:?}"
        );
    }
}

#[test]
fn connectivity_decides_diagonal_contacts() {
    // 2 × 2 × 2 volume; hot voxels at (0,0,0) and a second one at an edge or corner diagonal.
    let corner = volume([2, 2, 2], vec![2.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.5]);
    let edge = volume([2, 2, 2], vec![2.0, 0.0, 0.0, 1.5, 0.0, 0.0, 0.0, 0.0]);
    let face = volume([2, 2, 2], vec![2.0, 1.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    let expect = |pet: &Volume<f32>, c, regions: usize| {
        let s = segment(pet, &with_connectivity(c)).unwrap();
        assert_eq!(s.regions.len(), regions, "{c:?}");
    };
    expect(&corner, Connectivity::Six, 2);
    expect(&corner, Connectivity::Eighteen, 2);
    expect(&corner, Connectivity::TwentySix, 1);
    expect(&edge, Connectivity::Six, 2);
    expect(&edge, Connectivity::Eighteen, 1);
    expect(&edge, Connectivity::TwentySix, 1);
    for c in Connectivity::all() {
        expect(&face, c, 1);
    }
}

#[test]
fn neighbours_do_not_wrap_around_borders() {
    // (nx-1, 0, 0) and (0, 1, 0) are consecutive in memory but not neighbours.
    let mut values = vec![0.0f32; 4 * 3 * 2];
    values[3] = 2.0;
    values[4] = 1.9;
    let pet = volume([4, 3, 2], values);
    let s = segment(&pet, &RegionParams::default()).unwrap();
    assert_eq!(s.regions.len(), 2);
    // Same across z: last voxel of plane 0 and first of plane 1.
    let mut values = vec![0.0f32; 4 * 3 * 2];
    values[11] = 2.0;
    values[12] = 1.9;
    let s = segment(&volume([4, 3, 2], values), &RegionParams::default()).unwrap();
    assert_eq!(s.regions.len(), 2);
}

#[test]
fn lattice_of_isolated_maxima() {
    // Every voxel with even coordinates is a local maximum with no neighbour among the others
    // (even under 26-connectivity); the rest is tail (0.5 ≥ f·t but < f·2). Also checks that
    // region ids follow descending SUVmax with ties by index.
    let dims = [40, 30, 20];
    let mut values = vec![0.5f32; 40 * 30 * 20];
    let mut expected_maxima = Vec::new();
    for z in (0..20).step_by(2) {
        for y in (0..30).step_by(2) {
            for x in (0..40).step_by(2) {
                let i = x + 40 * (y + 30 * z);
                values[i] = 2.0 + ((x * 7 + y * 3 + z) % 5) as f32 * 0.25;
                expected_maxima.push((values[i], i));
            }
        }
    }
    expected_maxima.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    let pet = volume(dims, values);
    let s = segment(&pet, &RegionParams::default()).unwrap();
    assert_eq!(s.regions.len(), expected_maxima.len());
    for (region, &(suv, i)) in s.regions.iter().zip(&expected_maxima) {
        assert_eq!(region.suv_max, suv);
        assert_eq!(
            pet.geometry().index(
                region.max_voxel[0],
                region.max_voxel[1],
                region.max_voxel[2]
            ),
            i
        );
        assert_eq!(region.voxel_count, 1);
        assert_eq!(s.labels.data()[i], region.id);
    }
}

#[test]
fn non_finite_voxels_are_rejected_like_check_finite() {
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut values = vec![1.5f32; 200_000];
        values[70_001] = bad;
        values[150_000] = f32::NAN;
        let pet = volume([100, 100, 20], values);
        let expected = pet.check_finite("PET").unwrap_err();
        match segment(&pet, &RegionParams::default()) {
            Err(RegionsError::Volume(e)) => assert_eq!(e, expected),
            other => panic!("{bad}: expected a non-finite error, got {other:?}"),
        }
        assert!(matches!(
            expected,
            VolumeError::NonFinite {
                count: 2,
                first: 70_001,
                ..
            }
        ));
    }
}

#[test]
fn bad_parameters_are_rejected() {
    let pet = line(&[2.0]);
    for fraction in [0.0, -0.1, 1.01, f32::NAN] {
        let params = RegionParams {
            fraction,
            ..RegionParams::default()
        };
        assert!(
            matches!(segment(&pet, &params), Err(RegionsError::BadFraction(_))),
            "{fraction}"
        );
    }
    for seed_min_suv in [0.0, -1.0, f32::NAN, f32::INFINITY] {
        let params = RegionParams {
            seed_min_suv,
            ..RegionParams::default()
        };
        assert!(
            matches!(segment(&pet, &params), Err(RegionsError::BadSeedMinimum(_))),
            "{seed_min_suv}"
        );
    }
    let params = RegionParams {
        fraction: 1e-30,
        seed_min_suv: 1e-30,
        ..RegionParams::default()
    };
    assert!(matches!(
        segment(&pet, &params),
        Err(RegionsError::ThresholdUnderflow { .. })
    ));
}
