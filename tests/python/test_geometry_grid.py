"""DESIGN S3: trilinear resampling in patient space against SPM12 (results shipped by nibabel)
and SimpleITK's ResampleImageFilter (sitkLinear), and the placement of the common 3 mm grid.

Everything goes through `uptake resample` (NIfTI in, NIfTI out). NIfTI affines are RAS; the
library works in LPS and converts on read and write, so comparing NIfTI outputs compares the
same patient-space points.
"""

import numpy as np
import nibabel as nib
import pytest
from nibabel.affines import apply_affine, from_matvec
from nibabel.eulerangles import euler2mat


def moved_anatomical(nibabel_data, tmp_path):
    """nibabel's test_against_spm_resample input: anatomical.nii rotated by Euler angles
    (0.1, 0.2, 0.3) and shifted by (3, 4, 5) mm (make_moved_anat.py)."""
    anat = nib.load(nibabel_data / "anatomical.nii")
    extra = from_matvec(euler2mat(0.1, 0.2, 0.3), [3, 4, 5])
    img = nib.Nifti1Image(anat.get_fdata().astype(np.float32), extra @ anat.affine)
    path = tmp_path / "anat_moved.nii"
    nib.save(img, path)
    return img, path


@pytest.mark.parametrize("spm_file", ["resampled_anat_moved.nii", "reoriented_anat_moved.nii"])
def test_against_spm12(nibabel_data, tmp_path, run_uptake, spm_file):
    moved, moved_path = moved_anatomical(nibabel_data, tmp_path)
    spm = nib.load(nibabel_data / spm_file)
    out = tmp_path / "ours.nii"
    run_uptake("resample", moved_path, out, "--like", nibabel_data / spm_file, "--outside", "nan")
    ours = nib.load(out)
    assert ours.shape == spm.shape
    np.testing.assert_allclose(ours.affine, spm.affine, atol=1e-4)

    # Where SPM is defined: target voxels whose source index lies within [0, n - 1] on every
    # axis (SPM's own edge handling differs beyond that), as in nibabel's test.
    idx = np.indices(spm.shape).transpose(1, 2, 3, 0)
    src = apply_affine(np.linalg.inv(moved.affine) @ spm.affine, idx)
    inside = np.all((src >= 0) & (src <= np.array(moved.shape) - 1), axis=-1)
    assert inside.sum() > 0.3 * inside.size, "the comparison must cover most of the grid"
    a = np.asarray(ours.dataobj)[inside]
    b = np.asarray(spm.dataobj)[inside]
    assert not np.isnan(a).any()
    bad = ~np.isclose(a, b, rtol=1e-5, atol=1e-8)
    assert not bad.any(), f"{bad.sum()} voxels differ; worst {np.abs(a - b)[bad].max()}"
    # Far outside the source our value is the requested padding.
    far = np.any((src < -0.5 - 1e-6) | (src > np.array(moved.shape) - 0.5 + 1e-6), axis=-1)
    assert np.isnan(np.asarray(ours.dataobj)[far]).all()


def random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def oblique_volume(rng, path, shape, spacing, rotation=None, origin=None):
    rotation = random_rotation(rng) if rotation is None else rotation
    origin = rng.uniform(-40, 40, 3) if origin is None else origin
    affine = from_matvec(rotation @ np.diag(spacing), origin)
    data = rng.uniform(-1000, 3000, shape).astype(np.float32)
    img = nib.Nifti1Image(data, affine)
    img.set_sform(affine, 1)
    img.set_qform(affine, 1)
    nib.save(img, path)
    return img


@pytest.mark.parametrize("target", ["common", "oblique", "axis_aligned"])
def test_against_simpleitk(tmp_path, run_uptake, target):
    """Oblique source onto the common grid and onto another oblique grid (general path), and a
    RAS axis-aligned source onto the LPS common grid (the per-axis path of both aligned grids)."""
    sitk = pytest.importorskip("SimpleITK")
    rng = np.random.default_rng({"common": 3, "oblique": 4, "axis_aligned": 5}[target])
    src_path = tmp_path / "src.nii"
    rotation = np.eye(3) if target == "axis_aligned" else None
    src = oblique_volume(rng, src_path, (23, 19, 17), [1.3, 0.9, 2.1], rotation)
    out = tmp_path / "ours.nii"
    if target == "common":
        run_uptake("resample", src_path, out, "--outside", "-7", "--spacing", "1.7")
    else:
        ref = tmp_path / "ref.nii"
        # For "axis_aligned" the reference is LPS-like (x flipped against the RAS source).
        if target == "axis_aligned":
            oblique_volume(rng, ref, (20, 22, 15), [1.1, 1.6, 1.4], np.diag([-1.0, 1.0, 1.0]),
                           src.affine[:3, 3] + [15.0, -5.0, 4.0])
        else:
            oblique_volume(rng, ref, (20, 22, 15), [1.1, 1.6, 1.4])
        run_uptake("resample", src_path, out, "--outside", "-7", "--like", ref)
    ours = nib.load(out)

    src_img = sitk.ReadImage(str(src_path), sitk.sitkFloat32)
    grid = sitk.ReadImage(str(out), sitk.sitkFloat32)
    f = sitk.ResampleImageFilter()
    f.SetReferenceImage(grid)
    f.SetInterpolator(sitk.sitkLinear)
    f.SetDefaultPixelValue(-7.0)
    f.SetOutputPixelType(sitk.sitkFloat32)
    expected = sitk.GetArrayFromImage(f.Execute(src_img)).transpose(2, 1, 0)
    got = np.asarray(ours.dataobj)
    assert got.shape == expected.shape
    inside = expected != -7.0
    assert 0.1 < inside.mean() < 0.95, "both inside and outside voxels are compared"
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * 3000)


def test_common_grid_box(tmp_path, run_uptake):
    """The 3 mm grid: axis-aligned LPS, centred on the PET field of view's bounding box (voxel
    edges), ceil(extent / 3 mm) voxels per axis — computed here from the documented rule."""
    rng = np.random.default_rng(5)
    src_path = tmp_path / "pet.nii"
    img = oblique_volume(rng, src_path, (30, 25, 20), [4.07, 4.07, 3.27])
    out = tmp_path / "grid.nii"
    run_uptake("resample", src_path, out)
    corners = np.array([[i, j, k] for i in (-0.5, 29.5) for j in (-0.5, 24.5) for k in (-0.5, 19.5)])
    ras = apply_affine(img.affine, corners)
    lps = ras * [-1, -1, 1]
    lo, hi = lps.min(0), lps.max(0)
    n = np.ceil((hi - lo) / 3.0 - 1e-6 / 3).astype(int)
    origin_lps = (lo + hi) / 2 - (n - 1) / 2 * 3.0
    expected = np.diag([-3.0, -3.0, 3.0, 1.0])
    expected[:3, 3] = origin_lps * [-1, -1, 1]
    grid = nib.load(out)
    assert grid.shape == tuple(n)
    np.testing.assert_allclose(grid.affine, expected, atol=1e-3)


def test_bad_inputs_are_clear_errors(tmp_path, run_uptake):
    rng = np.random.default_rng(6)
    src_path = tmp_path / "src.nii"
    oblique_volume(rng, src_path, (5, 5, 5), [1.0, 1.0, 1.0])
    proc = run_uptake("resample", src_path, tmp_path / "o.nii", "--spacing", "0", check=False)
    assert proc.returncode != 0 and "spacing" in proc.stderr
    proc = run_uptake("resample", tmp_path / "missing.nii", tmp_path / "o.nii", check=False)
    assert proc.returncode != 0 and "missing.nii" in proc.stderr
    assert "panicked" not in proc.stderr
