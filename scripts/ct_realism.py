#!/usr/bin/env python3
"""The phantom's CT against the real test CT, tissue by tissue: HU distribution, noise level and
noise texture, and pictures of both side by side (docs/phantom.md). Statistics only: the real
CTs are test anatomy; nothing is trained on them or on what this script writes.

Both CTs are compared on 3 mm voxels over the same levels (the real segmentation's slab, the
phantom's kidneys and 30 mm above and below) (the real example is 3 mm isotropic; the phantom's
0.98 mm pixels are averaged 3 x 3). Per tissue group: voxels, median HU, 10-90 % range, the
"noise" SD (HU minus its 3x3x3 mean, two voxels inside the structure: texture and noise
together) and the noise texture as the in-plane autocorrelation of that residual at 1 and 2
voxels (a rough summary of the noise power spectrum: white noise gives about -0.12 at lag 1
after the local-mean subtraction, smoother reconstructions more).

Usage: scripts/ct_realism.py PHANTOM_DIR [REAL_CT_DIR] [--pictures DOCS_DIR]
(PHANTOM_DIR from `uptake phantom --preset clinical`; pictures need matplotlib,
requirements-docs.txt.)
"""
import json
import sys

import nibabel as nib
import numpy as np
from scipy import ndimage

# Tissue groups: (name, real TotalSegmentator prefixes, phantom tissues).
GROUPS = [
    ("liver", ["liver"], ["Liver"]),
    ("spleen", ["spleen"], ["Spleen"]),
    ("kidney", ["kidney_left", "kidney_right"], ["KidneyCortex", "RenalPelvis"]),
    ("pancreas", ["pancreas"], ["Pancreas"]),
    ("muscle", ["autochthon", "iliopsoas", "gluteus"], ["Muscle"]),
    ("blood (aorta, IVC)", ["aorta", "inferior_vena_cava"], ["Artery", "Vein"]),
    ("vertebrae, sacrum", ["vertebrae_", "sacrum"], None),
    ("colon", ["colon"], ["Colon", "Rectum"]),
    ("small bowel, duodenum", ["small_bowel", "duodenum"], ["SmallBowel", "Duodenum"]),
    ("stomach", ["stomach"], ["Stomach", "StomachContent", "BowelGas"]),
    ("lung", ["lung_"], ["Lung"]),
]


def canonical(path, dtype):
    """The image's voxels in RAS+ axis order, so that both CTs display alike."""
    return np.asarray(nib.as_closest_canonical(nib.load(path)).dataobj).astype(dtype)


def real_masks(root):
    ct = canonical(f"{root}/example_ct.nii.gz", np.float64)
    seg = canonical(f"{root}/example_seg.nii.gz", np.int32)
    names = json.load(open(f"{root}/classes.json"))
    names = {int(k): v for k, v in names.get("classes", names).items()}
    # The segmentation covers slices 82-111 of the CT (docs/hybrid.md).
    ct = ct[:, :, 82:82 + seg.shape[2]]
    masks = {}
    for group, prefixes, _ in GROUPS:
        labels = [k for k, v in names.items() if any(v.startswith(p) for p in prefixes)]
        masks[group] = np.isin(seg, labels)
    body = ct > -500
    masks["fat"] = (seg == 0) & (ct > -190) & (ct < -30) & body
    return ct, masks


def phantom_masks(directory):
    ct = canonical(f"{directory}/ct.nii.gz", np.float64)
    lab = canonical(f"{directory}/ct_structures.nii.gz", np.int32)
    manifest = json.load(open(f"{directory}/manifest.json"))
    # 0.98 mm pixels to about 3 mm: mean of 3 x 3 blocks; labels from each block's centre.
    nx, ny = (ct.shape[0] // 3) * 3, (ct.shape[1] // 3) * 3
    ct = ct[:nx, :ny].reshape(nx // 3, 3, ny // 3, 3, -1).mean(axis=(1, 3))
    lab = lab[1:nx:3, 1:ny:3]
    tissue = {s["label"]: s["tissue"] for s in manifest["structures"]}
    names = {s["label"]: s["name"] for s in manifest["structures"]}
    masks = {}
    for group, _, tissues in GROUPS:
        if tissues is None:  # vertebral bodies: the marrow and cortex of the spine's structures
            labels = [k for k, n in names.items() if n in ("bone_marrow", "cortical_bone")]
            spine = np.zeros(ct.shape, bool)
            # Within 45 mm of the midline and behind the body's centre: the spine, not ribs.
            cx = ct.shape[0] / 2
            xs = np.abs(np.arange(ct.shape[0]) - cx) * 3.0 < 45
            spine[xs, :, :] = True
            body = ct > -500
            cy = np.argwhere(body.any(axis=(0, 2))).mean()
            spine[:, int(cy) :, :] = False  # RAS+: anterior is +y
            masks[group] = np.isin(lab, labels) & spine
        else:
            labels = [k for k, t in tissue.items() if t in tissues]
            masks[group] = np.isin(lab, labels)
    masks["fat"] = np.isin(lab, [k for k, t in tissue.items() if t == "Fat"])
    # The real segmentation's slab spans the kidneys and 30 mm beyond: the same levels here.
    kidney = np.flatnonzero(masks["kidney"].any(axis=(0, 1)))
    slab = np.zeros(ct.shape[2], bool)
    if kidney.size:
        slab[max(kidney[0] - 10, 0) : kidney[-1] + 11] = True
    for group in masks:
        masks[group] &= slab[None, None, :]
    return ct, masks


def stats(ct, mask):
    if mask.sum() < 20:
        return None
    hu = ct[mask]
    resid = ct - ndimage.uniform_filter(ct, size=3)
    inner = ndimage.binary_erosion(mask, iterations=2)
    sd = ac1 = ac2 = float("nan")
    if inner.sum() >= 20:
        r = np.where(inner, resid, 0.0)
        sd = resid[inner].std()
        var = (r * r)[inner].mean()

        def lag(k):
            both = inner[k:, :, :] & inner[:-k, :, :]
            return (r[k:] * r[:-k])[both].mean() / var if both.any() else float("nan")

        ac1, ac2 = lag(1), lag(2)
    return (mask.sum(), np.median(hu), *np.percentile(hu, [10, 90]), sd, ac1, ac2)


def table(real, phantom):
    rows = []
    for group in [g[0] for g in GROUPS] + ["fat"]:
        rows.append((group, stats(*real[:1], real[1][group]), stats(phantom[0], phantom[1][group])))
    print("| tissue | real median (p10–p90) | phantom median (p10–p90) | noise SD real / phantom "
          "| residual autocorrelation lag 1, 2: real / phantom |")
    print("|---|---|---|---|---|")
    fmt = lambda s: "—" if s is None else f"{s[1]:.0f} ({s[2]:.0f} to {s[3]:.0f})"
    sd = lambda s: "—" if s is None else f"{s[4]:.0f}"
    ac = lambda s: "—" if s is None else f"{s[5]:.2f}, {s[6]:.2f}"
    for group, r, p in rows:
        print(f"| {group} | {fmt(r)} | {fmt(p)} | {sd(r)} / {sd(p)} | {ac(r)} / {ac(p)} |")


def pictures(real, phantom, docs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (rct, rm), (pct, pm) = real, phantom
    # Matching levels: the slice with the most kidney, the slice with the most colon.
    def level(masks, group):
        return int(np.argmax(masks[group].sum(axis=(0, 1))))

    fig, axes = plt.subplots(2, 2, figsize=(9, 8.4))
    for row, group in enumerate(["kidney", "colon"]):
        for col, (ct, masks, name) in enumerate([(rct, rm, "real CT"), (pct, pm, "phantom")]):
            z = level(masks, group)
            ax = axes[row, col]
            # Radiological display of RAS+ voxels: patient's right on the image's left,
            # anterior up.
            ax.imshow(np.rot90(ct[:, :, z])[:, ::-1], cmap="gray", vmin=-160, vmax=240)
            ax.set_title(f"{name}, level of most {group} (W 400 / L 40)", fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(f"{docs}/phantom-vs-real-ct.png", dpi=80)
    plt.close(fig)

    groups = ["liver", "spleen", "kidney", "muscle", "fat", "vertebrae, sacrum", "colon", "lung"]
    fig, axes = plt.subplots(2, 4, figsize=(12, 5.5))
    for ax, group in zip(axes.flat, groups):
        r, p = rct[rm[group]], pct[pm[group]]
        lo, hi = np.percentile(np.concatenate([r, p]), [1, 99])
        bins = np.linspace(lo, hi, 60)
        ax.hist(r, bins, density=True, alpha=0.6, label="real")
        ax.hist(p, bins, density=True, alpha=0.6, label="phantom")
        ax.set_title(group, fontsize=9)
        ax.set_xlabel("HU", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.set_yticks([])
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{docs}/phantom-vs-real-hu.png", dpi=80)
    plt.close(fig)


def main():
    args = sys.argv[1:]
    docs = None
    if "--pictures" in args:
        i = args.index("--pictures")
        docs = args[i + 1]
        del args[i : i + 2]
    phantom_dir = args[0]
    root = args[1] if len(args) > 1 else "../shared/data/real-ct"
    real, phantom = real_masks(root), phantom_masks(phantom_dir)
    table(real, phantom)
    if docs:
        pictures(real, phantom, docs)


if __name__ == "__main__":
    main()
