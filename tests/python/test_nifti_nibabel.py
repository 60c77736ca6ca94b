"""NIfTI reading checked against nibabel on the real files nibabel ships.

Positions: our LPS position of a voxel (through the validated Geometry) must equal nibabel's
affine applied to the same index, converted RAS→LPS, to 1e-5 mm. Values: the float32 volume we
write back (`uptake convert`) must hold exactly nibabel's float32 reading of the original.
"""

import json

import nibabel as nib
import numpy as np
import pytest

FILES = [
    "anatomical.nii",  # LAS
    "example4d.nii.gz",  # oblique, 4-D
    "example_nifti2.nii.gz",  # NIfTI-2
    "standard.nii.gz",  # sform only
    "reoriented_anat_moved.nii",
    "resampled_anat_moved.nii",  # contains NaN
]

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def sample_voxels(shape):
    nx, ny, nz = shape[:3]
    return [
        (0, 0, 0),
        (nx - 1, ny - 1, nz - 1),
        (nx // 2, ny // 3, nz // 4),
        (1, ny - 1, 0),
        (0.5, 1.25, 2.75),
    ]


@pytest.mark.parametrize("name", FILES)
def test_positions_match_nibabel_affine(name, nibabel_data, run_uptake):
    path = nibabel_data / name
    img = nib.load(path)
    voxels = sample_voxels(img.shape)
    args = ["info", path, "--json"]
    for v in voxels:
        args += ["--voxel", ",".join(map(str, v))]
    ours = json.loads(run_uptake(*args).stdout)
    assert ours["nifti_version"] == (2 if isinstance(img, nib.Nifti2Image) else 1)
    assert ours["dims"] == list(img.shape[:3])
    assert ours["frames"] == int(np.prod(img.shape[3:]))
    for v, got in zip(voxels, ours["positions_lps"]):
        ras = img.affine @ np.array([*v, 1.0])
        want = RAS_TO_LPS @ ras[:3]
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5, err_msg=f"{name} voxel {v}")
    want_affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ img.affine
    np.testing.assert_allclose(ours["affine_lps"], want_affine, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", FILES)
def test_values_match_nibabel_exactly(name, nibabel_data, run_uptake, tmp_path):
    path = nibabel_data / name
    img = nib.load(path)
    want = np.asarray(img.get_fdata(dtype=np.float64), dtype=np.float32)
    if want.ndim == 4:
        want = want[..., 0]
    out = tmp_path / "out.nii"
    run_uptake("convert", path, out)
    back = nib.load(out)
    got = np.asarray(back.dataobj)
    assert got.dtype == np.float32
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)  # NaN positions must agree too
    # The written header describes the same placement (float32 storage of the affine).
    np.testing.assert_allclose(back.affine, img.affine, rtol=0, atol=1e-4)
    np.testing.assert_allclose(back.get_qform(), img.affine, rtol=0, atol=1e-4)


def test_nan_is_kept_as_stored(nibabel_data, run_uptake):
    info = json.loads(run_uptake("info", nibabel_data / "resampled_anat_moved.nii", "--json").stdout)
    assert info["non_finite"] > 0


def _write_raw(path, header_edit):
    img = nib.Nifti1Image(np.arange(24, dtype=np.int16).reshape(2, 3, 4), np.eye(4))
    img.header.set_qform(np.eye(4), code=1)
    img.header.set_sform(np.eye(4), code=0)
    img.header["vox_offset"] = 352
    raw = bytearray(img.header.binaryblock) + bytes(4) + img.get_fdata().astype("<i2").tobytes(order="F")
    header_edit(raw)
    path.write_bytes(bytes(raw))


MALFORMED = {
    "negative pixdim": lambda b: b.__setitem__(slice(80, 84), np.float32(-1).tobytes()),
    "bad quaternion": lambda b: b.__setitem__(slice(256, 264), np.array([0.9, 0.9], "<f4").tobytes()),
    "vox_offset inside header": lambda b: b.__setitem__(slice(108, 112), np.float32(10).tobytes()),
    "vox_offset past end": lambda b: b.__setitem__(slice(108, 112), np.float32(4096).tobytes()),
    "truncated": lambda b: b.__delitem__(slice(len(b) - 3, len(b))),
    "bad sizeof_hdr": lambda b: b.__setitem__(slice(0, 4), np.int32(123).tobytes()),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_headers_are_clear_errors(case, tmp_path, run_uptake):
    good = tmp_path / "good.nii"
    _write_raw(good, lambda b: None)
    assert run_uptake("info", good).returncode == 0
    bad = tmp_path / "bad.nii"
    _write_raw(bad, MALFORMED[case])
    proc = run_uptake("info", bad, check=False)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.startswith("uptake: ") and len(proc.stderr) > 20
    assert "panicked" not in proc.stderr
