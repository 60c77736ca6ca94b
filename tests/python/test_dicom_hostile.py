"""Issue #28: hostile PET DICOM series written with pydicom (the oracle for what a valid file is),
read by `uptake suv`, and hostile SUV attributes through the C ABI (`uptake_suv_factor`, ctypes).
Truncated slices, short pixel data, NaN or absurd attributes and overflowing factors must be
clear errors naming the file or attribute: never success, a shorter series or non-finite voxels.
"""

import ctypes
import json

import nibabel as nib
import numpy as np
import pytest

from test_suv_dicom import load_cases, run_suv, write_series

UPTAKE_OK = 0


@pytest.fixture
def siemens(shared_data):
    instances, expected = load_cases(shared_data)["SIEMENS"]
    return instances * 2, expected  # six slices


def files_by_position(folder):
    """The series' files sorted by ImagePositionPatient z (write_series shuffles file names)."""
    import pydicom

    paths = sorted(folder.glob("*.dcm"))
    return sorted(paths, key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]))


@pytest.mark.parametrize("end", [0, -1])
@pytest.mark.parametrize("cut", [1, 7, 40, 200])
def test_a_truncated_end_slice_names_the_file(siemens, tmp_path, run_uptake, end, cut):
    instances, _ = siemens
    folder = tmp_path / "series"
    write_series(folder, instances)
    path = files_by_position(folder)[end]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - cut])
    proc, _ = run_suv(run_uptake, folder)
    assert proc.returncode != 0, f"{path.name} cut by {cut} bytes was read: {proc.stdout}"
    assert path.name in proc.stderr, proc.stderr
    assert "panicked" not in proc.stderr


def test_a_truncated_middle_slice_is_corrupt(siemens, tmp_path, run_uptake):
    instances, _ = siemens
    folder = tmp_path / "series"
    write_series(folder, instances)
    path = files_by_position(folder)[2]
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 11])
    proc, _ = run_suv(run_uptake, folder)
    assert proc.returncode != 0
    assert path.name in proc.stderr and "truncated or corrupt" in proc.stderr, proc.stderr
    assert "missing or extra slice" not in proc.stderr


def test_short_pixel_data_element_is_an_error(siemens, tmp_path, run_uptake):
    """A PixelData element complete in itself but shorter than Rows × Columns × 2 bytes."""
    instances, _ = siemens
    folder = tmp_path / "series"

    def short(ds):
        ds.PixelData = ds.PixelData[:-4]

    write_series(folder, instances, edit=short)
    proc, _ = run_suv(run_uptake, folder)
    assert proc.returncode != 0
    assert "PixelData" in proc.stderr and ".dcm" in proc.stderr, proc.stderr


def test_junk_beside_the_series_is_skipped(siemens, tmp_path, run_uptake):
    instances, expected = siemens
    folder = tmp_path / "series"
    write_series(folder, instances)
    (folder / "README").write_text("exported by the scanner\n" * 20)
    (folder / "LOCKFILE").write_bytes(b"")
    proc, report = run_suv(run_uptake, folder)
    assert proc.returncode == 0, proc.stderr
    assert report["dims"][2] == 6
    assert abs(report["factor"] / expected - 1) < 1e-6


@pytest.mark.filterwarnings("ignore:Invalid value for VR DS")  # NaN is the point of the test
def test_nan_weight_names_the_attribute_and_file(siemens, tmp_path, run_uptake):
    instances, _ = siemens
    folder = tmp_path / "series"
    write_series(folder, [dict(i, PatientWeight="NaN") for i in instances])
    proc, _ = run_suv(run_uptake, folder)
    assert proc.returncode != 0
    assert "PatientWeight" in proc.stderr and "not a finite number" in proc.stderr, proc.stderr
    assert ".dcm" in proc.stderr
    assert "differs" not in proc.stderr


def set_rp(key, value):
    def edit(ds):
        setattr(ds.RadiopharmaceuticalInformationSequence[0], key, value)

    return edit


@pytest.mark.parametrize(
    "name, kwargs, needle",
    [
        ("weight", dict(instance_edit={"PatientWeight": "1e308"}), "PatientWeight"),
        ("grams", dict(instance_edit={"PatientWeight": "67000"}), "PatientWeight"),
        ("half_life", dict(edit=set_rp("RadionuclideHalfLife", "1e-300")), "RadionuclideHalfLife"),
        ("dose", dict(edit=set_rp("RadionuclideTotalDose", "1e-300")), "RadionuclideTotalDose"),
        ("megabecquerel", dict(edit=set_rp("RadionuclideTotalDose", "374")),
         "RadionuclideTotalDose"),
        ("year_1900", dict(edit=set_rp("RadiopharmaceuticalStartDateTime", "19000101083045")),
         "half-lives"),
    ],
)
def test_implausible_factors_are_errors(siemens, tmp_path, run_uptake, name, kwargs, needle):
    instances, _ = siemens
    folder = tmp_path / name
    changes = kwargs.pop("instance_edit", {})
    write_series(folder, [dict(i, **changes) for i in instances], **kwargs)
    out = tmp_path / f"{name}.nii.gz"
    proc, report = run_suv(run_uptake, folder, out)
    assert proc.returncode != 0, f"{name}: factor {report and report['factor']} accepted"
    assert needle in proc.stderr, proc.stderr
    assert not out.exists()


def test_suv_output_is_finite_or_an_error(siemens, tmp_path, run_uptake):
    """Rescaled values near f32::MAX and a plausible factor above 1 (1000 kg, 1 kBq, ADMIN)."""
    instances, _ = siemens
    folder = tmp_path / "series"
    heavy = [dict(i, PatientWeight="1000", DecayCorrection="ADMIN") for i in instances]

    def huge(ds):
        ds.RescaleSlope = "1e33"
        ds.RadiopharmaceuticalInformationSequence[0].RadionuclideTotalDose = "1000"

    write_series(folder, heavy, edit=huge)
    out = tmp_path / "suv.nii.gz"
    proc, _ = run_suv(run_uptake, folder, out)
    if proc.returncode == 0:
        assert np.isfinite(np.asarray(nib.load(out).dataobj)).all(), "non-finite SUV voxels"
    else:
        assert "f32" in proc.stderr, proc.stderr


class SuvMetadata(ctypes.Structure):
    """`UptakeSuvMetadata` of include/uptake.h."""

    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("patient_weight_kg", ctypes.c_double),
        ("radionuclide_total_dose_bq", ctypes.c_double),
        ("radionuclide_half_life_s", ctypes.c_double),
        ("philips_suv_scale_factor", ctypes.c_double),
        ("philips_activity_concentration_scale_factor", ctypes.c_double),
        ("units", ctypes.c_char_p),
        ("decay_correction", ctypes.c_char_p),
        ("corrected_image", ctypes.c_char_p),
        ("radiopharmaceutical_start_datetime", ctypes.c_char_p),
        ("radiopharmaceutical_start_time", ctypes.c_char_p),
        ("series_date", ctypes.c_char_p),
        ("series_time", ctypes.c_char_p),
        ("acquisition_date", ctypes.c_char_p),
        ("acquisition_time", ctypes.c_char_p),
    ]


@pytest.fixture(scope="module")
def lib(uptake_lib):
    lib = ctypes.CDLL(str(uptake_lib))
    lib.uptake_suv_metadata_init.argtypes = [ctypes.POINTER(SuvMetadata)]
    lib.uptake_suv_metadata_init.restype = ctypes.c_uint32
    lib.uptake_suv_factor.argtypes = [ctypes.POINTER(SuvMetadata), ctypes.POINTER(ctypes.c_double)]
    lib.uptake_suv_factor.restype = ctypes.c_uint32
    lib.uptake_last_error.restype = ctypes.c_char_p
    return lib


def siemens_metadata(lib, **changes):
    m = SuvMetadata()
    assert lib.uptake_suv_metadata_init(ctypes.byref(m)) == UPTAKE_OK
    m.patient_weight_kg = 67.0
    m.radionuclide_total_dose_bq = 374e6
    m.radionuclide_half_life_s = 6586.2
    m.units = b"BQML"
    m.decay_correction = b"START"
    m.corrected_image = b"NORM\\ATTN\\DECY"
    m.radiopharmaceutical_start_datetime = b"20201217083045"
    m.series_date = b"20201217"
    m.series_time = b"104829"
    m.acquisition_date = b"20201217"
    m.acquisition_time = b"104830.351370"
    for key, value in changes.items():
        setattr(m, key, value)
    return m


def test_abi_factor_of_the_valid_header(lib, shared_data):
    expected = json.loads((shared_data / "suv-headers" / "expected.json").read_text())["cases"]
    f = ctypes.c_double(-1.0)
    assert lib.uptake_suv_factor(ctypes.byref(siemens_metadata(lib)), ctypes.byref(f)) == UPTAKE_OK
    assert abs(f.value / expected["SIEMENS"] - 1) < 1e-6


@pytest.mark.parametrize(
    "changes, needle",
    [
        (dict(patient_weight_kg=1e308), b"PatientWeight"),
        (dict(patient_weight_kg=float("nan")), b"PatientWeight"),
        (dict(patient_weight_kg=float("inf")), b"PatientWeight"),
        (dict(radionuclide_half_life_s=1e-300), b"RadionuclideHalfLife"),
        (dict(radionuclide_half_life_s=float("inf")), b"RadionuclideHalfLife"),
        (dict(radionuclide_total_dose_bq=1e-300), b"RadionuclideTotalDose"),
        (dict(radionuclide_total_dose_bq=float("nan")), b"RadionuclideTotalDose"),
        (dict(radiopharmaceutical_start_datetime=b"19000101083045"), b"half-lives"),
        (dict(units=b"CNTS", philips_suv_scale_factor=float("inf")), b"7053,1000"),
        (dict(units=b"CNTS", philips_suv_scale_factor=-2.0), b"7053,1000"),
        (dict(units=b"CNTS", philips_activity_concentration_scale_factor=1e308),
         b"SUV factor"),
    ],
)
def test_abi_rejects_implausible_or_overflowing_factors(lib, changes, needle):
    f = ctypes.c_double(-1.0)
    status = lib.uptake_suv_factor(ctypes.byref(siemens_metadata(lib, **changes)), ctypes.byref(f))
    assert status != UPTAKE_OK, f"{changes}: factor {f.value} accepted"
    assert f.value == -1.0, "output untouched on error"
    assert needle in lib.uptake_last_error(), lib.uptake_last_error()


def test_implicit_vr_series_give_their_factors(shared_data, tmp_path, run_uptake):
    """Every shared case re-saved in implicit VR little endian, where private attributes (the
    Philips scale factors) carry no VR: the length check walks implicit VR and the factors match."""
    import pydicom
    from pydicom.uid import ImplicitVRLittleEndian

    for name, (instances, expected) in load_cases(shared_data).items():
        folder = tmp_path / name
        write_series(folder, instances)
        for path in folder.glob("*.dcm"):
            ds = pydicom.dcmread(path)
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
            ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
        proc, report = run_suv(run_uptake, folder)
        assert proc.returncode == 0, f"{name}: {proc.stderr}"
        assert abs(report["factor"] / expected - 1) < 1e-6, f"{name}: {report['factor']}"


def test_a_dicomdir_beside_the_series_is_skipped(siemens, tmp_path, run_uptake):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    instances, expected = siemens
    folder = tmp_path / "series"
    write_series(folder, instances)
    index = Dataset()
    index.file_meta = FileMetaDataset()
    index.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"  # Media Storage Directory
    index.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    index.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    index.FileSetID = "PET"
    index.save_as(folder / "DICOMDIR", enforce_file_format=True)
    proc, report = run_suv(run_uptake, folder)
    assert proc.returncode == 0, proc.stderr
    assert report["dims"][2] == 6 and abs(report["factor"] / expected - 1) < 1e-6


def test_compressed_series_are_named_as_such_not_as_corrupt(siemens, tmp_path, run_uptake):
    """Encapsulated pixel data (fragments of defined length) passes the length check and is then
    refused for its transfer syntax."""
    import pydicom
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    instances, _ = siemens
    folder = tmp_path / "series"
    write_series(folder, instances)
    for path in folder.glob("*.dcm"):
        ds = pydicom.dcmread(path)
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([b"\xff\xd8 not a real JPEG \xff\xd9", b"second fragment"])
        ds["PixelData"].VR = "OB"
        ds["PixelData"].is_undefined_length = True
        ds.save_as(path, enforce_file_format=True)
    proc, _ = run_suv(run_uptake, folder)
    assert proc.returncode != 0
    assert "compressed" in proc.stderr and "corrupt" not in proc.stderr, proc.stderr
