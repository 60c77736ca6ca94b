//! Timing and peak memory of S4 (`uptake::regions::segment`).
//!
//! * `clinical`: the PET in `UPTAKE_BENCH_PET` (written by `scripts/bench_regions.py`, which
//!   times cc3d on the same volume and prints the ratio); skipped when the variable is unset.
//! * `maxima`: 200³ voxels with a hot voxel at every even (x, y, z) on a 0.5 SUV floor:
//!   10^6 isolated local maxima, every voxel a candidate.
//!
//! Peak memory is the rise of the resident set's high-water mark (VmHWM, reset through
//! /proc/self/clear_refs) over the resident set before the call, on the first call; it includes
//! the returned label map and regions. `UPTAKE_BENCH_RUNS` sets the number of timed runs (15).
//! Besides wall time, the CPU time of all the process's threads is reported (from
//! /proc/self/task/*/schedstat): on a shared machine it is the steadier figure.

use std::time::Instant;

use rand::{Rng, SeedableRng};
use uptake::regions::{RegionParams, segment};
use uptake::volume::{Geometry, Volume, nifti};

/// A field of /proc/self/status in KiB.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// CPU time of all threads of this process so far, in seconds (0 where /proc is unavailable).
fn cpu_seconds() -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    tasks
        .filter_map(|task| {
            let stat = std::fs::read_to_string(task.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum::<u64>() as f64
        * 1e-9
}

fn measure(name: &str, pet: &Volume<f32>, runs: usize) {
    let params = RegionParams::default();
    let voxels = pet.data().len() as f64;
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = status_kib("VmRSS").unwrap_or(0);
    let segmentation = segment(pet, &params).expect("a valid PET");
    let peak = status_kib("VmHWM").unwrap_or(0);
    let extra = peak.saturating_sub(before) as f64 * 1024.0;
    println!(
        "{name}: peak memory beyond the input {:.1} MiB = {:.2} bytes/voxel{}",
        extra / 1048576.0,
        extra / voxels,
        if reset {
            ""
        } else {
            " (VmHWM could not be reset: upper bound)"
        }
    );
    let regions = segmentation.regions.len();
    drop(segmentation);

    let (mut wall, mut cpu): (Vec<f64>, Vec<f64>) = (0..runs)
        .map(|_| {
            let (start, cpu_start) = (Instant::now(), cpu_seconds());
            let s = segment(pet, &params).expect("a valid PET");
            let elapsed = (start.elapsed().as_secs_f64(), cpu_seconds() - cpu_start);
            assert_eq!(s.regions.len(), regions, "deterministic");
            elapsed
        })
        .unzip();
    wall.sort_by(f64::total_cmp);
    cpu.sort_by(f64::total_cmp);
    let [nx, ny, nz] = pet.dims();
    println!(
        "{name}: {nx}×{ny}×{nz}, {regions} regions, {} threads, min {:.1} ms, median {:.1} ms \
         over {runs} runs; CPU time min {:.1} ms, median {:.1} ms",
        rayon::current_num_threads(),
        wall[0] * 1e3,
        wall[runs / 2] * 1e3,
        cpu[0] * 1e3,
        cpu[runs / 2] * 1e3,
    );
}

fn lattice_of_maxima() -> Volume<f32> {
    let n = 200;
    let geometry = Geometry::axis_aligned([n, n, n], [2.0; 3], [0.0; 3]).expect("valid grid");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let mut values = vec![0.5f32; n * n * n];
    for z in (0..n).step_by(2) {
        for y in (0..n).step_by(2) {
            for x in (0..n).step_by(2) {
                values[x + n * (y + n * z)] = rng.random_range(1.5..3.0);
            }
        }
    }
    Volume::new(geometry, values).expect("matching length")
}

fn main() {
    let runs = std::env::var("UPTAKE_BENCH_RUNS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15usize)
        .max(1);
    if let Ok(path) = std::env::var("UPTAKE_BENCH_PET") {
        let pet = nifti::read_volume(&path).expect("a readable 3-D NIfTI");
        measure("clinical", &pet, runs);
    }
    measure("maxima", &lattice_of_maxima(), runs.min(5));
}
