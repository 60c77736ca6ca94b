"""Issue #30, "Series in": CT DICOM series written with pydicom (the oracle), read by
`uptake convert DIR out.nii.gz` (the reader `uptake analyze --ct DIR` uses) and compared voxel by
voxel with stored × RescaleSlope + RescaleIntercept, and in geometry with the affine computed here
from ImagePositionPatient / ImageOrientationPatient / PixelSpacing. Slice orders, transfer
syntaxes (implicit, explicit, deflated, RLE Lossless), a tilted gantry, a missing slice, several
series in one folder and a PET/CT pair in different frames of reference.
"""

import nibabel as nib
import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    generate_uid,
)

from test_suv_dicom import load_cases, write_series

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


def write_ct(folder, *, n=6, rows=4, cols=5, spacing=2.5, orientation=(1, 0, 0, 0, 1, 0),
             origin=(-120.0, -90.0, 40.0), offsets=None, order="shuffled", slope=1.0,
             intercept=-1024.0, signed=False, tilt_mm=0.0, series_uid=None, frame_uid=None,
             description="CT 2.5 mm", syntax=ExplicitVRLittleEndian, seed=0):
    """Writes a CT series; returns (series_uid, [(ipp, expected HU rows × cols)] by position).

    offsets: slice positions along the normal (mm); `tilt_mm` shifts slice i by i × tilt_mm
    along the column direction (a tilted gantry). Files are named in `order` of position."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    orientation = np.asarray(orientation, dtype=float)
    row, col = orientation[:3], orientation[3:]
    normal = np.cross(row, col)
    series_uid = series_uid or generate_uid()
    frame_uid = frame_uid or generate_uid()
    offsets = list(offsets) if offsets is not None else [spacing * i for i in range(n)]
    names = {"ascending": list(range(len(offsets))),
             "descending": list(range(len(offsets)))[::-1],
             "shuffled": list(rng.permutation(len(offsets)))}[order]
    slices = []
    for i, off in enumerate(offsets):
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = CT_IMAGE_STORAGE
        ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.SOPClassUID = CT_IMAGE_STORAGE
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.SeriesDescription = description
        ipp = np.asarray(origin) + off * normal + i * tilt_mm * col
        ds.ImagePositionPatient = [f"{v:.6f}" for v in ipp]
        ds.ImageOrientationPatient = [f"{v:.8f}" for v in orientation]
        ds.PixelSpacing = ["0.75", "0.5"]  # row spacing (y), column spacing (x)
        ds.SliceThickness = str(spacing)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        if signed:
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 15, 1
            stored = rng.integers(-2000, 3000, (rows, cols), dtype=np.int16)
        else:
            ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 12, 11, 0
            stored = rng.integers(0, 4096, (rows, cols), dtype=np.uint16)
        ds.RescaleSlope = f"{slope}"
        ds.RescaleIntercept = f"{intercept}"
        ds.RescaleType = "HU"
        ds.PixelData = stored.tobytes()
        path = folder / f"ct{names[i]:03d}.dcm"
        if syntax == RLELossless:
            ds.compress(RLELossless, stored)
            ds.save_as(path, enforce_file_format=True)
        elif syntax == ImplicitVRLittleEndian:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
        else:
            ds.file_meta.TransferSyntaxUID = syntax
            ds.save_as(path, enforce_file_format=True)
        slices.append((off, ipp, stored.astype(np.float64) * slope + intercept))
    slices.sort(key=lambda s: s[0])
    return series_uid, [(ipp, hu) for _, ipp, hu in slices]


def convert(run_uptake, folder, out, *extra):
    return run_uptake("convert", folder, out, *extra, check=False)


def expected_affine(orientation, slices, pixel=(0.5, 0.75)):
    orientation = np.asarray(orientation, dtype=float)
    normal = np.cross(orientation[:3], orientation[3:])
    lps = np.eye(4)
    lps[:3, 0] = orientation[:3] * pixel[0]
    lps[:3, 1] = orientation[3:] * pixel[1]
    lps[:3, 2] = normal * ((slices[-1][0] - slices[0][0]) @ normal) / (len(slices) - 1)
    lps[:3, 3] = slices[0][0]
    return LPS_TO_RAS @ lps


def check_volume(out, orientation, slices):
    img = nib.load(out)
    assert img.shape == (5, 4, len(slices))
    np.testing.assert_allclose(img.affine, expected_affine(orientation, slices), atol=1e-4)
    data = np.asarray(img.dataobj)
    for z, (_, hu) in enumerate(slices):
        # stored rows × columns; the volume is x = column, y = row.
        np.testing.assert_allclose(data[:, :, z], hu.T, rtol=1e-6, atol=1e-3)


OBLIQUE = (np.cos(0.4), np.sin(0.4), 0.0, 0.0, 0.0, -1.0)  # coronal-ish, rotated about z


@pytest.mark.parametrize("order", ["ascending", "descending", "shuffled"])
@pytest.mark.parametrize("orientation", [(1, 0, 0, 0, 1, 0), OBLIQUE], ids=["axial", "oblique"])
@pytest.mark.parametrize("slope, intercept, signed", [(1.0, -1024.0, False), (0.5, -1000.0, True),
                                                      (2.0, 0.0, False)])
def test_ct_voxels_and_geometry(tmp_path, run_uptake, order, orientation, slope, intercept,
                                signed):
    folder = tmp_path / "ct"
    _, slices = write_ct(folder, orientation=orientation, order=order, slope=slope,
                         intercept=intercept, signed=signed)
    out = tmp_path / "ct.nii.gz"
    proc = convert(run_uptake, folder, out)
    assert proc.returncode == 0, proc.stderr
    check_volume(out, orientation, slices)


@pytest.mark.parametrize("syntax", [ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian,
                                    RLELossless], ids=["implicit", "deflated", "rle"])
@pytest.mark.parametrize("signed", [False, True])
def test_transfer_syntaxes(tmp_path, run_uptake, syntax, signed):
    import pydicom

    folder = tmp_path / "ct"
    _, slices = write_ct(folder, syntax=syntax, signed=signed, seed=3)
    for path in folder.glob("*.dcm"):
        assert pydicom.dcmread(path).file_meta.TransferSyntaxUID == syntax
    out = tmp_path / "ct.nii.gz"
    proc = convert(run_uptake, folder, out)
    assert proc.returncode == 0, proc.stderr
    check_volume(out, (1, 0, 0, 0, 1, 0), slices)


def test_a_corrupt_rle_slice_names_the_file(tmp_path, run_uptake):
    import pydicom
    from pydicom.encaps import encapsulate

    folder = tmp_path / "ct"
    write_ct(folder, syntax=RLELossless)
    path = sorted(folder.glob("*.dcm"))[2]
    ds = pydicom.dcmread(path)
    frame = next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1))
    ds.PixelData = encapsulate([frame[: len(frame) // 2]])
    ds.save_as(path, enforce_file_format=True)
    proc = convert(run_uptake, folder, tmp_path / "ct.nii.gz")
    assert proc.returncode != 0
    assert path.name in proc.stderr and "RLE" in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr


def test_a_jpeg_series_is_refused_naming_the_syntax(tmp_path, run_uptake):
    import pydicom
    from pydicom.encaps import encapsulate

    folder = tmp_path / "ct"
    write_ct(folder)
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.70"
        ds.PixelData = encapsulate([b"\xff\xd8 not a real JPEG \xff\xd9"])
        ds["PixelData"].VR = "OB"
        ds.save_as(path, enforce_file_format=True)
    proc = convert(run_uptake, folder, tmp_path / "ct.nii.gz")
    assert proc.returncode != 0
    assert "1.2.840.10008.1.2.4.70" in proc.stderr and "JPEG Lossless" in proc.stderr, proc.stderr


def test_a_tilted_gantry_is_refused(tmp_path, run_uptake):
    folder = tmp_path / "ct"
    write_ct(folder, tilt_mm=0.4, order="ascending")
    proc = convert(run_uptake, folder, tmp_path / "ct.nii.gz")
    assert proc.returncode != 0
    assert "gantry tilt" in proc.stderr and "ct001.dcm" in proc.stderr, proc.stderr


def test_a_missing_slice_is_refused_naming_the_gap(tmp_path, run_uptake):
    folder = tmp_path / "ct"
    write_ct(folder, offsets=[0.0, 2.5, 5.0, 10.0, 12.5], order="ascending")
    proc = convert(run_uptake, folder, tmp_path / "ct.nii.gz")
    assert proc.returncode != 0
    assert "missing" in proc.stderr and "5.0000 mm" in proc.stderr, proc.stderr
    assert "ct002.dcm" in proc.stderr and "ct003.dcm" in proc.stderr, proc.stderr


def test_two_series_in_one_folder(tmp_path, run_uptake):
    folder = tmp_path / "study"
    thin, thin_slices = write_ct(folder / "a", n=6, description="thin")
    thick, _ = write_ct(folder / "b", n=3, spacing=5.0, description="thick", seed=1)
    for sub in ("a", "b"):
        for path in (folder / sub).glob("*.dcm"):
            path.rename(folder / f"{sub}_{path.name}")
    proc = convert(run_uptake, folder, tmp_path / "ct.nii.gz")
    assert proc.returncode != 0
    for needle in (thin, thick, "6 files", "3 files", '"thin"', '"thick"'):
        assert needle in proc.stderr, proc.stderr
    out = tmp_path / "thin.nii.gz"
    proc = convert(run_uptake, folder, out, "--series", thin)
    assert proc.returncode == 0, proc.stderr
    check_volume(out, (1, 0, 0, 0, 1, 0), thin_slices)
    proc = convert(run_uptake, folder, out, "--series", "1.2.3.4")
    assert proc.returncode != 0 and "1.2.3.4 is not in" in proc.stderr and thin in proc.stderr


@pytest.fixture
def pet_and_ct(shared_data, tmp_path):
    """A PET and a CT series in one folder; the CT's FrameOfReferenceUID differs from the PET's."""
    instances, _ = load_cases(shared_data)["SIEMENS"]
    folder = tmp_path / "study"
    pet_frame = generate_uid()
    write_series(folder / "pet", instances * 2,
                 edit=lambda ds: setattr(ds, "FrameOfReferenceUID", pet_frame))
    ct_uid, _ = write_ct(folder / "ct", n=8, spacing=3.0)
    for sub in ("pet", "ct"):
        for path in (folder / sub).glob("*.dcm"):
            path.rename(folder / f"{sub}_{path.name}")
    return folder, ct_uid


def test_modality_picks_the_series(pet_and_ct, tmp_path, run_uptake):
    folder, ct_uid = pet_and_ct
    proc = convert(run_uptake, folder, tmp_path / "x.nii.gz")
    assert proc.returncode != 0 and "--modality" in proc.stderr, proc.stderr
    proc = convert(run_uptake, folder, tmp_path / "ct.nii.gz", "--modality", "ct")
    assert proc.returncode == 0, proc.stderr
    assert nib.load(tmp_path / "ct.nii.gz").shape == (5, 4, 8)
    proc = convert(run_uptake, folder, tmp_path / "pt.nii.gz", "--modality", "pt")
    assert proc.returncode == 0, proc.stderr
    assert nib.load(tmp_path / "pt.nii.gz").shape == (5, 4, 6)
    proc = run_uptake("suv", folder, "--series", ct_uid, check=False)
    assert proc.returncode != 0 and '"CT"' in proc.stderr and "PET (PT)" in proc.stderr


def test_analyze_refuses_a_frame_of_reference_mismatch(pet_and_ct, tmp_path, run_uptake):
    folder, _ = pet_and_ct
    proc = run_uptake("analyze", "--pet", folder, "--ct", folder, "--tracer", "psma",
                      "--out", tmp_path / "out", "--device", "cpu", check=False)
    assert proc.returncode != 0
    assert "different frames of reference" in proc.stderr, proc.stderr
    assert "--allow-frame-of-reference-mismatch" in proc.stderr, proc.stderr


def test_analyze_names_the_ct_series_to_choose(pet_and_ct, tmp_path, run_uptake):
    folder, ct_uid = pet_and_ct
    write_ct(folder / "more", n=4, description="second CT", seed=5)
    for path in (folder / "more").glob("*.dcm"):
        path.rename(folder / f"more_{path.name}")
    proc = run_uptake("analyze", "--pet", folder, "--ct", folder, "--tracer", "psma",
                      "--out", tmp_path / "out", "--device", "cpu", check=False)
    assert proc.returncode != 0
    for needle in ("2 CT series", ct_uid, '"second CT"', "--ct-series"):
        assert needle in proc.stderr, proc.stderr
