//! Region statistics against direct computations from the label map, determinism across thread
//! counts, and a volume with very many regions.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::regions::{Connectivity, RegionParams, Segmentation, segment};
use uptake::volume::{Geometry, Volume};

/// Radius of a 1 mL sphere, mm: (3 / (4π))^(1/3) · 10.
const SUV_PEAK_RADIUS_MM: f64 = 6.2035;

/// Smooth random uptake: white noise averaged over 3 × 3 × 3 boxes, twice, scaled so that a
/// fair share of voxels exceeds 1 SUV.
fn smooth_noise(geometry: Geometry, seed: u64) -> Volume<f32> {
    let [nx, ny, nz] = geometry.dims();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut v: Vec<f32> = (0..geometry.len()).map(|_| rng.random::<f32>()).collect();
    for _ in 0..2 {
        let mut out = vec![0.0f32; v.len()];
        for z in 0..nz {
            for y in 0..ny {
                for x in 0..nx {
                    let mut sum = 0.0;
                    let mut n = 0.0;
                    for (dx, dy, dz) in (0..27).map(|k| (k % 3, (k / 3) % 3, k / 9)) {
                        let (xn, yn, zn) = (x + dx, y + dy, z + dz);
                        if (1..=nx).contains(&xn)
                            && (1..=ny).contains(&yn)
                            && (1..=nz).contains(&zn)
                        {
                            sum += v[(xn - 1) + nx * ((yn - 1) + ny * (zn - 1))];
                            n += 1.0;
                        }
                    }
                    out[x + nx * (y + ny * z)] = sum / n;
                }
            }
        }
        v = out;
    }
    let (lo, hi) = v
        .iter()
        .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
    for x in &mut v {
        *x = (*x - lo) / (hi - lo) * 4.0 - 0.5;
    }
    Volume::new(geometry, v).unwrap()
}

fn oblique_geometry(dims: [usize; 3]) -> Geometry {
    let (s, c) = 0.3f64.sin_cos();
    let (s2, c2) = 0.2f64.sin_cos();
    // Rotation about z by 0.3 rad, then about x by 0.2 rad; columns are the axis directions.
    let rz = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
    let rx = [[1.0, 0.0, 0.0], [0.0, c2, -s2], [0.0, s2, c2]];
    let mut d = [[0.0; 3]; 3];
    for i in 0..3 {
        for j in 0..3 {
            d[i][j] = (0..3).map(|k| rx[i][k] * rz[k][j]).sum();
        }
    }
    Geometry::new(dims, [4.07, 3.9, 2.5], [-120.0, 40.5, 300.0], d).unwrap()
}

fn check_statistics(pet: &Volume<f32>, s: &Segmentation) {
    let g = pet.geometry();
    let labels = s.labels.data();
    let data = pet.data();
    assert_eq!(s.labels.geometry(), g);
    for (i, r) in s.regions.iter().enumerate() {
        assert_eq!(r.id as usize, i + 1);
        let members: Vec<usize> = (0..labels.len()).filter(|&v| labels[v] == r.id).collect();
        assert_eq!(r.voxel_count as usize, members.len());
        assert!(!members.is_empty());
        let max = members.iter().map(|&v| data[v]).fold(f32::MIN, f32::max);
        let first_max = *members.iter().find(|&&v| data[v] == max).unwrap();
        assert_eq!(r.suv_max, max);
        assert_eq!(r.max_voxel, g.coords(first_max));
        let lps = g.voxel_to_patient(g.coords(first_max).map(|c| c as f64));
        assert_eq!(r.max_lps, lps);
        let mean = members.iter().map(|&v| data[v] as f64).sum::<f64>() / members.len() as f64;
        assert!(
            (r.suv_mean - mean).abs() <= 1e-9 * mean.abs().max(1.0),
            "{} vs {mean}",
            r.suv_mean
        );
        let ml = members.len() as f64 * g.spacing_mm().iter().product::<f64>() / 1000.0;
        assert!((r.volume_ml - ml).abs() <= 1e-12 * ml);
        assert!((r.total_uptake - mean * ml).abs() <= 1e-9 * (mean * ml).abs().max(1.0));
        for axis in 0..3 {
            let coords = members.iter().map(|&v| g.coords(v)[axis]);
            assert_eq!(r.bbox_min[axis], coords.clone().min().unwrap());
            assert_eq!(r.bbox_max[axis], coords.max().unwrap());
        }
        // SUVpeak: every voxel of the volume whose centre is within the radius, in patient space.
        let (mut sum, mut n) = (0.0f64, 0usize);
        for (v, &suv) in data.iter().enumerate() {
            let p = g.voxel_to_patient(g.coords(v).map(|c| c as f64));
            let d2: f64 = (0..3).map(|k| (p[k] - lps[k]).powi(2)).sum();
            if d2 <= SUV_PEAK_RADIUS_MM * SUV_PEAK_RADIUS_MM {
                sum += suv as f64;
                n += 1;
            }
        }
        assert!(
            (r.suv_peak - sum / n as f64).abs() <= 1e-9,
            "{} vs {}",
            r.suv_peak,
            sum / n as f64
        );
    }
    // Every labelled voxel belongs to a listed region.
    assert!(labels.iter().all(|&l| (l as usize) <= s.regions.len()));
}

#[test]
fn statistics_match_direct_computation() {
    let grids = [
        Geometry::axis_aligned([17, 14, 11], [4.0, 4.0, 3.0], [10.0, -5.0, 2.0]).unwrap(),
        Geometry::axis_aligned([9, 12, 20], [2.0, 2.0, 2.0], [0.0; 3]).unwrap(),
        oblique_geometry([13, 15, 12]),
    ];
    let mut regions = 0;
    for (k, g) in grids.into_iter().enumerate() {
        let pet = smooth_noise(g, k as u64);
        for connectivity in Connectivity::all() {
            let params = RegionParams {
                connectivity,
                ..RegionParams::default()
            };
            let s = segment(&pet, &params).unwrap();
            regions += s.regions.len();
            check_statistics(&pet, &s);
        }
    }
    assert!(
        regions > 20,
        "the volumes must exercise many regions, got {regions}"
    );
}

#[test]
fn same_result_on_every_thread_count() {
    // Several scan chunks (2^16 voxels each) so the parallel parts really split the work.
    let g = Geometry::axis_aligned([70, 60, 50], [4.0, 4.0, 3.0], [0.0; 3]).unwrap();
    let pet = smooth_noise(g, 99);
    let run = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap();
        pool.install(|| segment(&pet, &RegionParams::default()).unwrap())
    };
    let reference = run(1);
    assert!(reference.regions.len() > 10);
    for threads in [2, 3, 8] {
        let s = run(threads);
        assert_eq!(s.labels, reference.labels, "{threads} threads");
        assert_eq!(s.regions, reference.regions, "{threads} threads");
    }
}

#[test]
fn hundreds_of_thousands_of_regions() {
    // A hot voxel at every even (x, y, z) on a 0.5 SUV floor: 2^18 isolated maxima; all other
    // voxels are candidates on the tails (8.4 M candidates, 262 144 regions).
    let n = 128;
    let g = Geometry::axis_aligned([n, n, n], [2.0; 3], [0.0; 3]).unwrap();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut values = vec![0.5f32; n * n * n];
    for z in (0..n).step_by(2) {
        for y in (0..n).step_by(2) {
            for x in (0..n).step_by(2) {
                values[x + n * (y + n * z)] = rng.random_range(1.5..3.0);
            }
        }
    }
    let pet = Volume::new(g, values).unwrap();
    let s = segment(&pet, &RegionParams::default()).unwrap();
    assert_eq!(s.regions.len(), (n / 2).pow(3));
    assert!(s.regions.iter().all(|r| r.voxel_count == 1));
    assert!(s.regions.windows(2).all(|w| w[0].suv_max >= w[1].suv_max));
}
