"""S4 uptake regions (`uptake regions`) against independent oracles.

* cc3d: an isolated hot spot must give exactly the connected component of {SUV >= f*SUVmax}
  that holds its maximum (DESIGN S4, last paragraph).
* `reference_regions` below: S4's numbered steps written out as plainly as possible (a priority
  queue, explicit member lists, merging by relabelling), compared label for label on hundreds of
  random smooth volumes with plateaus, for 6-, 18- and 26-connectivity.
* numpy: every statistic recomputed from the label map, SUVpeak from the voxel centres in mm.

The comparisons with the plain reference and numpy run once with each of S4's two sweeps
(chosen with `uptake regions --sweep`), which must give identical results; left to choose,
these small dense volumes would all take the direct one.

Arithmetic: S4 compares in float32 (the voxel type): f*t and f*peak are float32 products, as
`np.float32(f) * np.float32(p)` is here.
"""

import heapq
import itertools
import json

import cc3d
import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

SUV_PEAK_RADIUS_MM = 6.2035
CONNECTIVITIES = (6, 18, 26)


def neighbour_offsets(connectivity):
    """(dx, dy, dz) with 1 (6), up to 2 (18) or up to 3 (26) non-zero components."""
    order = {6: 1, 18: 2, 26: 3}[connectivity]
    return [
        d
        for d in itertools.product((-1, 0, 1), repeat=3)
        if 0 < sum(c != 0 for c in d) <= order
    ]


def reference_regions(pet, fraction, seed_min, connectivity):
    """DESIGN S4, steps 1-4, without union-find: returns (labels, regions) with ids ordered by
    descending SUVmax, ties by the linear index (x fastest) of the maximum."""
    f, t = np.float32(fraction), np.float32(seed_min)
    nx, ny, nz = pet.shape
    values = pet.ravel(order="F")  # linear index = x + nx*(y + ny*z)
    offsets = neighbour_offsets(connectivity)

    # Step 1: every voxel with SUV >= f*t, by decreasing SUV, ties by increasing index.
    queue = [(-float(values[i]), int(i)) for i in np.flatnonzero(values >= f * t)]
    heapq.heapify(queue)

    visited = np.zeros(values.size, bool)
    region_of = np.full(values.size, -1)
    regions = {}  # creation number -> {"peak", "members"}
    created = 0
    while queue:
        _, i = heapq.heappop(queue)
        v = values[i]
        x, y, z = i % nx, (i // nx) % ny, i // (nx * ny)
        neighbours = [
            (x + dx) + nx * ((y + dy) + ny * (z + dz))
            for dx, dy, dz in offsets
            if 0 <= x + dx < nx and 0 <= y + dy < ny and 0 <= z + dz < nz
        ]
        seen = [j for j in neighbours if visited[j]]
        if not seen:
            # Step 2: seed when SUV > t, else background.
            if v > t:
                regions[created] = {"peak": v, "members": [i]}
                region_of[i] = created
                created += 1
        else:
            # Step 3: regions of the visited neighbours that accept the voxel.
            near = {int(region_of[j]) for j in seen if region_of[j] >= 0}
            accepting = [r for r in near if v >= f * regions[r]["peak"]]
            if accepting:
                # Highest peak; ties: the region created first (smaller creation number).
                winner = max(accepting, key=lambda r: (regions[r]["peak"], -r))
                for r in accepting:
                    if r != winner:
                        for m in regions[r]["members"]:
                            region_of[m] = winner
                        regions[winner]["members"].extend(regions.pop(r)["members"])
                regions[winner]["members"].append(i)
                region_of[i] = winner
        # Step 4: visited even when it belongs to no region.
        visited[i] = True

    def maximum(members):
        top = max(values[m] for m in members)
        return top, min(m for m in members if values[m] == top)

    ordered = sorted(regions.values(), key=lambda r: (-maximum(r["members"])[0], maximum(r["members"])[1]))
    labels = np.zeros(values.size, np.uint32)
    for rid, region in enumerate(ordered, start=1):
        labels[region["members"]] = rid
    return labels.reshape(pet.shape, order="F"), ordered


def save(path, pet, affine):
    nib.save(nib.Nifti1Image(np.asarray(pet, np.float32), affine), path)


def segment_many(run_uptake, tmp_path, pets, affine=None, connectivity=26, fraction=0.45, seed_min=1.0, tag="v",
                 sweep="auto"):
    """Runs one `uptake regions` call over all volumes; returns [(labels, json)]."""
    affine = np.diag([4.0, 4.0, 3.0, 1.0]) if affine is None else affine
    args = []
    for k, pet in enumerate(pets):
        stem = tmp_path / f"{tag}{k}"
        save(f"{stem}.nii", pet, affine)
        args += ["--pet", f"{stem}.nii", "--out", f"{stem}_labels.nii", "--json", f"{stem}.json"]
    run_uptake(
        "regions", *args,
        "--connectivity", connectivity, "--fraction", repr(float(np.float32(fraction))),
        "--seed-min", repr(float(np.float32(seed_min))), "--sweep", sweep,
    )
    results = []
    for k in range(len(pets)):
        stem = tmp_path / f"{tag}{k}"
        img = nib.load(f"{stem}_labels.nii")
        assert img.get_data_dtype() == np.uint32
        labels = np.asarray(img.dataobj)
        assert np.allclose(img.affine, nib.load(f"{stem}.nii").affine, atol=1e-4)
        with open(f"{stem}.json") as fh:
            results.append((labels, json.load(fh)))
    return results


def smooth_volume(rng, shape, quantum):
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), sigma=rng.uniform(0.7, 1.5))
    v = (noise - noise.min()) / (np.ptp(noise) + 1e-12) * rng.uniform(2.0, 6.0) - 0.5
    if quantum:
        v = np.round(v / quantum) * quantum  # plateaus and ties
    return v.astype(np.float32)


# (fraction, seed minimum): the default, one where f*peak often lands exactly on the 1/8
# quantisation grid, and two others.
PARAMETERS = [(0.45, 1.0), (0.5, 1.0), (0.3, 2.0), (0.7, 0.5)]
SHAPES = [(7, 6, 5), (9, 8, 6), (6, 10, 7), (8, 8, 8)]


@pytest.fixture(params=["direct", "compact"])
def sweep(request):
    """One of S4's sweeps, for the CLI runs of a test."""
    return request.param


@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
def test_matches_plain_reference_on_random_smooth_volumes(run_uptake, tmp_path, connectivity, sweep):
    rng = np.random.default_rng(1000 + connectivity)
    volumes = 0
    for fraction, seed_min in PARAMETERS:
        pets = [
            smooth_volume(rng, SHAPES[k % len(SHAPES)], (None, 0.125, 0.25)[k % 3])
            for k in range(60)
        ]
        results = segment_many(
            run_uptake, tmp_path, pets, connectivity=connectivity, fraction=fraction,
            seed_min=seed_min, tag=f"p{PARAMETERS.index((fraction, seed_min))}_", sweep=sweep,
        )
        for pet, (labels, report) in zip(pets, results):
            expected, regions = reference_regions(pet, fraction, seed_min, connectivity)
            assert np.array_equal(labels, expected), (fraction, seed_min, labels, expected)
            assert len(report["regions"]) == len(regions)
            volumes += 1
    assert volumes == 240


def test_reference_regions_on_hand_made_profiles():
    """The reference itself, on the cases derived by hand in tests/regions_edge.rs."""

    def profile(values, **kw):
        pet = np.array(values, np.float32).reshape(-1, 1, 1)
        return list(reference_regions(pet, kw.get("f", 0.45), kw.get("t", 1.0), 26)[0].ravel())

    assert profile([0, 10, 6, 5, 8, 0]) == [0, 1, 1, 1, 1, 0]
    assert profile([0, 10, 6, 4, 8, 0]) == [0, 1, 1, 2, 2, 0]
    assert profile([0, 10, 6, 3, 8, 0]) == [0, 1, 1, 0, 2, 0]
    assert profile([20, 12, 8, 5, 3, 2.5, 4, 2, 0]) == [1, 1, 0, 0, 0, 2, 2, 2, 0]
    assert profile([20, 12, 3, 4]) == [1, 1, 2, 2]
    assert profile([0, 5, 0, 5, 0, 7]) == [0, 2, 0, 3, 0, 1]
    assert profile([2, 2, 1.5, 3], f=1.0) == [2, 2, 0, 1]
    assert profile([1.0, 0, np.nextafter(np.float32(1), np.float32(2))]) == [0, 0, 1]


def blob_volume(rng, blobs=8):
    """Gaussian blobs with random peak, anisotropic width and sub-voxel centre, each in its own
    box with zeros around it, cut off where they fall below 0.45 * t / 2 (so no candidate of one
    blob touches another)."""
    shape = (48, 44, 36)
    pet = np.zeros(shape, np.float64)
    peaks = []
    cells = [(x, y, z) for x in range(3) for y in range(3) for z in range(2)]
    for cell in rng.permutation(len(cells))[:blobs]:
        cx, cy, cz = cells[cell]
        peak = rng.uniform(0.6, 25.0)
        sigma = rng.uniform(0.6, 2.2, 3)
        # Cell sizes 16 x 14 x 18; centre near the middle of the cell.
        lo = np.array([cx * 16, cy * 14, cz * 18])
        size = np.array([15, 13, 17])
        centre = lo + size / 2 + rng.uniform(-1, 1, 3)
        grid = np.meshgrid(*[np.arange(a, a + s) for a, s in zip(lo, size)], indexing="ij")
        g = peak * np.exp(-sum((grid[k] - centre[k]) ** 2 / (2 * sigma[k] ** 2) for k in range(3)))
        g[g < 0.225] = 0.0
        pet[lo[0]:lo[0] + size[0], lo[1]:lo[1] + size[1], lo[2]:lo[2] + size[2]] = g
        peaks.append(peak)
    return pet.astype(np.float32)


@pytest.mark.parametrize("connectivity", CONNECTIVITIES)
def test_isolated_blobs_equal_the_cc3d_component_of_45_percent(run_uptake, tmp_path, connectivity):
    rng = np.random.default_rng(connectivity)
    pets = [blob_volume(rng) for _ in range(6)]
    results = segment_many(run_uptake, tmp_path, pets, connectivity=connectivity)
    f = np.float32(0.45)
    checked = 0
    for pet, (labels, report) in zip(pets, results):
        blobs, count = cc3d.connected_components(pet > 0, connectivity=connectivity, return_N=True)
        expected_regions = 0
        for b in range(1, count + 1):
            inside = blobs == b
            peak = pet[inside].max()
            if not peak > np.float32(1.0):
                assert not labels[inside].any()
                continue
            expected_regions += 1
            top = np.unravel_index(np.argmax(np.where(inside, pet, -1)), pet.shape)
            components = cc3d.connected_components(pet >= f * peak, connectivity=connectivity)
            component = components == components[top]
            region = labels == labels[top]
            assert labels[top] > 0
            assert np.array_equal(region, component), f"blob {b}: {region.sum()} vs {component.sum()} voxels"
            checked += 1
        assert len(report["regions"]) == expected_regions
    assert checked >= 30


def lps_affine():
    """An oblique RAS affine with unequal spacing."""
    a, b = 0.3, 0.2
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    affine = np.eye(4)
    affine[:3, :3] = rx @ rz @ np.diag([4.07, 3.9, 2.5])
    affine[:3, 3] = [120.0, -40.5, 300.0]
    return affine


def test_statistics_and_suv_peak_against_direct_computation(run_uptake, tmp_path, sweep):
    rng = np.random.default_rng(7)
    pets = [smooth_volume(rng, (14, 13, 12), None) for _ in range(4)]
    affine = lps_affine()
    results = segment_many(run_uptake, tmp_path, pets, affine=affine, sweep=sweep)
    stored = nib.load(tmp_path / "v0.nii").affine  # float32-rounded, as the tool reads it
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in pets[0].shape], indexing="ij"), -1)
    centres = ijk @ stored[:3, :3].T + stored[:3, 3]
    voxel_ml = abs(np.linalg.det(stored[:3, :3])) / 1000
    total = 0
    for pet, (labels, report) in zip(pets, results):
        assert labels.max() == len(report["regions"])
        maxima = []
        for r in report["regions"]:
            inside = labels == r["id"]
            values = pet[inside].astype(np.float64)
            assert r["voxel_count"] == inside.sum()
            assert np.float32(r["suv_max"]) == pet[inside].max()
            flat = np.flatnonzero((pet == pet[inside].max()).ravel(order="F") & inside.ravel(order="F"))
            top = np.unravel_index(flat[0], pet.shape, order="F")
            assert tuple(r["max_voxel"]) == tuple(int(c) for c in top)
            ras = centres[top]
            assert np.allclose(r["max_lps"], [-ras[0], -ras[1], ras[2]], atol=1e-3)
            assert r["suv_mean"] == pytest.approx(values.mean(), rel=1e-12)
            assert r["volume_ml"] == pytest.approx(inside.sum() * voxel_ml, rel=1e-5)
            assert r["total_uptake"] == pytest.approx(values.mean() * r["volume_ml"], rel=1e-12)
            where = np.argwhere(inside)
            assert r["bbox_min"] == where.min(0).tolist()
            assert r["bbox_max"] == where.max(0).tolist()
            sphere = np.sum((centres - ras) ** 2, axis=-1) <= SUV_PEAK_RADIUS_MM**2
            assert sphere.sum() > 1
            assert r["suv_peak"] == pytest.approx(pet[sphere].astype(np.float64).mean(), rel=1e-12)
            maxima.append((-r["suv_max"], flat[0]))
            total += 1
        assert maxima == sorted(maxima), "ids follow descending SUVmax, ties by index"
    assert total >= 8


def test_bad_and_empty_input(run_uptake, tmp_path):
    affine = np.diag([4.0, 4.0, 3.0, 1.0])
    pet = np.ones((5, 5, 5), np.float32)
    pet[2, 3, 1] = np.nan
    save(tmp_path / "nan.nii", pet, affine)
    proc = run_uptake("regions", "--pet", tmp_path / "nan.nii", "--json", tmp_path / "nan.json", check=False)
    assert proc.returncode != 0
    assert "non-finite" in proc.stderr and "PET" in proc.stderr
    assert not (tmp_path / "nan.json").exists()

    (labels, report), = segment_many(run_uptake, tmp_path, [np.zeros((6, 5, 4))], tag="zero")
    assert report["regions"] == [] and not labels.any()
    (labels, report), = segment_many(run_uptake, tmp_path, [-np.ones((6, 5, 4))], tag="negative")
    assert report["regions"] == [] and not labels.any()

    proc = run_uptake("regions", "--pet", tmp_path / "zero0.nii", "--out", "a.nii", "--out", "b.nii", check=False)
    assert proc.returncode != 0 and "--out" in proc.stderr
    proc = run_uptake("regions", "--pet", tmp_path / "zero0.nii", "--connectivity", "8", check=False)
    assert proc.returncode != 0
    proc = run_uptake("regions", "--pet", tmp_path / "zero0.nii", "--fraction", "1.5", check=False)
    assert proc.returncode != 0 and "fraction" in proc.stderr


def test_unknown_sweep_is_rejected(run_uptake, tmp_path):
    save(tmp_path / "pet.nii", np.ones((5, 5, 5), np.float32), np.diag([4.0, 4.0, 3.0, 1.0]))
    proc = run_uptake("regions", "--pet", tmp_path / "pet.nii", "--sweep", "fast", check=False)
    assert proc.returncode != 0 and "--sweep" in proc.stderr
