"""DESIGN S2: every real header set of data/suv-headers/ is written as a small PET DICOM series with
pydicom, read back by `uptake suv`, and must give its expected SUVbw factor to 1e-6 relative;
the SUV volume and its geometry are checked against values computed here from the DICOM
attributes; bad series give clear errors.
"""

import json
import os

import numpy as np
import nibabel as nib
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

PET_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.128"


def load_cases(shared_data):
    root = shared_data / "suv-headers"
    expected = json.loads((root / "expected.json").read_text())["cases"]
    return {name: (json.loads((root / f"{name}-instances.json").read_text()), f)
            for name, f in expected.items()}


def write_series(folder, instances, *, rows=4, cols=5, spacing=3.27, orientation=None,
                 positions=None, seed=0, drop=None, edit=None):
    """One slice per instance dict (DICOM keyword → value). Files are written in shuffled order
    and slice positions descend, so the reader must sort along the normal."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    orientation = orientation or [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    normal = np.cross(orientation[:3], orientation[3:])
    series_uid = generate_uid()
    slices = []
    order = rng.permutation(len(instances))
    for n, i in enumerate(order):
        inst = instances[i]
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = PET_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = PET_IMAGE_STORAGE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "PT"
        ds.SeriesInstanceUID = series_uid
        for key in ("SeriesDate", "SeriesTime", "AcquisitionDate", "AcquisitionTime",
                    "PatientSex", "DecayCorrection", "Units"):
            if key in inst:
                setattr(ds, key, inst[key])
        for key in ("PatientWeight", "PatientSize", "FrameReferenceTime", "ActualFrameDuration"):
            if key in inst:
                setattr(ds, key, str(inst[key]))
        ds.CorrectedImage = inst["CorrectedImage"]
        rp = Dataset()
        for key in ("RadiopharmaceuticalStartTime", "RadiopharmaceuticalStartDateTime"):
            if key in inst:
                setattr(rp, key, inst[key])
        rp.RadionuclideTotalDose = str(inst["RadionuclideTotalDose"])
        rp.RadionuclideHalfLife = str(inst["RadionuclideHalfLife"])
        ds.RadiopharmaceuticalInformationSequence = Sequence([rp])
        philips = inst.get("PhilipsPETPrivateGroup") or {}
        if philips:
            block = ds.private_block(0x7053, "Philips PET Private Group", create=True)
            if "SUVScaleFactor" in philips:
                block.add_new(0x00, "DS", philips["SUVScaleFactor"].strip())
            if "ActivityConcentrationScaleFactor" in philips:
                block.add_new(0x09, "DS", philips["ActivityConcentrationScaleFactor"].strip())
        z = (positions[i] if positions is not None else -10.0 - spacing * i)
        ipp = np.array([-100.0, -80.0, 0.0]) + z * normal
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.PixelSpacing = ["2.5", "2.0"]  # row spacing (y), column spacing (x)
        ds.SliceThickness = str(spacing)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        stored = rng.integers(-200, 32000, (rows, cols), dtype=np.int16)
        slope = float(rng.uniform(0.5, 3.0))
        ds.RescaleSlope = f"{slope:.6f}"
        ds.RescaleIntercept = "0"
        ds.PixelData = stored.tobytes()
        if drop:
            for key in drop:
                if key in ds:
                    delattr(ds, key)
        if edit:
            edit(ds)
        ds.save_as(folder / f"img{n:03d}.dcm", enforce_file_format=True)
        slices.append((z, ipp, stored.astype(np.float64) * float(ds.RescaleSlope)))
    return slices


def run_suv(run_uptake, folder, out=None):
    args = ["suv", folder] + (["--out", out] if out else [])
    proc = run_uptake(*args, check=False)
    return proc, (json.loads(proc.stdout) if proc.returncode == 0 else None)


def test_every_shared_case_gives_its_factor(shared_data, tmp_path, run_uptake):
    cases = load_cases(shared_data)
    assert len(cases) == 6
    for name, (instances, expected) in cases.items():
        folder = tmp_path / name
        write_series(folder, instances)
        proc, report = run_suv(run_uptake, folder)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        got = report["factor"]
        assert abs(got / expected - 1) < 1e-6, f"{name}: {got} vs {expected}"


def test_round_trip_volume_and_geometry(shared_data, tmp_path, run_uptake):
    """SUV = stored × slope × factor on the right voxels; the affine follows IPP/IOP/PixelSpacing
    with slices sorted along the normal (an oblique orientation, shuffled files)."""
    instances, expected = load_cases(shared_data)["SIEMENS"]
    instances = instances * 2  # six slices
    c, s = np.cos(0.3), np.sin(0.3)
    orientation = [c, s, 0.0, 0.0, 0.0, -1.0]  # rows along (c, s, 0); columns to inferior
    folder = tmp_path / "series"
    slices = write_series(folder, instances, orientation=orientation, seed=7)
    out = tmp_path / "suv.nii.gz"
    proc, report = run_suv(run_uptake, folder, out)
    assert proc.returncode == 0, proc.stderr
    img = nib.load(out)
    assert img.shape == (5, 4, 6)
    normal = np.cross(orientation[:3], orientation[3:])
    order = sorted(range(len(slices)), key=lambda i: slices[i][1] @ normal)
    first_ipp = slices[order[0]][1]
    gap = slices[order[1]][1] @ normal - first_ipp @ normal
    lps_affine = np.eye(4)
    lps_affine[:3, 0] = np.array(orientation[:3]) * 2.0
    lps_affine[:3, 1] = np.array(orientation[3:]) * 2.5
    lps_affine[:3, 2] = normal * gap
    lps_affine[:3, 3] = first_ipp
    np.testing.assert_allclose(img.affine, np.diag([-1, -1, 1, 1]) @ lps_affine, atol=1e-4)
    data = np.asarray(img.dataobj)
    factor = report["factor"]
    assert abs(factor / expected - 1) < 1e-6
    for z, i in enumerate(order):
        # stored rows × columns; the volume is x = column, y = row.
        np.testing.assert_allclose(data[:, :, z], slices[i][2].T * factor, rtol=1e-6)


def test_bad_series_are_clear_errors(shared_data, tmp_path, run_uptake):
    instances, _ = load_cases(shared_data)["SIEMENS"]
    cases = {
        "weight": (dict(drop=["PatientWeight"]), "PatientWeight"),
        "dose": (dict(edit=lambda ds: delattr(
            ds.RadiopharmaceuticalInformationSequence[0], "RadionuclideTotalDose")),
            "RadionuclideTotalDose"),
        "units": (dict(edit=lambda ds: setattr(ds, "Units", "PROPCPS")), "PROPCPS"),
        "late_injection": (dict(edit=lambda ds: setattr(
            ds.RadiopharmaceuticalInformationSequence[0], "RadiopharmaceuticalStartDateTime",
            "20201217113000")), "after the scan"),
        "spacing": (dict(positions=[0.0, -3.0, -9.0]), "spacing"),
    }
    for name, (kwargs, needle) in cases.items():
        folder = tmp_path / name
        write_series(folder, instances, **kwargs)
        proc, _ = run_suv(run_uptake, folder)
        assert proc.returncode != 0, name
        assert needle in proc.stderr, f"{name}: {proc.stderr}"
        assert "panicked" not in proc.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.txt").write_text("not DICOM")
    proc, _ = run_suv(run_uptake, empty)
    assert proc.returncode != 0 and "no DICOM" in proc.stderr
