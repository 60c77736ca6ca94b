"""Python binding of the uptake C ABI (ctypes; numpy for volumes).

    import numpy as np, uptake
    with uptake.Analyzer(device="cpu") as analyzer:
        print(analyzer.device)
    uptake.check_volume(np.zeros((4, 3, 2), np.float32), spacing_mm=(4, 4, 3))

Arrays are indexed [x, y, z] like nibabel's, in patient LPS space (+x left, +y posterior,
+z superior). The shared library is found through $UPTAKE_LIB, next to this package, or in the
checkout's target/release.
"""

import ctypes
import json
import os
import pathlib

import numpy as np

__all__ = [
    "UptakeError",
    "Analyzer",
    "Volume",
    "check_volume",
    "set_log_callback",
    "version",
    "abi_version",
    "ABI_VERSION",
]

ABI_VERSION = 1

OK = 0
ERR_INVALID_ARGUMENT = 1
ERR_IO = 2
ERR_MODEL = 3
ERR_DEVICE = 4
ERR_CANCELLED = 5
ERR_INTERNAL = 6
ERR_PANIC = 7
ERR_MEMORY = 8

DEVICES = {"auto": 0, "cpu": 1, "cuda": 2}
LOG_LEVELS = {"off": 0, "error": 1, "warn": 2, "info": 3, "debug": 4, "trace": 5}


class UptakeError(Exception):
    """A failed call: `status` is the UPTAKE_ERR_* code, the message the library's."""

    def __init__(self, status, message):
        super().__init__(f"{message} (status {status})")
        self.status = status
        self.message = message


class _AnalyzerOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("device", ctypes.c_uint32),
        ("threads", ctypes.c_uint32),
        ("reserved", ctypes.c_uint32),
        ("model_path", ctypes.c_char_p),
    ]


class _Volume(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("dims", ctypes.c_uint32 * 3),
        ("spacing_mm", ctypes.c_double * 3),
        ("origin_mm", ctypes.c_double * 3),
        ("direction", ctypes.c_double * 9),
        ("data", ctypes.POINTER(ctypes.c_float)),
        ("data_len", ctypes.c_uint64),
    ]


_LOG_CALLBACK = ctypes.CFUNCTYPE(None, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_void_p)
_PROGRESS_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_uint32, ctypes.c_uint32, ctypes.c_float, ctypes.c_void_p)

TRACERS = {"psma": 0, "fdg": 1}
STAGES = ["check", "grid", "regions", "reformat", "classify", "staging"]


class _AnalyzeOptions(ctypes.Structure):
    _fields_ = [
        ("struct_size", ctypes.c_uint32),
        ("pet_units", ctypes.c_uint32),
        ("suv_factor", ctypes.c_double),
        ("threshold", ctypes.c_double),
        ("connectivity", ctypes.c_uint32),
        ("common_iliac_as_regional", ctypes.c_uint32),
        ("blood_pool_suv", ctypes.c_double),
        ("dmi_fraction", ctypes.c_double),
        ("replace_non_finite", ctypes.c_uint32),
        ("distant_threshold", ctypes.c_float),
        ("progress", _PROGRESS_CALLBACK),
        ("progress_user_data", ctypes.c_void_p),
        ("memory_budget_mb", ctypes.c_uint64),
        ("min_ct_coverage", ctypes.c_double),
        ("paper_regions", ctypes.c_uint32),
    ]


class Volume:
    """A volume indexed [x, y, z] in patient LPS space: spacing (mm), origin (centre of voxel
    0,0,0, mm) and a 3×3 direction whose columns are the axis unit vectors."""

    def __init__(self, data, spacing_mm, origin_mm=(0.0, 0.0, 0.0), direction=np.eye(3)):
        self.data = np.asarray(data)
        self.spacing_mm = tuple(float(s) for s in spacing_mm)
        self.origin_mm = tuple(float(o) for o in origin_mm)
        self.direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)

    @classmethod
    def from_nibabel(cls, img):
        """From a nibabel image: its RAS affine converted to LPS, data as float32."""
        lps = np.diag([-1.0, -1.0, 1.0, 1.0]) @ np.asarray(img.affine, dtype=np.float64)
        spacing = np.linalg.norm(lps[:3, :3], axis=0)
        return cls(
            np.asarray(img.get_fdata(dtype=np.float32)),
            spacing,
            lps[:3, 3],
            lps[:3, :3] / spacing,
        )


def _find_library():
    name = "libuptake.so"
    candidates = []
    if os.environ.get("UPTAKE_LIB"):
        candidates.append(pathlib.Path(os.environ["UPTAKE_LIB"]))
    here = pathlib.Path(__file__).resolve().parent
    candidates += [here / name, here.parents[1] / "target" / "release" / name]
    for path in candidates:
        if path.exists():
            return path
    raise OSError(f"{name} not found (tried {', '.join(map(str, candidates))}); set UPTAKE_LIB")


def _load():
    lib = ctypes.CDLL(str(_find_library()))
    u32, p = ctypes.c_uint32, ctypes.c_void_p
    lib.uptake_version.restype = ctypes.c_char_p
    lib.uptake_abi_version.restype = u32
    lib.uptake_status_name.restype = ctypes.c_char_p
    lib.uptake_status_name.argtypes = [u32]
    lib.uptake_last_error.restype = ctypes.c_char_p
    lib.uptake_last_error_copy.restype = u32
    lib.uptake_last_error_copy.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)]
    lib.uptake_set_log_callback.restype = u32
    lib.uptake_set_log_callback.argtypes = [_LOG_CALLBACK, p, u32]
    lib.uptake_analyzer_options_init.restype = u32
    lib.uptake_analyzer_options_init.argtypes = [ctypes.POINTER(_AnalyzerOptions)]
    lib.uptake_analyzer_create.restype = u32
    lib.uptake_analyzer_create.argtypes = [ctypes.POINTER(_AnalyzerOptions), ctypes.POINTER(p)]
    lib.uptake_analyzer_free.restype = None
    lib.uptake_analyzer_free.argtypes = [p]
    lib.uptake_analyzer_device.restype = u32
    lib.uptake_analyzer_device.argtypes = [p, ctypes.POINTER(u32)]
    lib.uptake_analyzer_operating_points.restype = u32
    lib.uptake_analyzer_operating_points.argtypes = [p, u32, ctypes.POINTER(ctypes.c_float), ctypes.POINTER(ctypes.c_float)]
    lib.uptake_volume_init.restype = u32
    lib.uptake_volume_init.argtypes = [ctypes.POINTER(_Volume)]
    lib.uptake_volume_check.restype = u32
    lib.uptake_volume_check.argtypes = [ctypes.POINTER(_Volume)]
    lib.uptake_analyze_options_init.restype = u32
    lib.uptake_analyze_options_init.argtypes = [ctypes.POINTER(_AnalyzeOptions)]
    lib.uptake_analyze.restype = u32
    lib.uptake_analyze.argtypes = [
        p,
        ctypes.POINTER(_Volume),
        ctypes.POINTER(_Volume),
        u32,
        ctypes.POINTER(_AnalyzeOptions),
        ctypes.POINTER(p),
    ]
    lib.uptake_report_json.restype = u32
    lib.uptake_report_json.argtypes = [p, ctypes.POINTER(ctypes.c_char_p)]
    lib.uptake_report_label_map.restype = u32
    lib.uptake_report_label_map.argtypes = [p, ctypes.POINTER(ctypes.POINTER(ctypes.c_uint32)), ctypes.POINTER(u32)]
    lib.uptake_report_free.restype = None
    lib.uptake_report_free.argtypes = [p]
    if lib.uptake_abi_version() != ABI_VERSION:
        raise OSError(f"library ABI {lib.uptake_abi_version()} != binding ABI {ABI_VERSION}")
    return lib


_lib = _load()
_log_callback_keepalive = None


def _check(status):
    if status != OK:
        raise UptakeError(status, _lib.uptake_last_error().decode("utf-8", "replace"))


def version():
    """The library version string."""
    return _lib.uptake_version().decode()


def abi_version():
    return _lib.uptake_abi_version()


def set_log_callback(callback, level="info"):
    """Route library log lines to `callback(level: int, message: str)`; None stops logging."""
    global _log_callback_keepalive
    if callback is None:
        _check(_lib.uptake_set_log_callback(_LOG_CALLBACK(), None, 0))
        _log_callback_keepalive = None
        return

    def trampoline(lvl, message, _user):
        callback(lvl, message.decode("utf-8", "replace"))

    keep = _LOG_CALLBACK(trampoline)
    _check(_lib.uptake_set_log_callback(keep, None, LOG_LEVELS[level]))
    _log_callback_keepalive = keep  # the library holds the pointer until replaced


def _volume_struct(data, spacing_mm, origin_mm, direction):
    """A descriptor over a float32 array indexed [x, y, z]; returns (struct, array kept alive)."""
    arr = np.asfortranarray(data, dtype=np.float32)
    if arr.ndim != 3:
        raise ValueError(f"volume must be 3-D, got shape {arr.shape}")
    v = _Volume()
    _check(_lib.uptake_volume_init(ctypes.byref(v)))
    v.dims[:] = arr.shape
    v.spacing_mm[:] = [float(s) for s in spacing_mm]
    v.origin_mm[:] = [float(o) for o in origin_mm]
    v.direction[:] = [float(d) for d in np.asarray(direction, dtype=np.float64).reshape(9)]
    v.data = arr.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
    v.data_len = arr.size
    return v, arr


def check_volume(data, spacing_mm, origin_mm=(0.0, 0.0, 0.0), direction=np.eye(3)):
    """Validate a volume as the library will (DESIGN S1); raises UptakeError when rejected.

    `direction` is a 3×3 matrix whose columns are the LPS unit vectors of the array axes."""
    v, _keep = _volume_struct(data, spacing_mm, origin_mm, direction)
    _check(_lib.uptake_volume_check(ctypes.byref(v)))


class Analyzer:
    """An analyzer (model + device), reused across studies. Use as a context manager or call
    close(); the handle is freed exactly once."""

    def __init__(self, device="auto", threads=0, model_path=None):
        self._handle = None  # so that __del__ is safe when creation fails
        opts = _AnalyzerOptions()
        _check(_lib.uptake_analyzer_options_init(ctypes.byref(opts)))
        if device not in DEVICES:
            raise ValueError(f"device must be one of {sorted(DEVICES)}")
        opts.device = DEVICES[device]
        opts.threads = threads
        opts.model_path = None if model_path is None else os.fsencode(model_path)
        handle = ctypes.c_void_p()
        _check(_lib.uptake_analyzer_create(ctypes.byref(opts), ctypes.byref(handle)))
        self._handle = handle

    @property
    def device(self):
        out = ctypes.c_uint32()
        _check(_lib.uptake_analyzer_device(self._live(), ctypes.byref(out)))
        return {v: k for k, v in DEVICES.items()}[out.value]

    def operating_points(self, tracer="psma"):
        """The model's (threshold, distant_threshold) for studies of this tracer: what `analyze`
        uses when neither is given (single-precision values, as the library compares)."""
        if tracer not in TRACERS:
            raise ValueError(f"tracer must be one of {sorted(TRACERS)}")
        threshold, distant = ctypes.c_float(), ctypes.c_float()
        _check(
            _lib.uptake_analyzer_operating_points(
                self._live(), TRACERS[tracer], ctypes.byref(threshold), ctypes.byref(distant)
            )
        )
        return threshold.value, distant.value

    def _live(self):
        if self._handle is None:
            raise ValueError("analyzer is closed")
        return self._handle

    def analyze(
        self,
        pet,
        ct,
        tracer="psma",
        suv_factor=None,
        threshold=None,
        distant_threshold=None,
        common_iliac_as_regional=False,
        replace_non_finite=False,
        progress=None,
        memory_budget_mb=None,
        min_ct_coverage=None,
        paper_regions=False,
    ):
        """Analyze one study. `pet` and `ct` are `Volume`s (PET in SUV, or Bq/mL with
        `suv_factor`; CT in HU). `threshold` alone sets the operating point of every finding,
        `distant_threshold` that of distant ones (M1a, M1b, M1c); without either, the model's
        operating points for this tracer hold (`operating_points(tracer)`).
        `memory_budget_mb` bounds what the analysis allocates beyond the inputs (ERR_MEMORY
        above it; default 4 GiB or half the machine's memory); `min_ct_coverage` is the least
        share of the PET's axial extent the CT must cover (default 0.9). `paper_regions` classifies
        S4's uptake regions alone, as the paper does, without the sub-regions found inside them.
        `progress(stage: str, fraction: float)` may return True to
        cancel (UptakeError with ERR_CANCELLED). Returns (report dict, label map [x, y, z])."""
        if tracer not in TRACERS:
            raise ValueError(f"tracer must be one of {sorted(TRACERS)}")
        opts = _AnalyzeOptions()
        _check(_lib.uptake_analyze_options_init(ctypes.byref(opts)))
        if suv_factor is not None:
            opts.pet_units = 1
            opts.suv_factor = float(suv_factor)
        if threshold is not None:
            opts.threshold = float(threshold)
        if distant_threshold is not None:
            opts.distant_threshold = float(distant_threshold)
        opts.common_iliac_as_regional = int(bool(common_iliac_as_regional))
        opts.replace_non_finite = int(bool(replace_non_finite))
        if memory_budget_mb is not None:
            opts.memory_budget_mb = int(memory_budget_mb)
        if min_ct_coverage is not None:
            opts.min_ct_coverage = float(min_ct_coverage)
        opts.paper_regions = int(bool(paper_regions))
        if progress is not None:
            keep = _PROGRESS_CALLBACK(lambda stage, fraction, _u: 1 if progress(STAGES[stage], fraction) else 0)
            opts.progress = keep
        pet_struct, _pet_keep = _volume_struct(pet.data, pet.spacing_mm, pet.origin_mm, pet.direction)
        ct_struct, _ct_keep = _volume_struct(ct.data, ct.spacing_mm, ct.origin_mm, ct.direction)
        report = ctypes.c_void_p()
        _check(
            _lib.uptake_analyze(
                self._live(),
                ctypes.byref(pet_struct),
                ctypes.byref(ct_struct),
                TRACERS[tracer],
                ctypes.byref(opts),
                ctypes.byref(report),
            )
        )
        try:
            text = ctypes.c_char_p()
            _check(_lib.uptake_report_json(report, ctypes.byref(text)))
            parsed = json.loads(text.value.decode("utf-8"))
            data = ctypes.POINTER(ctypes.c_uint32)()
            dims = (ctypes.c_uint32 * 3)()
            _check(_lib.uptake_report_label_map(report, ctypes.byref(data), dims))
            count = dims[0] * dims[1] * dims[2]
            flat = np.ctypeslib.as_array(data, shape=(count,)).copy()
            labels = flat.reshape(tuple(dims), order="F")
        finally:
            _lib.uptake_report_free(report)
        return parsed, labels

    def close(self):
        if self._handle is not None:
            _lib.uptake_analyzer_free(self._handle)
            self._handle = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
