"""The shipped ctypes binding (python/uptake) against the release library."""

import json
import struct
import sys

import numpy as np
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "python"))


@pytest.fixture(scope="module")
def uptake(uptake_lib):
    import os

    os.environ["UPTAKE_LIB"] = str(uptake_lib)
    import uptake as module

    return module


def test_versions(uptake):
    assert uptake.abi_version() == uptake.ABI_VERSION
    import tomllib

    cargo = tomllib.loads((ROOT / "Cargo.toml").read_text())
    assert uptake.version() == cargo["package"]["version"]


def test_analyzer_lifecycle_and_errors(uptake):
    with uptake.Analyzer(device="cpu", threads=1) as a:
        assert a.device == "cpu"
    with pytest.raises(ValueError):
        a.device  # closed
    a.close()  # second close is a no-op
    with pytest.raises(uptake.UptakeError) as e:
        uptake.Analyzer(model_path="/nonexistent/model.safetensors")
    assert e.value.status == uptake.ERR_INVALID_ARGUMENT
    assert "model file" in e.value.message
    # device="cuda": a device error where no CUDA device opens (CI), an analyzer where one does.
    try:
        with uptake.Analyzer(device="cuda") as a:
            assert a.device == "cuda"
    except uptake.UptakeError as e:
        assert e.status == uptake.ERR_DEVICE
        assert "CUDA" in e.message
    with pytest.raises(uptake.UptakeError) as e:
        uptake.Analyzer(threads=100000)
    assert e.value.status == uptake.ERR_INVALID_ARGUMENT


def test_check_volume(uptake):
    data = np.arange(24, dtype=np.float32).reshape(4, 3, 2)
    before = data.copy()
    uptake.check_volume(data, spacing_mm=(4, 4, 3))
    assert np.array_equal(data, before)
    rejected = [
        (dict(data=data, spacing_mm=(4, 0, 3)), "spacing"),
        (dict(data=data, spacing_mm=(4, 4, 3), origin_mm=(0, np.nan, 0)), "origin"),
        (dict(data=data, spacing_mm=(4, 4, 3), direction=[[1, 0.2, 0], [0, 1, 0], [0, 0, 1]]), "orthonormal"),
        (dict(data=np.zeros((0, 3, 2), np.float32), spacing_mm=(1, 1, 1)), "zero"),
    ]
    for kwargs, needle in rejected:
        with pytest.raises(uptake.UptakeError) as e:
            uptake.check_volume(**kwargs)
        assert e.value.status == uptake.ERR_INVALID_ARGUMENT
        assert needle in e.value.message
    bad = data.copy()
    bad[1, 2, 1] = np.inf
    with pytest.raises(uptake.UptakeError) as e:
        uptake.check_volume(bad, spacing_mm=(1, 1, 1))
    assert "non-finite" in e.value.message


def test_log_callback(uptake):
    lines = []
    uptake.set_log_callback(lambda level, msg: lines.append((level, msg)), level="info")
    uptake.Analyzer(device="cpu").close()
    uptake.set_log_callback(None)
    assert any("analyzer ready" in m for _, m in lines)
    count = len(lines)
    uptake.Analyzer(device="cpu").close()
    assert len(lines) == count


def _blob_study(uptake):
    n = 24
    x, y, z = np.meshgrid(*[np.arange(n)] * 3, indexing="ij")
    pet = 0.5 + 12.0 * np.exp(-((x - 8) ** 2 + (y - 10) ** 2 + (z - 12) ** 2) / 4.0)
    origin = (-48.0, -48.0, -48.0)
    return (
        uptake.Volume(pet.astype(np.float32), (4, 4, 4), origin),
        uptake.Volume(np.full((n, n, n), 40.0, np.float32), (4, 4, 4), origin),
    )


def test_analyze_through_the_binding(uptake):
    pet, ct = _blob_study(uptake)
    stages = []
    with uptake.Analyzer(device="cpu") as a:
        report, labels = a.analyze(pet, ct, "psma", progress=lambda s, f: stages.append(s))
        assert report["schema_version"] >= 1
        assert len(report["findings"]) == 1
        finding = report["findings"][0]
        peak = np.unravel_index(np.argmax(pet.data), pet.data.shape)
        assert tuple(finding["region"]["max_voxel"]) == tuple(int(i) for i in peak)
        assert labels.shape == pet.data.shape
        assert labels[peak] == finding["region"]["id"]
        assert (labels != 0).sum() == finding["region"]["voxel_count"]
        assert stages[0] == "check" and stages[-1] == "staging"
        # Bq/mL with a factor gives the same regions as SUV.
        bqml = uptake.Volume(pet.data / 2.5e-4, pet.spacing_mm, pet.origin_mm)
        report2, labels2 = a.analyze(bqml, ct, "psma", suv_factor=2.5e-4)
        assert np.array_equal(labels, labels2)
        # The operating points reach staging: by default the embedded model's for the study's
        # tracer (the committed file's metadata: its own where it lists the tracer, else the
        # general ones), one threshold alone holds for every finding, a distant one for distant
        # findings only; both outside (0, 1] are refused.
        raw = (ROOT / "models" / "default.safetensors").read_bytes()
        meta = json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
        general = (float(meta["threshold"]), float(meta.get("distant_threshold", meta["threshold"])))
        own = json.loads(meta.get("operating_points", "{}"))
        for tracer in ("psma", "fdg"):
            point = own.get(tracer)
            expected = (point["threshold"], point["distant_threshold"]) if point else general
            assert a.operating_points(tracer) == pytest.approx(expected)
            config = a.analyze(pet, ct, tracer)[0]["staging_config"]
            assert (config["threshold"], config["distant_threshold"]) == pytest.approx(expected)
        with pytest.raises(ValueError):
            a.operating_points("fluciclovine")
        psma_threshold = a.operating_points("psma")[0]
        only_distant, _ = a.analyze(pet, ct, "psma", distant_threshold=0.7)
        assert only_distant["staging_config"]["threshold"] == pytest.approx(psma_threshold)
        assert only_distant["staging_config"]["distant_threshold"] == pytest.approx(0.7)
        report3, _ = a.analyze(pet, ct, "psma", threshold=0.25)
        assert report3["staging_config"]["threshold"] == pytest.approx(0.25)
        assert report3["staging_config"]["distant_threshold"] == pytest.approx(0.25)
        report4, _ = a.analyze(pet, ct, "psma", threshold=0.25, distant_threshold=1.0)
        assert report4["staging_config"]["distant_threshold"] == pytest.approx(1.0)
        for bad in ({"threshold": 1.5}, {"distant_threshold": 1.5}, {"distant_threshold": float("nan")}):
            with pytest.raises(uptake.UptakeError) as e:
                a.analyze(pet, ct, "psma", **bad)
            assert e.value.status == uptake.ERR_INVALID_ARGUMENT
            assert next(iter(bad)) in e.value.message
        with pytest.raises(uptake.UptakeError) as e:
            a.analyze(pet, ct, "psma", progress=lambda s, f: s == "regions")
        assert e.value.status == uptake.ERR_CANCELLED
        far = uptake.Volume(ct.data, ct.spacing_mm, (5000.0, 0.0, 0.0))
        with pytest.raises(uptake.UptakeError) as e:
            a.analyze(pet, far, "fdg")
        assert e.value.status == uptake.ERR_INVALID_ARGUMENT
