#!/usr/bin/env python3
"""HU statistics of the real test CT per TotalSegmentator structure: the calibration targets of
the phantom's CT (docs/training-results.md, "Real-CT calibration"). Statistics only: the real
CTs are test anatomy and nothing is trained on them.

For each structure of example_seg (placed 82 slices into example_ct, docs/hybrid.md): voxels,
median HU, the 10-90 % range, and the noise: the SD of HU minus its 3x3x3 local mean over the
structure's voxels two voxels inside its border (texture plus noise, as the phantom's
`hu` + CT noise together must reproduce). Usage: scripts/real_ct_stats.py [REAL_CT_DIR]
"""
import json
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

root = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/real-ct"
ct = np.asarray(nib.load(f"{root}/example_ct.nii.gz").dataobj, dtype=np.float64)
seg = np.asarray(nib.load(f"{root}/example_seg.nii.gz").dataobj).astype(np.int32)
names = json.load(open(f"{root}/classes.json"))
names = names.get("classes", names)
slab = ct[:, :, 82:82 + seg.shape[2]]
local = ndimage.uniform_filter(slab, size=3)
rows = []
for label in sorted(set(np.unique(seg)) - {0}):
    mask = seg == label
    inner = ndimage.binary_erosion(mask, iterations=2)
    hu = slab[mask]
    resid = (slab - local)[inner]
    rows.append((names[str(label)], mask.sum(), np.median(hu), *np.percentile(hu, [10, 90]),
                 resid.std() if inner.sum() >= 20 else float("nan")))
print(f"{'structure':<28} {'voxels':>7} {'median':>7} {'p10':>7} {'p90':>7} {'noise SD':>8}")
for name, n, med, p10, p90, sd in sorted(rows, key=lambda r: -r[1]):
    print(f"{name:<28} {n:>7} {med:>7.0f} {p10:>7.0f} {p90:>7.0f} {sd:>8.1f}")
body = ct > -500
fat = (ct > -190) & (ct < -30) & body
print(f"whole CT: fat (-190..-30 HU) median {np.median(ct[fat]):.0f} HU, "
      f"{fat.sum() / body.sum():.2f} of the body's voxels")
