"""`uptake phantom` files read by nibabel: orientation, units and ground truth agree with the manifest."""

import json

import nibabel
import numpy as np
import pytest


@pytest.fixture(scope="module")
def study(run_uptake, tmp_path_factory):
    out = tmp_path_factory.mktemp("phantom")
    run_uptake("phantom", "--tracer", "psma", "--seed", "208", "--preset", "small", "--out", out)
    return out, json.loads((out / "manifest.json").read_text())


def lps_to_voxel(img, p_lps):
    """Voxel index (rounded) of an LPS point through nibabel's RAS affine."""
    ras = np.array([-p_lps[0], -p_lps[1], p_lps[2], 1.0])
    ijk = np.linalg.inv(img.affine) @ ras
    return tuple(int(round(v)) for v in ijk[:3])


def test_lesion_centres_fall_on_their_labels(study):
    out, m = study
    assert m["lesions"], "seed 208 has lesions"
    for grid, labels in [("pet_grid", "pet_lesions"), ("ct_grid", "ct_lesions")]:
        img = nibabel.load(out / m["files"][labels])
        assert nibabel.aff2axcodes(img.affine) == ("L", "P", "S")
        assert list(img.shape) == m[grid]["dims"]
        data = np.asarray(img.dataobj)
        for les in m["lesions"]:
            count = int((data == les["id"]).sum())
            assert count == les["pet_voxels" if labels == "pet_lesions" else "ct_voxels"]
            if min(les["radii_mm"]) > max(img.header.get_zooms()):
                assert data[lps_to_voxel(img, les["centre_lps"])] == les["id"]


def test_pet_is_suv_and_ct_is_hu(study):
    out, m = study
    pet = nibabel.load(out / "pet.nii.gz").get_fdata()
    ct = nibabel.load(out / "ct.nii.gz")
    assert ct.get_data_dtype() == np.int16
    ct = ct.get_fdata()
    assert pet.min() >= 0.0 and 20.0 < pet.max() < 500.0
    struct = np.asarray(nibabel.load(out / "ct_structures.nii.gz").dataobj)
    names = {s["label"]: s["name"] for s in m["structures"]}
    outside = ct[struct == 0]
    assert abs(np.median(outside) + 1000.0) < 20.0
    lung = np.isin(struct, [k for k, v in names.items() if v.startswith("lung_")])
    assert -900.0 < np.median(ct[lung]) < -750.0
    # Every lesion's noisy SUVmax is the maximum of the PET over its voxels.
    pet_lesions = np.asarray(nibabel.load(out / "pet_lesions.nii.gz").dataobj)
    for les in m["lesions"]:
        assert pet[pet_lesions == les["id"]].max() == pytest.approx(les["suv_max_noisy"], rel=1e-5)
