"""Issue #30, "DICOM out": `uptake analyze --dicom-out DIR` writes the suspicious findings as a
DICOM SEG. A PET series with hot foci and a CT series are written with pydicom; the SEG is read
back with highdicom (the oracle) and pydicom, and checked against report.json, labels.nii.gz /
subregions.nii.gz (voxel by voxel, through the PET instances each frame references), the PET's
study, patient and frame of reference, and, when dicom3tools is installed, `dciodvfy`.
"""

import json
import shutil
import subprocess
import sys
import pathlib

import highdicom as hd
import nibabel as nib
import numpy as np
import pydicom
import pytest
from pydicom.sr.codedict import codes
from pydicom.uid import generate_uid

from test_dicom_ct import write_ct
from test_suv_dicom import load_cases, write_series

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
ROWS, COLS, SLICES, SPACING = 37, 45, 30, 3.27  # 37 × 45 pixels: frames are not byte-aligned


def hot_pet(z_index, rows, cols):
    """SUV of one slice: background 0.6 and two spheres (SUV 18 and 9), in rows × columns."""
    y, x, z = np.mgrid[0:rows, 0:cols, z_index:z_index + 1]
    y, x, z = y[..., 0] * 2.5, x[..., 0] * 2.0, z[..., 0] * SPACING
    suv = np.full((rows, cols), 0.6)
    for (cx, cy, cz), radius, value in [((30.0, 40.0, 40.0), 8.0, 18.0),
                                        ((65.0, 55.0, 65.0), 7.0, 9.0)]:
        suv[(x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2 <= radius ** 2] = value
    return suv


@pytest.fixture(scope="module")
def study(shared_data, tmp_path_factory, uptake_bin):
    """A PET and a CT series, the analysis with --dicom-out; returns the paths and the PET."""
    tmp = tmp_path_factory.mktemp("seg")
    instances, factor = load_cases(shared_data)["SIEMENS"]
    instances = (instances * SLICES)[:SLICES]
    frame_uid, study_uid = generate_uid(), generate_uid()
    slope = 20.0 / factor / 30000.0  # SUV 20 at stored 30000
    # write_series puts slice i at z = -10 - SPACING × i; the slice index along +z is reversed.
    def edit(ds):
        i = round((-10.0 - float(ds.ImagePositionPatient[2])) / SPACING)
        suv = hot_pet(SLICES - 1 - i, ROWS, COLS)
        ds.RescaleSlope = f"{slope:.10g}"
        stored = np.round(suv / factor / float(ds.RescaleSlope)).astype(np.int16)
        ds.PixelData = stored.tobytes()
        ds.FrameOfReferenceUID = frame_uid
        ds.StudyInstanceUID = study_uid
        ds.SpecificCharacterSet = "ISO_IR 100"
        ds.PatientName = "Müller^Jürgen"
        ds.PatientID = "UPT-30"
        ds.PatientBirthDate = "19500102"
        ds.StudyDate, ds.StudyTime = "20240501", "101500"
        ds.StudyID, ds.AccessionNumber, ds.ReferringPhysicianName = "7", "A123", ""

    pet = tmp / "pet"
    write_series(pet, instances, rows=ROWS, cols=COLS, spacing=SPACING, edit=edit)
    ct = tmp / "ct"
    bottom = -10.0 - SPACING * (SLICES - 1)
    write_ct(ct, n=SLICES + 2, rows=130, cols=190, spacing=SPACING,
             origin=(-101.0, -81.0, bottom - SPACING), frame_uid=frame_uid, order="ascending")
    out, dout = tmp / "out", tmp / "dicom"
    proc = subprocess.run(
        [str(uptake_bin), "analyze", "--pet", pet, "--ct", ct, "--tracer", "psma", "--out", out,
         "--dicom-out", dout, "--device", "cpu", "--threshold", "0"],
        capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    return dict(pet=pet, ct=ct, out=out, seg=dout / "seg.dcm", frame_uid=frame_uid,
                study_uid=study_uid, stderr=proc.stderr)


def pet_slices(folder):
    """The PET files sorted along the slice normal (+z here): the NIfTI's z order."""
    files = [pydicom.dcmread(p) for p in sorted(folder.glob("*.dcm"))]
    return sorted(files, key=lambda ds: float(ds.ImagePositionPatient[2]))


def test_the_seg_has_one_segment_per_suspicious_finding(study):
    report = json.loads((study["out"] / "report.json").read_text())
    suspicious = [f for f in report["findings"] if f["suspicious"]]
    assert suspicious, "the study should have suspicious findings at --threshold 0.01"
    seg = hd.seg.segread(study["seg"])
    assert seg.SOPClassUID == SEGMENTATION_STORAGE
    assert seg.SegmentationType == "BINARY"
    assert seg.number_of_segments == len(suspicious)
    assert list(seg.segment_numbers) == list(range(1, len(suspicious) + 1))
    version = f"model {report['model']['id']}"
    for number, finding in enumerate(suspicious, start=1):
        desc = seg.get_segment_description(number)
        assert desc.tracking_id == f"uptake region {finding['region']['id']}"
        assert desc.tracking_uid.startswith("2.25.")
        assert str(finding["region"]["id"]) in desc.segment_label
        assert desc.algorithm_type.value == "AUTOMATIC"
        assert desc.algorithm_identification[0].AlgorithmName == "uptake"
        assert desc.algorithm_identification[0].AlgorithmVersion.endswith(version)
        assert desc.segmented_property_category == codes.SCT.MorphologicallyAbnormalStructure
        assert desc.segmented_property_type == codes.SCT.Lesion


def test_every_segment_is_its_region_voxel_for_voxel(study):
    report = json.loads((study["out"] / "report.json").read_text())
    suspicious = [f for f in report["findings"] if f["suspicious"]]
    labels = np.asarray(nib.load(study["out"] / "labels.nii.gz").dataobj)
    sub_path = study["out"] / "subregions.nii.gz"
    subregions = np.asarray(nib.load(sub_path).dataobj) if sub_path.exists() else None
    slices = pet_slices(study["pet"])
    uids = [ds.SOPInstanceUID for ds in slices]
    seg = hd.seg.segread(study["seg"])
    for study_uid, series_uid, instance_uid in seg.get_source_image_uids():
        assert (study_uid, series_uid) == (study["study_uid"], slices[0].SeriesInstanceUID)
        assert instance_uid in uids
    masks = seg.get_pixels_by_source_instance(uids, dtype=bool)  # (slices, rows, cols, segments)
    assert masks.shape == (SLICES, ROWS, COLS, len(suspicious))
    for number, finding in enumerate(suspicious, start=1):
        source = subregions if finding.get("source") == "subregion" else labels
        expected = source == finding["region"]["id"]  # x = column, y = row, z
        got = masks[..., number - 1].transpose(2, 1, 0)
        assert expected.any()
        np.testing.assert_array_equal(got, expected, err_msg=f"segment {number}")
    # Frames: one per PET slice that holds voxels of a segment, at that slice's position.
    ds = pydicom.dcmread(study["seg"])
    by_uid = {s.SOPInstanceUID: s for s in slices}
    frames = ds.PerFrameFunctionalGroupsSequence
    assert int(ds.NumberOfFrames) == len(frames) == int(masks.any(axis=(1, 2)).sum())
    for frame in frames:
        src = frame.DerivationImageSequence[0].SourceImageSequence[0]
        pet = by_uid[src.ReferencedSOPInstanceUID]
        assert src.ReferencedSOPClassUID == pet.SOPClassUID
        np.testing.assert_allclose([float(v) for v in frame.PlanePositionSequence[0]
                                    .ImagePositionPatient],
                                   [float(v) for v in pet.ImagePositionPatient], atol=1e-6)
        number = frame.SegmentIdentificationSequence[0].ReferencedSegmentNumber
        assert frame.FrameContentSequence[0].DimensionIndexValues[0] == number


def test_the_seg_belongs_to_the_pet_study(study):
    ds = pydicom.dcmread(study["seg"])
    pet = pet_slices(study["pet"])[0]
    assert ds.FrameOfReferenceUID == study["frame_uid"] == pet.FrameOfReferenceUID
    assert_copies_patient_and_study(ds, pet, study["study_uid"])
    assert ds.SeriesInstanceUID.startswith("2.25.") and ds.SOPInstanceUID.startswith("2.25.")
    assert ds.SeriesInstanceUID != pet.SeriesInstanceUID
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.file_meta.MediaStorageSOPClassUID == SEGMENTATION_STORAGE
    ref = ds.ReferencedSeriesSequence[0]
    assert ref.SeriesInstanceUID == pet.SeriesInstanceUID
    assert {i.ReferencedSOPInstanceUID for i in ref.ReferencedInstanceSequence} == {
        s.SOPInstanceUID for s in pet_slices(study["pet"])}
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [2.5, 2.0]
    assert float(shared.PixelMeasuresSequence[0].SpacingBetweenSlices) == pytest.approx(SPACING)
    assert [float(v) for v in shared.PlaneOrientationSequence[0].ImageOrientationPatient] == [
        1, 0, 0, 0, 1, 0]
    assert (ds.BitsAllocated, ds.Rows, ds.Columns) == (1, ROWS, COLS)
    # 1-bit frames packed without padding between them, the whole padded to an even length.
    bits = int(ds.NumberOfFrames) * ROWS * COLS
    assert len(ds.PixelData) == (bits + 7) // 8 + ((bits + 7) // 8) % 2


def test_pydicom_round_trip(study, tmp_path):
    ds = pydicom.dcmread(study["seg"])
    copy = tmp_path / "copy.dcm"
    ds.save_as(copy, enforce_file_format=True)
    again = pydicom.dcmread(copy)
    assert again == ds
    np.testing.assert_array_equal(again.pixel_array, ds.pixel_array)


def anatomic_table():
    """The location → SNOMED CT table of src/dicom/seg.rs (`anatomic_region`), read from the
    source so that every row is checked, not only the locations a study happens to hit."""
    import re

    text = (pathlib.Path(__file__).resolve().parents[2] / "src/dicom/seg.rs").read_text()
    body = text[text.index("pub fn anatomic_region"):]
    body = body[:body.index("_ => return None")]
    return {name: (code, meaning) for name, code, meaning in
            re.findall(r'"(\w+)" => \("(\d+)", "([^"]+)"\)', body)}


def test_anatomic_regions_are_ps3_16_codes(study):
    """Every anatomic code the writer uses is a SNOMED CT concept of DICOM PS3.16 (pydicom's
    dictionary is the oracle) with that meaning, for a location class of model v1; a segment
    carries the code of its finding's location, or none for a location without one."""
    from pydicom.sr import _concepts_dict

    meanings = {}
    for entries in _concepts_dict.concepts["SCT"].values():
        for code, (meaning, _) in entries.items():
            meanings.setdefault(code, set()).add(meaning.lower())
    table = anatomic_table()
    assert len(table) == 18
    for name, (code, meaning) in table.items():
        assert code in meanings, (name, code)
        assert meaning.lower() in meanings[code], (name, code, meanings[code])
    report = json.loads((study["out"] / "report.json").read_text())
    suspicious = [f for f in report["findings"] if f["suspicious"]]
    ds = pydicom.dcmread(study["seg"])
    for item, finding in zip(ds.SegmentSequence, suspicious, strict=True):
        regions = item.get("AnatomicRegionSequence", [])
        expected = table.get(finding["location"]["name"])
        if expected is None:
            assert len(regions) == 0
        else:
            assert [(r.CodeValue, r.CodingSchemeDesignator, r.CodeMeaning) for r in regions] == [
                (expected[0], "SCT", expected[1])]


def dciodvfy():
    found = shutil.which("dciodvfy") or (pathlib.Path(sys.executable).parent / "dciodvfy")
    return found if pathlib.Path(found).exists() else None


def assert_dciodvfy_finds_no_error(path):
    """dciodvfy reports no error for the object at `path` (the test skips without the tool)."""
    tool = dciodvfy()
    if tool is None:
        pytest.skip("dciodvfy (dicom3tools) is not installed")
    proc = subprocess.run([str(tool), str(path)], capture_output=True, text=True)
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    assert not errors, "\n".join(lines)


def assert_copies_patient_and_study(ds, pet, study_uid):
    """A written object carries the PET's patient and study, in UTF-8."""
    assert ds.StudyInstanceUID == study_uid
    assert ds.SpecificCharacterSet == "ISO_IR 192"
    assert str(ds.PatientName) == "Müller^Jürgen"
    for key in ("PatientID", "PatientBirthDate", "StudyDate", "StudyTime", "StudyID",
                "AccessionNumber"):
        assert ds[key].value == pet[key].value, key


def test_dciodvfy_finds_no_error(study):
    assert_dciodvfy_finds_no_error(study["seg"])


def test_dicom_out_refuses_a_nifti_pet(tmp_path, run_uptake):
    nifti = tmp_path / "pet.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((4, 4, 4), np.float32), np.eye(4)), nifti)
    proc = run_uptake("analyze", "--pet", nifti, "--ct", nifti, "--tracer", "psma",
                      "--out", tmp_path / "out", "--dicom-out", tmp_path / "d", check=False)
    assert proc.returncode != 0
    assert "--dicom-out needs a DICOM PET series" in proc.stderr, proc.stderr


def test_no_suspicious_finding_writes_no_seg(study, tmp_path, run_uptake):
    out, dout = tmp_path / "out", tmp_path / "dicom"
    proc = run_uptake("analyze", "--pet", study["pet"], "--ct", study["ct"], "--tracer", "psma",
                      "--out", out, "--dicom-out", dout, "--device", "cpu", "--threshold", "1")
    report = json.loads((out / "report.json").read_text())
    assert not any(f["suspicious"] for f in report["findings"])
    assert "no suspicious finding: no DICOM SEG written" in proc.stderr, proc.stderr
    assert not (dout / "seg.dcm").exists()
