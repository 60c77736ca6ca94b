"""DESIGN S5: the [26, 64, 64] reformation tensor against scipy.ndimage.map_coordinates(order=1),
with every pixel position computed here from the S5 text and the augmentation from SciPy's
rotations; plus the padding rule at the border of the field of view.
"""

import numpy as np
import nibabel as nib
import pytest
from nibabel.affines import apply_affine, from_matvec
from scipy.ndimage import map_coordinates
from scipy.spatial.transform import Rotation

OFFSETS = [-144, -96, -48, -24, -12, -6, 0, 6, 12, 24, 48, 96, 144]


def s5_pixels_lps(centre, scale=1.0, rotate_deg=(0.0, 0.0, 0.0)):
    """[13, 64, 64, 3] LPS positions: pixel (r, k) of plane p at
    c + A ((k - 32) 3, offset_p, (32 - r) 3), A = scale * Rz Ry Rx (extrinsic x, y, z)."""
    a = scale * Rotation.from_euler("xyz", rotate_deg, degrees=True).as_matrix()
    r, k = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
    planes = []
    for off in OFFSETS:
        local = np.stack([(k - 32) * 3.0, np.full(k.shape, float(off)), (32 - r) * 3.0], -1)
        planes.append(np.asarray(centre) + local @ a.T)
    return np.stack(planes)


def oracle(pet, ct, affine_ras, centre, **aug):
    lps = s5_pixels_lps(centre, **aug)
    ras = lps * [-1, -1, 1]
    idx = apply_affine(np.linalg.inv(affine_ras), ras)  # [13, 64, 64, 3]
    shape = np.array(pet.shape)
    inside = np.all((idx >= -0.5) & (idx <= shape - 0.5), axis=-1)
    coords = np.moveaxis(idx, -1, 0)
    # mode="nearest" holds the edge value in the outer half voxel, the documented convention.
    p = map_coordinates(pet, coords, order=1, mode="nearest")
    c = map_coordinates(ct, coords, order=1, mode="nearest")
    p = np.where(inside, p, 0.0)
    c = np.where(inside, c, -1000.0)
    p = np.clip(p, 0, 15) / 15
    c = (np.clip(c, -300, 300) + 300) / 600
    return np.concatenate([p, c]), inside


@pytest.fixture(params=["oblique", "aligned"])
def oblique_pair(tmp_path, request):
    """PET and CT on one grid: oblique (the general sampling path) or RAS axis-aligned, like the
    common grid (rows of a coronal plane then run along x only: the per-row path)."""
    rng = np.random.default_rng(11)
    shape = (70, 60, 90)
    angles = [8, -5, 12] if request.param == "oblique" else [0, 0, 0]
    rot = Rotation.from_euler("xyz", angles, degrees=True).as_matrix()
    affine = from_matvec(rot @ np.diag([3.0, 3.0, 3.0]), [-100.0, 80.0, -130.0])
    # Smooth-ish fields so that interpolation errors would show, plus noise.
    x, y, z = np.meshgrid(*[np.linspace(0, 1, n) for n in shape], indexing="ij")
    pet = (8 + 8 * np.sin(9 * x) * np.cos(7 * y + 3 * z) + rng.normal(0, 2, shape)).astype(np.float32)
    ct = (400 * np.sin(5 * x + 4 * z) + 200 * np.cos(6 * y) + rng.normal(0, 50, shape)).astype(np.float32)
    paths = []
    for name, data in (("pet", pet), ("ct", ct)):
        img = nib.Nifti1Image(data, affine)
        img.set_qform(affine, 1)
        img.set_sform(affine, 1)
        path = tmp_path / f"{name}.nii"
        nib.save(img, path)
        paths.append(path)
    stored = nib.load(paths[0]).affine  # what the library reads (float32 header fields)
    return paths[0], paths[1], pet, ct, stored


def run_mpr(run_uptake, tmp_path, pet_path, ct_path, centres, *extra):
    out = tmp_path / "mpr.npy"
    args = ["mpr", "--pet", pet_path, "--ct", ct_path, "--on-grid", "--npy", out, *extra]
    for c in centres:
        args += ["--centre", ",".join(map(str, c))]
    run_uptake(*args)
    return np.load(out)


def volume_centre_lps(affine, shape):
    ras = apply_affine(affine, (np.array(shape) - 1) / 2)
    return ras * [-1, -1, 1]


def test_identity_matches_map_coordinates(oblique_pair, tmp_path, run_uptake):
    pet_path, ct_path, pet, ct, affine = oblique_pair
    mid = volume_centre_lps(affine, pet.shape)
    centres = [mid, mid + [31.3, -17.2, 44.9]]
    got = run_mpr(run_uptake, tmp_path, pet_path, ct_path, centres)
    assert got.shape == (2, 26, 64, 64) and got.dtype == np.float32
    for i, c in enumerate(centres):
        expected, inside = oracle(pet, ct, affine, c)
        assert inside.mean() > 0.5
        np.testing.assert_allclose(got[i], expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("scale,rotate", [(1.17, (12.0, -9.5, 16.0)), (0.83, (-17.2, 3.0, -4.0))])
def test_augmented_matches_map_coordinates(oblique_pair, tmp_path, run_uptake, scale, rotate):
    pet_path, ct_path, pet, ct, affine = oblique_pair
    c = volume_centre_lps(affine, pet.shape) + [-12.4, 6.1, -20.0]
    got = run_mpr(
        run_uptake, tmp_path, pet_path, ct_path, [c],
        "--scale", str(scale), "--rotate", ",".join(map(str, rotate)),
    )
    expected, _ = oracle(pet, ct, affine, c, scale=scale, rotate_deg=rotate)
    np.testing.assert_allclose(got[0], expected, atol=1e-5, rtol=0)


def test_border_of_field_of_view_is_padded(oblique_pair, tmp_path, run_uptake):
    """A centre on a corner of the field of view: the planes are partly outside, where PET
    reads 0 SUV and CT -1000 HU before windowing (so 0 in both windows). The centre lies a
    millionth of a voxel outside the corner: exactly on it, whether the centre sample is inside
    turns on the last bit of the index arithmetic, ours and numpy's alike (this happened on an
    AMD EPYC host)."""
    pet_path, ct_path, pet, ct, affine = oblique_pair
    corner = apply_affine(affine, [-0.5 - 1e-6] * 3) * [-1, -1, 1]
    got = run_mpr(run_uptake, tmp_path, pet_path, ct_path, [corner, corner + [5000, 0, 0]])
    expected, inside = oracle(pet, ct, affine, corner)
    assert 0.01 < inside.mean() < 0.5
    np.testing.assert_allclose(got[0], expected, atol=1e-5, rtol=0)
    assert (got[0][:13][~inside] == 0).all() and (got[0][13:][~inside] == 0).all()
    assert (got[1] == 0).all(), "a centre far outside gives an all-padding tensor"


def test_common_grid_path_and_png(shared_data, tmp_path, run_uptake):
    """Without --on-grid both volumes go through the common grid first; the PNG is written."""
    ct_path = shared_data / "real-ct" / "example_ct.nii.gz"
    png = tmp_path / "sheet.png"
    npy = tmp_path / "t.npy"
    proc = run_uptake("mpr", "--pet", ct_path, "--ct", ct_path, "--centre", "0,0,0",
                      "--png", png, "--npy", npy, check=False)
    # The CT stands in for the PET here only to exercise the path; values are windowed anyway.
    assert proc.returncode == 0, proc.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    t = np.load(npy)
    assert t.shape == (1, 26, 64, 64) and np.isfinite(t).all()
    assert 0 <= t.min() and t.max() <= 1


def test_bad_requests_are_clear_errors(oblique_pair, tmp_path, run_uptake):
    pet_path, ct_path, *_ = oblique_pair
    proc = run_uptake("mpr", "--pet", pet_path, "--ct", ct_path, "--on-grid", check=False)
    assert proc.returncode != 0 and "centre" in proc.stderr
    proc = run_uptake("mpr", "--pet", pet_path, "--ct", ct_path, "--centre", "0,0,0",
                      "--scale", "0", "--npy", tmp_path / "x.npy", check=False)
    assert proc.returncode != 0 and "scale" in proc.stderr
    assert "panicked" not in proc.stderr
