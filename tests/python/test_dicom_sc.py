"""Issue #30, "DICOM out": `uptake analyze --dicom-out DIR` writes, beside seg.dcm and sr.dcm,
the findings picture (findings.png, the paper's Fig. 3 layout) as a DICOM Secondary Capture
(findings.dcm). The study of test_dicom_seg.py is analysed; the capture is read back with
pydicom and checked pixel for pixel against findings.png (read by Pillow), against the PET's
patient and study, for new series distinct from the SEG's and the SR's and, when dicom3tools is
installed, with `dciodvfy`.
"""

import numpy as np
import pydicom
import pytest
from PIL import Image

from test_dicom_seg import (  # noqa: F401 (study is a fixture)
    assert_copies_patient_and_study, assert_dciodvfy_finds_no_error, pet_slices, study)

SECONDARY_CAPTURE = "1.2.840.10008.5.1.4.1.1.7"


@pytest.fixture(scope="module")
def capture(study):  # noqa: F811
    return study["seg"].parent / "findings.dcm"


def test_the_pixels_are_the_findings_picture(capture, study):  # noqa: F811
    ds = pydicom.dcmread(capture)
    png = np.asarray(Image.open(study["out"] / "findings.png").convert("RGB"))
    assert ds.SOPClassUID == SECONDARY_CAPTURE
    assert (ds.SamplesPerPixel, ds.PhotometricInterpretation, ds.PlanarConfiguration) == (
        3, "RGB", 0)
    assert (ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation) == (8, 8, 7, 0)
    assert (ds.Rows, ds.Columns) == png.shape[:2]
    np.testing.assert_array_equal(ds.pixel_array, png)
    # The picture shows something: dark uptake on white paper and red outlines.
    assert (png == 255).all(axis=2).mean() > 0.3
    assert ((png[..., 0] > 200) & (png[..., 1] < 60)).any(), "no red outline"


def test_the_capture_belongs_to_the_pet_study_in_a_series_of_its_own(capture, study):  # noqa: F811
    ds = pydicom.dcmread(capture)
    pet = pet_slices(study["pet"])[0]
    assert_copies_patient_and_study(ds, pet, study["study_uid"])
    others = [pydicom.dcmread(study["seg"].parent / name) for name in ("seg.dcm", "sr.dcm")]
    series = {ds.SeriesInstanceUID, pet.SeriesInstanceUID} | {o.SeriesInstanceUID for o in others}
    assert len(series) == 4, "SC, PET, SEG and SR are four series"
    assert len({ds.SeriesNumber} | {o.SeriesNumber for o in others}) == 3
    assert ds.SeriesInstanceUID.startswith("2.25.") and ds.SOPInstanceUID.startswith("2.25.")
    assert ds.file_meta.MediaStorageSOPClassUID == SECONDARY_CAPTURE
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert (ds.ConversionType, ds.BurnedInAnnotation) == ("WSD", "NO")


def test_pydicom_round_trip(capture, tmp_path):
    ds = pydicom.dcmread(capture)
    copy = tmp_path / "copy.dcm"
    ds.save_as(copy, enforce_file_format=True)
    again = pydicom.dcmread(copy)
    assert again == ds
    np.testing.assert_array_equal(again.pixel_array, ds.pixel_array)


def test_dciodvfy_finds_no_error(capture):
    assert_dciodvfy_finds_no_error(capture)


def test_a_study_without_suspicious_findings_still_gets_its_picture(study, tmp_path,  # noqa: F811
                                                                      run_uptake):
    out, dout = tmp_path / "out", tmp_path / "dicom"
    run_uptake("analyze", "--pet", study["pet"], "--ct", study["ct"], "--tracer", "psma",
               "--out", out, "--dicom-out", dout, "--device", "cpu", "--threshold", "1")
    ds = pydicom.dcmread(dout / "findings.dcm")
    png = np.asarray(Image.open(out / "findings.png").convert("RGB"))
    np.testing.assert_array_equal(ds.pixel_array, png)
    assert not (dout / "seg.dcm").exists()
