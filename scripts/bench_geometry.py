#!/usr/bin/env python3
"""Benchmarks for DESIGN S3 and S5, side by side with the peers, in one run.

1. Resampling a clinical-size CT (512 x 512 x 333, 0.98 x 0.98 x 3 mm) onto the common 3 mm grid:
   `uptake resample` (time of the resampling itself, printed by --timings, without file I/O)
   against SimpleITK's ResampleImageFilter (sitkLinear, 2 threads) and scipy.ndimage
   .affine_transform (order=1, one thread) on the same grid. Each is run --repeat times,
   interleaved, and the fastest run counts.
2. Reformations for 2000 regions ([26, 64, 64] each) from the 3 mm grids: `uptake mpr
   --timings` against scipy.ndimage.map_coordinates (order=1) on a subset, scaled to 2000.

Usage: cargo build --release && .venv/bin/python scripts/bench_geometry.py [--repeat 3]
Threads: RAYON_NUM_THREADS=2 for uptake, SetNumberOfThreads(2) for SimpleITK (override with
--threads).
"""

import argparse
import os
import pathlib
import subprocess
import tempfile
import time

import nibabel as nib
import numpy as np
import SimpleITK as sitk
from scipy.ndimage import affine_transform, map_coordinates

ROOT = pathlib.Path(__file__).resolve().parents[1]
BIN = pathlib.Path(os.environ.get("UPTAKE_BIN", ROOT / "target" / "release" / "uptake"))


def uptake(args, threads):
    env = dict(os.environ, RAYON_NUM_THREADS=str(threads))
    proc = subprocess.run([str(BIN), *map(str, args)], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"uptake {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return dict(line.split("=", 1) for line in proc.stderr.split() if "=" in line)


def clinical_ct(rng):
    shape = (512, 512, 333)
    x = np.linspace(-1, 1, shape[0], dtype=np.float32)[:, None, None]
    y = np.linspace(-1, 1, shape[1], dtype=np.float32)[None, :, None]
    z = np.linspace(0, 1, shape[2], dtype=np.float32)[None, None, :]
    body = (x * x / 0.8 + y * y / 0.5) < 1
    ct = np.where(body, 40 + 300 * np.sin(8 * x) * np.cos(6 * y + 4 * z), -1000).astype(np.float32)
    ct += rng.normal(0, 20, shape).astype(np.float32)
    affine = np.diag([-0.98, -0.98, 3.0, 1.0])
    affine[:3, 3] = [250.0, 250.0, -1000.0]
    return ct, affine


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--regions", type=int, default=2000)
    ap.add_argument("--scipy-regions", type=int, default=100)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        ct, affine = clinical_ct(rng)
        ct_path = tmp / "ct.nii"
        nib.save(nib.Nifti1Image(ct, affine), ct_path)
        out = tmp / "ct3.nii"

        # --- S3 resampling -------------------------------------------------------------
        ours, itk = [], []
        src = sitk.ReadImage(str(ct_path), sitk.sitkFloat32)
        for _ in range(a.repeat):
            t = uptake(["resample", ct_path, out, "--outside", "-1000", "--timings"], a.threads)
            ours.append(float(t["resample_ms"]))
            grid = sitk.ReadImage(str(out), sitk.sitkFloat32)
            f = sitk.ResampleImageFilter()
            f.SetReferenceImage(grid)
            f.SetInterpolator(sitk.sitkLinear)
            f.SetDefaultPixelValue(-1000.0)
            f.SetOutputPixelType(sitk.sitkFloat32)
            f.SetNumberOfThreads(a.threads)
            t0 = time.perf_counter()
            res = f.Execute(src)
            itk.append((time.perf_counter() - t0) * 1e3)
        ours_img = nib.load(out)
        target = ours_img.shape
        diff = np.abs(sitk.GetArrayFromImage(res).transpose(2, 1, 0) - np.asarray(ours_img.dataobj))
        # scipy: index map target voxel -> source voxel, one thread, one run (slow).
        m = np.linalg.inv(affine) @ ours_img.affine
        t0 = time.perf_counter()
        affine_transform(ct, m[:3, :3], m[:3, 3], output_shape=target, order=1,
                         mode="constant", cval=-1000.0, output=np.float32)
        scipy_ms = (time.perf_counter() - t0) * 1e3
        print(f"S3 resample 512x512x333 (0.98x0.98x3 mm) -> {target} at 3 mm, threads={a.threads}")
        print(f"  uptake       {min(ours):9.1f} ms   (runs: {', '.join(f'{v:.0f}' for v in ours)})")
        print(f"  SimpleITK    {min(itk):9.1f} ms   (runs: {', '.join(f'{v:.0f}' for v in itk)})")
        print(f"  scipy        {scipy_ms:9.1f} ms   (affine_transform order=1, 1 thread, 1 run)")
        print(f"  ratio SimpleITK/uptake = {min(itk) / min(ours):.2f}  scipy/uptake = "
              f"{scipy_ms / min(ours):.2f}   max |uptake - SimpleITK| = {diff.max():.2e} HU")

        # --- S5 reformations -----------------------------------------------------------
        ct3 = np.asarray(ours_img.dataobj)
        pet3 = np.clip(rng.gamma(2.0, 1.0, ct3.shape), 0, 40).astype(np.float32)
        pet_path, ct3_path = tmp / "pet3.nii", tmp / "ct3b.nii"
        nib.save(nib.Nifti1Image(pet3, ours_img.affine), pet_path)
        nib.save(nib.Nifti1Image(ct3, ours_img.affine), ct3_path)
        idx = rng.uniform([0, 0, 0], np.array(ct3.shape) - 1, (a.regions, 3))
        centres_ras = nib.affines.apply_affine(ours_img.affine, idx)
        centres_lps = centres_ras * [-1, -1, 1]
        centres_file = tmp / "centres.txt"
        np.savetxt(centres_file, centres_lps, delimiter=",")
        t = uptake(["mpr", "--pet", pet_path, "--ct", ct3_path, "--on-grid", "--centres",
                    centres_file, "--repeat", str(a.repeat), "--timings"], a.threads)
        mpr_ms = float(t["extract_ms"])
        offsets = np.array([-144, -96, -48, -24, -12, -6, 0, 6, 12, 24, 48, 96, 144], float)
        r, k = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
        inv = np.linalg.inv(ours_img.affine)
        n = a.scipy_regions
        t0 = time.perf_counter()
        for c in centres_lps[:n]:
            lps = np.stack(np.broadcast_arrays(
                c[0] + (k[None] - 32) * 3.0, c[1] + offsets[:, None, None], c[2] + (32 - r[None]) * 3.0), -1)
            vox = nib.affines.apply_affine(inv, lps * [-1, -1, 1])
            coords = np.moveaxis(vox, -1, 0)
            map_coordinates(pet3, coords, order=1, mode="constant", cval=0.0)
            map_coordinates(ct3, coords, order=1, mode="constant", cval=-1000.0)
        scipy_mpr = (time.perf_counter() - t0) * 1e3 * a.regions / n
        print(f"S5 reformations, {a.regions} regions x [26, 64, 64], threads={a.threads}")
        print(f"  uptake       {mpr_ms:9.1f} ms   ({mpr_ms * 1e3 / a.regions:.0f} us per region)")
        print(f"  scipy        {scipy_mpr:9.1f} ms   (map_coordinates order=1, 1 thread, "
              f"{n} regions scaled to {a.regions})")
        print(f"  ratio scipy/uptake = {scipy_mpr / mpr_ms:.2f}")


if __name__ == "__main__":
    main()
