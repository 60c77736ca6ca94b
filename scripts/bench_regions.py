#!/usr/bin/env python3
"""Benchmark of S4 uptake regions against cc3d, side by side in one run.

Builds a clinical-size PSMA-like PET (200 x 200 x 333 voxels of 4 x 4 x 3 mm: body, organs,
hundreds of lesions, PSF blur, signal-dependent noise), then times
  * cc3d.connected_components of the mask SUV >= 1 (26-connectivity; the mask is computed
    outside the timing: a plain labelling is the lower bound of S4's work), and
  * uptake::regions::segment on the same volume (default parameters, candidate scan and
    statistics included), through `cargo bench --bench regions`, which also reports its peak
    memory beyond the input,
and prints both and the ratio. With --rounds R both are timed alternately R times, since the
speed of a shared host drifts between the two measurements, and the median ratio is printed too.
Usage:

    .venv/bin/python scripts/bench_regions.py [--runs 15] [--rounds 1] [--keep DIR]
"""

import argparse
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import time

import cc3d
import nibabel as nib
import numpy as np
from scipy import ndimage

ROOT = pathlib.Path(__file__).resolve().parents[1]
DIMS = (200, 200, 333)
SPACING = (4.0, 4.0, 3.0)


def phantom(seed=7):
    """PET in SUV, x fastest in memory (Fortran order), indexed [x, y, z]."""
    rng = np.random.default_rng(seed)
    pet = np.zeros(DIMS, np.float32)
    axes = [(np.arange(n) - n / 2) * s for n, s in zip(DIMS, SPACING)]
    axes[2] = np.arange(DIMS[2]) * SPACING[2]

    def ellipsoid(centre, radii, suv):
        box = []
        for axis, c, r in zip(axes, centre, radii):
            inside = np.flatnonzero(np.abs(axis - c) <= r)
            if inside.size == 0:
                return
            box.append(slice(inside[0], inside[-1] + 1))
        x, y, z = np.meshgrid(*[a[b] for a, b in zip(axes, box)], indexing="ij", sparse=True)
        m = ((x - centre[0]) / radii[0]) ** 2 + ((y - centre[1]) / radii[1]) ** 2 + ((z - centre[2]) / radii[2]) ** 2 <= 1
        pet[tuple(box)][m] = suv

    ellipsoid((0, 0, 500), (170, 110, 420), 0.25)  # body
    ellipsoid((0, 0, 930), (75, 90, 80), 0.3)  # head
    ellipsoid((-60, 10, 650), (90, 70, 80), 5.0)  # liver
    ellipsoid((80, 40, 660), (35, 45, 50), 4.0)  # spleen
    for side in (-60, 60):
        ellipsoid((side, 60, 560), (30, 30, 55), 25.0)  # kidneys
    ellipsoid((0, -20, 250), (45, 40, 40), 40.0)  # bladder
    for side in (-45, 45):
        ellipsoid((side, -10, 880), (15, 18, 22), 15.0)  # parotid glands
        ellipsoid((side, -40, 850), (10, 10, 10), 12.0)  # submandibular glands
        ellipsoid((side * 0.8, -60, 930), (6, 6, 5), 10.0)  # lacrimal glands
    for _ in range(400):  # lesions and small physiological spots
        r = rng.uniform(3, 15)
        centre = (rng.uniform(-140, 140), rng.uniform(-80, 80), rng.uniform(150, 850))
        ellipsoid(centre, (r, r, r), rng.uniform(1.5, 30))
    # PSF of about 6 mm FWHM.
    sigma = [6.0 / 2.355 / s for s in SPACING]
    pet = ndimage.gaussian_filter(pet, sigma)
    noise = rng.standard_normal(pet.shape, dtype=np.float32)
    pet += noise * 0.25 * np.sqrt(np.maximum(pet, 0))
    pet = ndimage.gaussian_filter(pet, 0.7)
    return np.asfortranarray(pet, np.float32)


def best(fn, runs):
    """(min, median) of wall time and of this process's CPU time, in seconds."""
    wall, cpu = [], []
    for _ in range(runs):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
    return min(wall), float(np.median(wall)), min(cpu), float(np.median(cpu))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=1,
                        help="time cc3d and uptake alternately this many times (the host's speed drifts)")
    parser.add_argument("--keep", type=pathlib.Path, help="write the phantom here and keep it")
    args = parser.parse_args()
    if args.runs < 1 or args.rounds < 1:
        parser.error("--runs and --rounds must be at least 1")

    t = time.perf_counter()
    pet = phantom()
    print(f"phantom {DIMS} built in {time.perf_counter() - t:.1f} s: "
          f"{int((pet >= 1).sum())} voxels >= 1 SUV, {int((pet >= np.float32(0.45)).sum())} >= 0.45 SUV, "
          f"SUVmax {pet.max():.1f}")

    workdir = args.keep or pathlib.Path(tempfile.mkdtemp(prefix="bench_regions_"))
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "pet.nii"
    nib.save(nib.Nifti1Image(pet, np.diag([*SPACING, 1.0])), path)

    mask = pet >= 1.0
    _, n = cc3d.connected_components(mask, connectivity=26, return_N=True)
    env = dict(os.environ, UPTAKE_BENCH_PET=str(path), UPTAKE_BENCH_RUNS=str(args.runs))
    env.setdefault("RAYON_NUM_THREADS", "2")
    ratios = []
    for round_ in range(1, args.rounds + 1):
        if args.rounds > 1:
            print(f"\nround {round_} of {args.rounds}")
        cc3d_min, cc3d_median, cc3d_cpu_min, cc3d_cpu_median = best(
            lambda: cc3d.connected_components(mask, connectivity=26), args.runs
        )
        print(f"cc3d SUV >= 1, 26-conn: {n} components, min {cc3d_min * 1e3:.1f} ms, "
              f"median {cc3d_median * 1e3:.1f} ms over {args.runs} runs; CPU time min "
              f"{cc3d_cpu_min * 1e3:.1f} ms, median {cc3d_cpu_median * 1e3:.1f} ms")
        proc = subprocess.run(
            ["cargo", "bench", "--quiet", "--bench", "regions"],
            cwd=ROOT, env=env, capture_output=True, text=True,
        )
        sys.stdout.write(proc.stdout)
        if proc.returncode != 0:
            sys.exit(f"cargo bench failed:\n{proc.stderr}")
        found = re.search(
            r"clinical: .* min ([\d.]+) ms, median ([\d.]+) ms .* CPU time min ([\d.]+) ms, median ([\d.]+) ms",
            proc.stdout,
        )
        ours = [float(g) / 1e3 for g in found.groups()]
        ratios.append(ours[0] / cc3d_min)
        print(f"ratio uptake/cc3d wall: min {ratios[-1]:.2f}, median {ours[1] / cc3d_median:.2f}; "
              f"CPU time: min {ours[2] / cc3d_cpu_min:.2f}, median {ours[3] / cc3d_cpu_median:.2f} "
              f"(RAYON_NUM_THREADS={env['RAYON_NUM_THREADS']})")
    if args.rounds > 1:
        print(f"\nwall-time ratio of the minima over {args.rounds} rounds: median "
              f"{float(np.median(ratios)):.2f}, range {min(ratios):.2f}-{max(ratios):.2f}")
    if not args.keep:
        path.unlink()
        workdir.rmdir()


if __name__ == "__main__":
    main()
