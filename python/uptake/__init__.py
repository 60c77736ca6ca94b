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
import os
import pathlib

import numpy as np

__all__ = [
    "UptakeError",
    "Analyzer",
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
    lib.uptake_volume_init.restype = u32
    lib.uptake_volume_init.argtypes = [ctypes.POINTER(_Volume)]
    lib.uptake_volume_check.restype = u32
    lib.uptake_volume_check.argtypes = [ctypes.POINTER(_Volume)]
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

    def _live(self):
        if self._handle is None:
            raise ValueError("analyzer is closed")
        return self._handle

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
