"""Writes the seed corpus of the fuzz targets into fuzz/corpus/<target>/ (a few KB in all).

Run with the test venv (nibabel, pydicom, numpy): .venv/bin/python fuzz/make_corpus.py
Seeds are valid or nearly valid inputs, so the fuzzer starts deep inside each parser.
"""
import gzip
import io
import json
import struct
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

ROOT = Path(__file__).resolve().parent
CORPUS = ROOT / "corpus"
MODEL = ROOT.parent / "models" / "default.safetensors"


def put(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def nifti_seeds():
    rng = np.random.default_rng(28)
    for name, dtype, shape in [("f32", np.float32, (4, 3, 2)), ("i16", np.int16, (3, 3, 3)),
                               ("u8_4d", np.uint8, (2, 2, 2, 2))]:
        data = (rng.random(shape) * 100).astype(dtype)
        affine = np.diag([2.0, 3.0, 4.0, 1.0])
        img = nib.Nifti1Image(data, affine)
        img.header.set_qform(affine, 1)
        img.header["scl_slope"] = 1.5 if dtype == np.int16 else 1.0
        raw = img.to_bytes()
        put("nifti", f"{name}.nii", raw)
        put("nifti", f"{name}.nii.gz", gzip.compress(raw, mtime=0))
    img2 = nib.Nifti2Image(np.ones((2, 2, 2), np.float64), np.eye(4))
    put("nifti", "nifti2_f64.nii", img2.to_bytes())


def dicom_slice(z, series_uid, study_uid):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.128"
    meta.MediaStorageSOPInstanceUID = generate_uid(entropy_srcs=[series_uid, str(z)])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "PT"
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Units = "BQML"
    ds.DecayCorrection = "START"
    ds.SeriesDate = ds.AcquisitionDate = "20260101"
    ds.SeriesTime = ds.AcquisitionTime = "100000"
    ds.PatientWeight = "70"
    seq = pydicom.Dataset()
    seq.RadiopharmaceuticalStartTime = "090000"
    seq.RadionuclideTotalDose = "200000000"
    seq.RadionuclideHalfLife = "6586.2"
    ds.RadiopharmaceuticalInformationSequence = [seq]
    ds.Rows, ds.Columns = 4, 4
    ds.PixelSpacing = ["4", "4"]
    ds.SliceThickness = "3"
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.ImagePositionPatient = ["0", "0", str(3 * z)]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = "2.5"
    ds.RescaleIntercept = "0"
    ds.PixelData = (np.arange(16, dtype=np.uint16) * (z + 1)).tobytes()
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def frame(files):
    """The dicom target's input: count byte, then u32 lengths of all files but the last."""
    out = bytes([len(files) - 1])
    for f in files[:-1]:
        out += struct.pack("<I", len(f)) + f
    return out + files[-1]


def dicom_seeds():
    slices = [dicom_slice(z, "1.2.826.0.1.28.2", "1.2.826.0.1.28.1") for z in range(3)]
    put("dicom", "one_slice", frame(slices[:1]))
    put("dicom", "two_slices", frame(slices[:2]))
    put("dicom", "three_slices", frame(slices))
    put("dicom", "cut_slice", frame([slices[0], slices[1][: len(slices[1]) // 2]]))


def model_seeds():
    raw = MODEL.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    # The shipped header with the data cut short (the container must refuse it), ...
    put("model", "default_header_cut", raw[: 8 + n + 256])
    # ... and a small valid container: the shipped metadata and one tiny fp16 tensor.
    small = {"__metadata__": header.get("__metadata__", {}),
             "w": {"dtype": "F16", "shape": [2, 2], "data_offsets": [0, 8]}}
    h = json.dumps(small).encode()
    put("model", "metadata_one_tensor", struct.pack("<Q", len(h)) + h + np.ones(4, np.float16).tobytes())


def analyze_seeds():
    # Layout in fuzz_targets/analyze.rs: per volume 3 dims, 3 spacings, 3 origins (sign + length),
    # a direction; then the tracer bit; then voxel bytes.
    def geom(dims, spacing_mode, spacing, direction):
        b = bytes(d - 1 for d in dims)
        for _ in range(3):
            b += bytes([spacing_mode, spacing])
        for _ in range(3):
            b += bytes([0, 0, 16])
        return b + bytes(direction)
    voxels = bytes(range(0, 256, 7)) + bytes([250] * 8)
    put("analyze", "ordinary", geom((12, 12, 16), 0, 40, (0, 0)) + geom((8, 8, 16), 0, 88, (0, 0)) + b"\0" + voxels)
    put("analyze", "fdg_flipped", geom((10, 9, 12), 0, 40, (3, 5)) + geom((10, 9, 12), 0, 40, (0, 0)) + b"\1" + voxels)
    put("analyze", "huge_spacing", geom((4, 4, 4), 2, 1, (0, 0)) + geom((4, 4, 4), 0, 40, (0, 0)) + b"\0" + voxels)
    put("analyze", "tiny_spacing", geom((6, 6, 6), 1, 3, (0, 0)) + geom((6, 6, 6), 1, 3, (0, 0)) + b"\1" + voxels)


if __name__ == "__main__":
    nifti_seeds()
    dicom_seeds()
    model_seeds()
    analyze_seeds()
