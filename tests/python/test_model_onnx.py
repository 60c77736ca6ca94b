"""The CPU engine (DESIGN S7) against an independent oracle: the same network and weights built
with the `onnx` helper API and run by onnxruntime. The model file is read here with numpy alone
(8-byte little-endian header length, JSON header, raw little-endian data), which also checks
docs/model-format.md. Our outputs come through the C ABI (`uptake_model_infer`).

The helpers are shared with scripts/bench_model.py.
"""

import ctypes
import json
import pathlib
import struct

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFAULT_MODEL = ROOT / "models" / "default.safetensors"

# DESIGN S7: the engine within 1e-4 relative (L2) of an independent implementation.
TOLERANCE = 1e-4

UPTAKE_OK = 0
UPTAKE_ERR_INVALID_ARGUMENT = 1
UPTAKE_ERR_MODEL = 3


# ---------------------------------------------------------------- model file, numpy only
def read_safetensors(path):
    """Returns (metadata dict of str, {name: float32 array}, header dict)."""
    raw = pathlib.Path(path).read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    data = raw[8 + n :]
    meta = header.pop("__metadata__", {})
    tensors = {}
    dtypes = {"F16": np.float16, "F32": np.float32}
    for name, info in header.items():
        start, end = info["data_offsets"]
        arr = np.frombuffer(data[start:end], dtype=np.dtype(dtypes[info["dtype"]]).newbyteorder("<"))
        tensors[name] = arr.reshape(info["shape"]).astype(np.float32)
    return meta, tensors, header


def write_safetensors(path, meta, tensors):
    """Writes fp16 tensors (names sorted) with string metadata."""
    header = {"__metadata__": meta}
    blobs, offset = [], 0
    for name in sorted(tensors):
        blob = np.asarray(tensors[name], dtype="<f2").tobytes()
        header[name] = {
            "dtype": "F16",
            "shape": list(np.shape(tensors[name])),
            "data_offsets": [offset, offset + len(blob)],
        }
        blobs.append(blob)
        offset += len(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    pathlib.Path(path).write_bytes(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def random_weights(tensors, seed):
    """Same names and shapes, new He-scaled weights and biases, rounded to fp16."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in tensors.items():
        fan_in = int(np.prod(t.shape[1:])) if t.ndim > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if name.endswith(".weight") else 0.1
        out[name] = (rng.standard_normal(t.shape) * scale).astype(np.float16).astype(np.float32)
    return out


# ---------------------------------------------------------------- ONNX oracle
def build_onnx(meta, tensors):
    """The network described by the `architecture` metadata, as an ONNX model."""
    from onnx import TensorProto, helper, numpy_helper

    arch = json.loads(meta["architecture"])
    spec = json.loads(meta["input"])
    channels = 2 * len(spec["plane_offsets_mm"])
    side = spec["plane_size"]
    n_classes = len(json.loads(meta["classes"]))
    nodes, inits = [], []
    counter = [0]

    def fresh(prefix):
        counter[0] += 1
        return f"{prefix}_{counter[0]}"

    def weight(name):
        inits.append(numpy_helper.from_array(tensors[name].astype(np.float32), name))
        return name

    def layer(x, spec):
        kind = spec["type"]
        y = fresh(kind)
        if kind == "conv2d":
            p, k = spec["padding"], spec["kernel_size"]
            nodes.append(
                helper.make_node(
                    "Conv",
                    [x, weight(spec["name"] + ".weight"), weight(spec["name"] + ".bias")],
                    [y],
                    kernel_shape=[k, k],
                    pads=[p, p, p, p],
                )
            )
        elif kind == "relu":
            nodes.append(helper.make_node("Relu", [x], [y]))
        elif kind == "max_pool2d":
            s = spec["size"]
            nodes.append(helper.make_node("MaxPool", [x], [y], kernel_shape=[s, s], strides=[s, s]))
        elif kind == "flatten":
            nodes.append(helper.make_node("Flatten", [x], [y], axis=1))
        elif kind == "concat_tracer":
            nodes.append(helper.make_node("Concat", [x, "tracer"], [y], axis=1))
        elif kind == "linear":
            nodes.append(
                helper.make_node(
                    "Gemm",
                    [x, weight(spec["name"] + ".weight"), weight(spec["name"] + ".bias")],
                    [y],
                    transB=1,
                )
            )
        else:
            raise ValueError(f"unknown layer {kind}")
        return y

    x = "x"
    for spec_ in arch["trunk"]:
        x = layer(x, spec_)
    features = x
    outputs = []
    for head in arch["heads"]:
        y = features
        for spec_ in head["layers"]:
            y = layer(y, spec_)
        nodes.append(helper.make_node("Identity", [y], [head["name"]]))
        width = 1 if head["name"] == "suspicious" else n_classes
        outputs.append(helper.make_tensor_value_info(head["name"], TensorProto.FLOAT, ["N", width]))
    graph = helper.make_graph(
        nodes,
        "uptake_v1",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", channels, side, side]),
            helper.make_tensor_value_info("tracer", TensorProto.FLOAT, ["N", 1]),
        ],
        outputs,
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model


def ort_session(onnx_model, threads):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(
        onnx_model.SerializeToString(), opts, providers=["CPUExecutionProvider"]
    )


def ort_logits(session, x, bits):
    sus, loc = session.run(["suspicious", "location"], {"x": x, "tracer": bits.reshape(-1, 1)})
    return np.concatenate([sus, loc], axis=1)


# ---------------------------------------------------------------- our C ABI
class AnalyzerOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device", ctypes.c_uint32),
        ("threads", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("model_path", ctypes.c_char_p),
    ]


class ModelInfo(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("model_version", ctypes.c_uint32),
        ("input_channels", ctypes.c_uint32),
        ("plane_size", ctypes.c_uint32),
        ("class_count", ctypes.c_uint32),
        ("trained", ctypes.c_uint32),
        ("threshold", ctypes.c_float),
        ("distant_threshold", ctypes.c_float),
        ("pixel_mm", ctypes.c_double),
        ("flops_per_region", ctypes.c_double),
    ]


class Analyzer:
    """An `UptakeAnalyzer` on the CPU with its model, through ctypes."""

    def __init__(self, lib_path, model_path=None, threads=0):
        lib = ctypes.CDLL(str(lib_path))
        self.lib = lib
        lib.uptake_last_error.restype = ctypes.c_char_p
        lib.uptake_analyzer_free.argtypes = [ctypes.c_void_p]
        lib.uptake_model_infer.argtypes = [
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_void_p,
            ctypes.c_size_t,
        ]
        opts = AnalyzerOptions()
        assert lib.uptake_analyzer_options_init(ctypes.byref(opts)) == UPTAKE_OK
        opts.device = 1  # UPTAKE_DEVICE_CPU
        opts.threads = threads
        opts.model_path = None if model_path is None else str(model_path).encode()
        handle = ctypes.c_void_p()
        status = lib.uptake_analyzer_create(ctypes.byref(opts), ctypes.byref(handle))
        if status != UPTAKE_OK:
            raise AnalyzerError(status, lib.uptake_last_error().decode())
        self.handle = handle
        info = ModelInfo()
        info.struct_size = ctypes.sizeof(ModelInfo)
        assert lib.uptake_analyzer_model_info(handle, ctypes.byref(info)) == UPTAKE_OK
        self.info = info

    def metadata(self):
        size = ctypes.c_size_t()
        self.lib.uptake_analyzer_model_metadata(self.handle, None, 0, ctypes.byref(size))
        buf = ctypes.create_string_buffer(size.value + 1)
        status = self.lib.uptake_analyzer_model_metadata(self.handle, buf, len(buf), None)
        assert status == UPTAKE_OK, self.lib.uptake_last_error()
        return json.loads(buf.value)

    def infer(self, x, bits):
        x = np.ascontiguousarray(x, dtype=np.float32)
        bits = np.ascontiguousarray(bits, dtype=np.float32)
        n = len(bits)
        out = np.empty((n, 1 + self.info.class_count), dtype=np.float32)
        status = self.lib.uptake_model_infer(
            self.handle, x.ctypes.data, bits.ctypes.data, n, out.ctypes.data, out.size
        )
        if status != UPTAKE_OK:
            raise AnalyzerError(status, self.lib.uptake_last_error().decode())
        return out

    def close(self):
        if self.handle:
            self.lib.uptake_analyzer_free(self.handle)
            self.handle = None


class AnalyzerError(Exception):
    def __init__(self, status, message):
        super().__init__(f"status {status}: {message}")
        self.status = status


def relative_l2(ours, oracle):
    return float(np.linalg.norm(ours - oracle) / np.linalg.norm(oracle))


def random_regions(n, channels, side, seed):
    rng = np.random.default_rng(seed)
    x = rng.random((n, channels, side, side), dtype=np.float32)
    bits = (np.arange(n) % 2).astype(np.float32)
    return x, bits


# ---------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def default_file():
    return read_safetensors(DEFAULT_MODEL)


@pytest.fixture(scope="module")
def random_model(tmp_path_factory, default_file):
    """A model file written here, with numpy, from the default's metadata and new weights."""
    meta, tensors, _ = default_file
    weights = random_weights(tensors, seed=11)
    meta = dict(meta, model_id="python-random-11")
    path = tmp_path_factory.mktemp("model") / "random.safetensors"
    write_safetensors(path, meta, weights)
    return path, meta, weights


@pytest.mark.parametrize("n", [1, 2, 7])
def test_engine_matches_onnxruntime_on_random_weights(uptake_lib, random_model, n):
    path, meta, weights = random_model
    analyzer = Analyzer(uptake_lib, path, threads=2)
    try:
        assert analyzer.metadata()["model_id"] == "python-random-11"
        x, bits = random_regions(n, analyzer.info.input_channels, analyzer.info.plane_size, seed=n)
        ours = analyzer.infer(x, bits)
        oracle = ort_logits(ort_session(build_onnx(meta, weights), 1), x, bits)
        err = relative_l2(ours, oracle)
        assert err < TOLERANCE, f"relative L2 {err:e}\nours   {ours}\noracle {oracle}"
        # The tracer bit changes the suspicious logit only.
        flipped = analyzer.infer(x, 1.0 - bits)
        assert np.all(flipped[:, 0] != ours[:, 0])
        np.testing.assert_array_equal(flipped[:, 1:], ours[:, 1:])
    finally:
        analyzer.close()


def test_embedded_model_is_the_committed_file_and_matches_onnxruntime(uptake_lib, default_file):
    meta, tensors, _ = default_file
    analyzer = Analyzer(uptake_lib, None, threads=1)
    try:
        x, bits = random_regions(3, analyzer.info.input_channels, analyzer.info.plane_size, seed=3)
        ours = analyzer.infer(x, bits)
        oracle = ort_logits(ort_session(build_onnx(meta, tensors), 1), x, bits)
        err = relative_l2(ours, oracle)
        assert err < TOLERANCE, f"relative L2 {err:e}"
        info = analyzer.info
        assert (info.model_version, info.input_channels, info.plane_size) == (1, 26, 64)
        assert info.class_count == 23 and info.trained == 1
        assert info.threshold == pytest.approx(float(meta["threshold"]))
        distant = float(meta.get("distant_threshold", meta["threshold"]))
        assert info.distant_threshold == pytest.approx(distant)
        # DESIGN S7: about 157 MFLOP per region.
        assert 150e6 < info.flops_per_region < 160e6
        got = analyzer.metadata()
        assert got["training"]["untrained"] is False
        assert got["classes"] == json.loads(meta["classes"])
        assert got["input"] == json.loads(meta["input"])
        assert [c["name"] for c in got["classes"]][13:15] == ["bladder", "prostate"]
    finally:
        analyzer.close()


def test_bad_model_files_are_model_errors(uptake_lib, tmp_path, random_model):
    path, meta, weights = random_model
    cases = {
        "truncated": pathlib.Path(path).read_bytes()[:-10],
        "header_too_long": struct.pack("<Q", 1 << 40) + b"{}",
    }
    bad_version = tmp_path / "v2.safetensors"
    write_safetensors(bad_version, dict(meta, **{"uptake.model_version": "2"}), weights)
    cases["version"] = bad_version.read_bytes()
    nan = dict(weights)
    nan["conv2.bias"] = nan["conv2.bias"].copy()
    nan["conv2.bias"][3] = np.nan
    nan_path = tmp_path / "nan.safetensors"
    write_safetensors(nan_path, meta, nan)
    cases["nan"] = nan_path.read_bytes()
    for name, data in cases.items():
        p = tmp_path / f"{name}.bad"
        p.write_bytes(data)
        with pytest.raises(AnalyzerError) as err:
            Analyzer(uptake_lib, p)
        assert err.value.status == UPTAKE_ERR_MODEL, (name, str(err.value))


def test_infer_rejects_wrong_lengths(uptake_lib):
    analyzer = Analyzer(uptake_lib, None, threads=1)
    try:
        x, bits = random_regions(1, 26, 64, seed=1)
        out = np.empty(24, dtype=np.float32)
        status = analyzer.lib.uptake_model_infer(
            analyzer.handle, x.ctypes.data, bits.ctypes.data, 1, out.ctypes.data, 23
        )
        assert status == UPTAKE_ERR_INVALID_ARGUMENT
        status = analyzer.lib.uptake_model_infer(analyzer.handle, None, None, 1, out.ctypes.data, 24)
        assert status == UPTAKE_ERR_INVALID_ARGUMENT
        x[0, 0, 0, 0] = np.inf
        with pytest.raises(AnalyzerError) as err:
            analyzer.infer(x, bits)
        assert err.value.status == UPTAKE_ERR_INVALID_ARGUMENT
    finally:
        analyzer.close()
