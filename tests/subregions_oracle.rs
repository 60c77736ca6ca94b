//! The foci of the sub-region stage against an independent oracle: scikit-image's
//! `skimage.morphology.h_maxima` through `$UPTAKE_PYTHON` (the test venv's interpreter, with
//! the pinned scikit-image of requirements-test.txt).
//!
//! The maxima of dynamic ≥ h are the h-maxima. With `noise_units` and `min_relative_dynamic`
//! at 0 and `min_voxels` at 1 the stage's rule is a constant dynamic h (`min_dynamic_suv`), so
//! inside every S4 region the peaks of the foci (the sub-regions' SUVmax voxels) and the
//! region's own SUVmax are the regional maxima of `h_maxima` on the region's voxels (the rest of
//! the volume far below, 26-connectivity: footprint `np.ones((3, 3, 3))`).
//!
//! The PETs are random smooth blobs on a pedestal, so that they hold no ties near a maximum.
//! Each case's h is kept away from every dynamic: the oracle also runs at h·(1 ± 3 %), and a
//! case whose answer changes in that band is run again at a 10 % larger h.
//!
//! The stage's only exposure to Python is on/off (the ctypes binding's and the CLI's
//! `paper_regions`), so the library side runs here and the oracle reads what it wrote.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::regions::{self, RegionParams, SubregionParams, SubregionShape, segment, subregions};
use uptake::volume::{Geometry, Volume};

fn python() -> String {
    std::env::var("UPTAKE_PYTHON").unwrap_or_else(|_| {
        panic!(
            "UPTAKE_PYTHON is not set: point it at a Python with scikit-image, scipy and numpy \
             (e.g. UPTAKE_PYTHON=$PWD/.venv/bin/python cargo test --test subregions_oracle)"
        )
    })
}

/// Reads `manifest.txt` in the directory argv[1] (one case a line: name, nx, ny, nz, h) and the
/// raw little-endian `<name>.pet` (f32) and `<name>.labels` (u32, S4's label map) of each case,
/// x fastest. Prints, as JSON, for every case and S4 region: the voxel (x, y, z) of greatest
/// value of each connected component of `h_maxima` (ties: the lowest linear index, as the
/// library picks a region's SUVmax voxel), whether the answer stays the same at h·(1 ± 3 %)
/// and how many components there are at h / 2.
const ORACLE: &str = r#"
import json, sys
import numpy as np
from scipy import ndimage
from skimage.morphology import h_maxima

directory = sys.argv[1]
footprint = np.ones((3, 3, 3), dtype=bool)
cases = []
with open(f"{directory}/manifest.txt") as manifest:
    for line in manifest:
        name, nx, ny, nz, h = line.split()
        shape = (int(nz), int(ny), int(nx))
        h = float(h)
        pet = np.fromfile(f"{directory}/{name}.pet", dtype="<f4").reshape(shape).astype(np.float64)
        labels = np.fromfile(f"{directory}/{name}.labels", dtype="<u4").reshape(shape)
        regions = {}
        for region in np.unique(labels[labels > 0]):
            inside = labels == region
            # The region's voxels, the rest far below them: no maximum and no pass outside.
            image = np.where(inside, pet, pet[inside].min() - 4.0 * h - 1.0)

            def peaks(height):
                found = h_maxima(image, height, footprint=footprint).astype(bool)
                components, count = ndimage.label(found, structure=footprint)
                result = []
                for c in range(1, count + 1):
                    members = np.flatnonzero(components.ravel() == c)
                    # argmax returns the first of equal maxima: the lowest linear index.
                    best = members[np.argmax(image.ravel()[members])]
                    z, y, x = np.unravel_index(best, shape)
                    result.append([int(x), int(y), int(z)])
                return sorted(result)

            at = peaks(h)
            stable = peaks(0.97 * h) == at and peaks(1.03 * h) == at
            regions[str(int(region))] = {"peaks": at, "stable": stable, "loose": len(peaks(h / 2))}
        cases.append({"case": name, "regions": regions})
print(json.dumps(cases))
"#;

/// What the oracle says of one S4 region.
struct Answer {
    peaks: Vec<[usize; 3]>,
    stable: bool,
    /// Components at h / 2.
    loose: usize,
}

/// Runs the oracle over the cases written in `dir`; answers by case name and region id.
fn oracle(dir: &Path) -> BTreeMap<String, BTreeMap<u32, Answer>> {
    let output = Command::new(python())
        .args(["-c", ORACLE])
        .arg(dir)
        .output()
        .expect("run UPTAKE_PYTHON");
    assert!(
        output.status.success(),
        "oracle failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cases: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let voxel = |v: &serde_json::Value| -> [usize; 3] {
        let c: Vec<usize> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_u64().unwrap() as usize)
            .collect();
        [c[0], c[1], c[2]]
    };
    cases
        .as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let regions = case["regions"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(id, r)| {
                    let answer = Answer {
                        peaks: r["peaks"].as_array().unwrap().iter().map(voxel).collect(),
                        stable: r["stable"].as_bool().unwrap(),
                        loose: r["loose"].as_u64().unwrap() as usize,
                    };
                    (id.parse().unwrap(), answer)
                })
                .collect();
            (case["case"].as_str().unwrap().to_string(), regions)
        })
        .collect()
}

const DIMS: [usize; 3] = [22, 20, 16];

/// A 22 × 20 × 16 PET of 2 mm voxels: 0 outside a box of 18 × 16 × 12 voxels, inside it a
/// pedestal of 10 SUV plus 5–12 Gaussian blobs (peak 0.5–4 SUV, σ 0.9–2 voxels) centred at
/// random points of the box. Usually the whole box is one S4 region (45 % of its SUVmax stays
/// below the pedestal) with several maxima of all depths.
fn random_pet(seed: u64) -> Volume<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let geometry = Geometry::axis_aligned(DIMS, [2.0; 3], [0.0; 3]).unwrap();
    let (lo, hi) = ([2usize; 3], [20usize, 18, 14]);
    let blobs: Vec<([f64; 3], f64, f64)> = (0..rng.random_range(5..=12))
        .map(|_| {
            let centre = [0, 1, 2].map(|a| rng.random_range(lo[a] as f64..(hi[a] - 1) as f64));
            (
                centre,
                rng.random_range(0.5..4.0),
                rng.random_range(0.9..2.0),
            )
        })
        .collect();
    let data = (0..geometry.len())
        .map(|i| {
            let c = geometry.coords(i);
            if (0..3).any(|a| c[a] < lo[a] || c[a] >= hi[a]) {
                return 0.0;
            }
            let uptake: f64 = blobs
                .iter()
                .map(|&(centre, peak, sigma)| {
                    let d2: f64 = (0..3).map(|a| (c[a] as f64 - centre[a]).powi(2)).sum();
                    peak * (-d2 / (2.0 * sigma * sigma)).exp()
                })
                .sum();
            (10.0 + uptake) as f32
        })
        .collect();
    Volume::new(geometry, data).unwrap()
}

/// The stage's rule reduced to a constant dynamic h, in each shape (the foci do not depend on
/// it).
fn constant_h(h: f32) -> [SubregionParams; 3] {
    let cap = SubregionParams {
        min_dynamic_suv: h,
        noise_units: 0.0,
        min_relative_dynamic: 0.0,
        min_voxels: 1,
        cap_fraction: 0.45,
        shape: SubregionShape::Cap,
        smoothing: false,
        background_radius: 0,
    };
    [
        cap,
        SubregionParams {
            cap_fraction: 0.0,
            ..cap
        },
        SubregionParams {
            shape: SubregionShape::Basin,
            ..cap
        },
    ]
}

/// The library's peaks per S4 region: its SUVmax voxel and its sub-regions' SUVmax voxels,
/// sorted; checks on the way that every sub-region's dynamic reaches h.
fn library_peaks(
    pet: &Volume<f32>,
    s4: &regions::Segmentation,
    params: &SubregionParams,
) -> BTreeMap<u32, Vec<[usize; 3]>> {
    let found = subregions(pet, s4, &RegionParams::default(), params).unwrap();
    let mut peaks: BTreeMap<u32, Vec<[usize; 3]>> = s4
        .regions
        .iter()
        .map(|r| (r.id, vec![r.max_voxel]))
        .collect();
    for sub in &found.subregions {
        assert!(sub.dynamic >= params.min_dynamic_suv, "{params:?}: {sub:?}");
        let [x, y, z] = sub.region.max_voxel;
        assert_eq!(
            sub.region.suv_max,
            pet.data()[pet.geometry().index(x, y, z)]
        );
        peaks
            .get_mut(&sub.parent)
            .unwrap()
            .push(sub.region.max_voxel);
    }
    for list in peaks.values_mut() {
        list.sort_unstable();
    }
    peaks
}

fn write_raw(path: PathBuf, bytes: impl Iterator<Item = [u8; 4]>) {
    std::fs::write(path, bytes.flatten().collect::<Vec<u8>>()).unwrap();
}

#[test]
fn foci_are_the_h_maxima_of_scikit_image() {
    const CASES: u64 = 12;
    const HEIGHTS: [f32; 3] = [0.3, 0.6, 1.2];
    let dir = std::env::temp_dir().join(format!("uptake-subregions-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pets: Vec<Volume<f32>> = (0..CASES).map(|seed| random_pet(9000 + seed)).collect();
    let s4: Vec<_> = pets
        .iter()
        .map(|pet| segment(pet, &RegionParams::default()).unwrap())
        .collect();
    // Each case's h, raised by 10 % while the oracle's answer changes within 3 % of it.
    let mut h: Vec<f32> = (0..CASES as usize).map(|i| HEIGHTS[i % 3]).collect();
    let mut pending: Vec<usize> = (0..CASES as usize).collect();
    let (mut foci, mut loose, mut regions_seen, mut most_peaks) = (0, 0, 0, 0);
    for _round in 0..6 {
        if pending.is_empty() {
            break;
        }
        let mut manifest = String::new();
        for &i in &pending {
            let name = format!("case{i}");
            write_raw(
                dir.join(format!("{name}.pet")),
                pets[i].data().iter().map(|v| v.to_le_bytes()),
            );
            write_raw(
                dir.join(format!("{name}.labels")),
                s4[i].labels.data().iter().map(|v| v.to_le_bytes()),
            );
            let [nx, ny, nz] = DIMS;
            manifest.push_str(&format!("{name} {nx} {ny} {nz} {:.9e}\n", h[i]));
        }
        std::fs::write(dir.join("manifest.txt"), manifest).unwrap();
        let answers = oracle(&dir);
        assert_eq!(answers.len(), pending.len());
        let mut again = Vec::new();
        for &i in &pending {
            let answer = &answers[&format!("case{i}")];
            if !answer.values().all(|a| a.stable) {
                h[i] *= 1.1;
                again.push(i);
                continue;
            }
            let expected: BTreeMap<u32, Vec<[usize; 3]>> = answer
                .iter()
                .map(|(&id, a)| (id, a.peaks.clone()))
                .collect();
            for params in constant_h(h[i]) {
                let got = library_peaks(&pets[i], &s4[i], &params);
                assert_eq!(got, expected, "case {i} (seed {}), {params:?}", 9000 + i);
            }
            regions_seen += answer.len();
            for a in answer.values() {
                foci += a.peaks.len() - 1;
                loose += a.loose;
                most_peaks = most_peaks.max(a.peaks.len());
            }
        }
        pending = again;
    }
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        pending.is_empty(),
        "cases {pending:?} have a dynamic near every h tried"
    );
    // The cases are not trivial: regions with several foci, and maxima that h rejects (h / 2
    // finds more), so that the comparison depends on h.
    assert!(most_peaks >= 4, "at most {most_peaks} peaks in a region");
    assert!(
        foci >= 2 * CASES as usize,
        "{foci} foci in {regions_seen} regions"
    );
    assert!(loose > foci + regions_seen, "h / 2 gives {loose} maxima");
}
