//! Finding the CUDA driver and NVRTC libraries before cudarc touches them.
//!
//! cudarc's dynamic loading panics when a library or one of its symbols is missing. So before the
//! first cudarc call we open the very library cudarc would open (the first of its candidate names
//! that loads), check every entry point we rely on, and ask the library itself whether it works:
//! `cuInit` fails on a stub `libcuda` (CUDA_ERROR_STUB_LIBRARY) and on machines without a device,
//! `nvrtcVersion` answers only from a real NVRTC.

use std::ffi::c_int;
use std::path::Path;
use std::sync::OnceLock;

use libloading::Library;

use super::GpuError;

/// Driver entry points cudarc calls on our paths; all must be present.
const DRIVER_SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuDeviceGet",
    "cuDeviceGetCount",
    "cuDeviceGetAttribute",
    "cuDeviceGetName",
    "cuDeviceTotalMem_v2",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxSetCurrent",
    "cuCtxGetCurrent",
    "cuCtxSynchronize",
    "cuStreamCreate",
    "cuStreamSynchronize",
    "cuStreamDestroy_v2",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuModuleUnload",
    "cuLaunchKernel",
    "cuMemAlloc_v2",
    "cuMemAllocAsync",
    "cuMemFree_v2",
    "cuMemFreeAsync",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemsetD8Async",
    "cuMemGetInfo_v2",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventElapsedTime",
    "cuEventDestroy_v2",
    "cuStreamWaitEvent",
    "cuGetErrorString",
];

/// NVRTC entry points we call (through cudarc's `sys` bindings).
const NVRTC_SYMBOLS: &[&str] = &[
    "nvrtcVersion",
    "nvrtcGetNumSupportedArchs",
    "nvrtcGetSupportedArchs",
    "nvrtcCreateProgram",
    "nvrtcCompileProgram",
    "nvrtcDestroyProgram",
    "nvrtcGetProgramLogSize",
    "nvrtcGetProgramLog",
    "nvrtcGetPTXSize",
    "nvrtcGetPTX",
    "nvrtcGetCUBINSize",
    "nvrtcGetCUBIN",
];

/// What the driver library said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriverInfo {
    /// The library file name that loaded (cudarc loads the same one).
    pub library: String,
    /// CUDA version the driver supports, as 1000·major + 10·minor (13000 for CUDA 13.0).
    pub version: i32,
    /// Devices the driver sees.
    pub devices: i32,
}

/// What NVRTC said about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NvrtcInfo {
    pub library: String,
    pub version: (i32, i32),
    /// The `sm_XY` architectures it can generate code for, as 10·X + Y, ascending.
    pub architectures: Vec<u32>,
}

/// Environment variable naming an NVRTC library file to load before searching by name (for
/// installations that keep NVRTC outside the loader's search path, such as a Python wheel).
pub const NVRTC_PATH_ENV: &str = "UPTAKE_NVRTC_LIBRARY";

/// The first candidate name of `stem` that loads, as cudarc searches them.
fn open_as_cudarc(stem: &str) -> Result<(String, Library), Vec<String>> {
    let candidates = cudarc::get_lib_name_candidates(stem);
    for name in &candidates {
        // SAFETY: loading a CUDA library runs its initialisers; the NVIDIA libraries have no
        // initialisers with preconditions on the caller.
        if let Ok(lib) = unsafe { Library::new(name) } {
            return Ok((name.clone(), lib));
        }
    }
    Err(candidates)
}

fn missing_symbols(lib: &Library, names: &[&str]) -> Vec<String> {
    names
        .iter()
        // SAFETY: only the address is looked up; the pointer type is never called through.
        .filter(|name| unsafe { lib.get::<*const ()>(name.as_bytes()) }.is_err())
        .map(|name| (*name).to_string())
        .collect()
}

/// Probes the CUDA driver library: present, complete, initialisable, with its device count.
pub fn probe_driver() -> Result<DriverInfo, GpuError> {
    let (library, lib) = open_as_cudarc("cuda").map_err(|candidates| GpuError::NoDriver {
        reason: format!("no CUDA driver library found (searched {candidates:?})"),
    })?;
    let missing = missing_symbols(&lib, DRIVER_SYMBOLS);
    if !missing.is_empty() {
        return Err(GpuError::NoDriver {
            reason: format!("{library} lacks {missing:?} (driver too old)"),
        });
    }
    type CuInit = unsafe extern "C" fn(u32) -> c_int;
    type CuGetInt = unsafe extern "C" fn(*mut c_int) -> c_int;
    // SAFETY: the symbols exist (checked above) and have these C signatures in every CUDA
    // driver API version: CUresult cuInit(unsigned), cuDriverGetVersion(int*),
    // cuDeviceGetCount(int*). The out-pointers point to live locals.
    unsafe {
        let init = lib
            .get::<CuInit>(b"cuInit")
            .map_err(|e| no_driver(&library, e))?;
        let status = init(0);
        if status != 0 {
            return Err(GpuError::NoDriver {
                reason: format!(
                    "cuInit failed with CUresult {status} ({})",
                    cu_status(status)
                ),
            });
        }
        let mut version = 0;
        let get_version = lib
            .get::<CuGetInt>(b"cuDriverGetVersion")
            .map_err(|e| no_driver(&library, e))?;
        let status = get_version(&mut version);
        if status != 0 {
            return Err(GpuError::NoDriver {
                reason: format!("cuDriverGetVersion failed with CUresult {status}"),
            });
        }
        let mut devices = 0;
        let count = lib
            .get::<CuGetInt>(b"cuDeviceGetCount")
            .map_err(|e| no_driver(&library, e))?;
        let status = count(&mut devices);
        if status != 0 {
            return Err(GpuError::NoDriver {
                reason: format!("cuDeviceGetCount failed with CUresult {status}"),
            });
        }
        Ok(DriverInfo {
            library,
            version,
            devices,
        })
    }
}

fn no_driver(library: &str, e: libloading::Error) -> GpuError {
    GpuError::NoDriver {
        reason: format!("{library}: {e}"),
    }
}

/// The meaning of the `cuInit` results seen on machines without a usable GPU.
fn cu_status(status: c_int) -> &'static str {
    match status {
        34 => "stub library: the toolkit's stub libcuda is on the library path, not a driver",
        35 => "the driver is older than the CUDA runtime",
        100 => "no CUDA-capable device",
        999 => "unknown error",
        _ => "driver error",
    }
}

/// Loads the library named by [`NVRTC_PATH_ENV`], once per process, and keeps it loaded: the
/// dynamic loader then resolves cudarc's later `dlopen("libnvrtc.so.12")` to it by soname.
fn preload_nvrtc_from_env() -> Result<(), GpuError> {
    static PRELOADED: OnceLock<Result<Library, String>> = OnceLock::new();
    let Some(path) = std::env::var_os(NVRTC_PATH_ENV) else {
        return Ok(());
    };
    let loaded = PRELOADED.get_or_init(|| {
        let path = Path::new(&path);
        // SAFETY: as in `open_as_cudarc`; the path is the user's choice of an NVRTC library.
        unsafe { Library::new(path) }.map_err(|e| format!("{}: {e}", path.display()))
    });
    match loaded {
        Ok(_) => Ok(()),
        Err(reason) => Err(GpuError::NoNvrtc {
            reason: format!("{NVRTC_PATH_ENV}: {reason}"),
        }),
    }
}

/// Probes NVRTC: present, complete, its version and architectures.
pub fn probe_nvrtc() -> Result<NvrtcInfo, GpuError> {
    preload_nvrtc_from_env()?;
    let (library, lib) = open_as_cudarc("nvrtc").map_err(|candidates| GpuError::NoNvrtc {
        reason: format!("no NVRTC library found (searched {candidates:?})"),
    })?;
    let missing = missing_symbols(&lib, NVRTC_SYMBOLS);
    if !missing.is_empty() {
        return Err(GpuError::NoNvrtc {
            reason: format!("{library} lacks {missing:?}"),
        });
    }
    type GetVersion = unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int;
    type GetCount = unsafe extern "C" fn(*mut c_int) -> c_int;
    type GetArchs = unsafe extern "C" fn(*mut c_int) -> c_int;
    let no_nvrtc = |e: libloading::Error| GpuError::NoNvrtc {
        reason: format!("{library}: {e}"),
    };
    // SAFETY: the symbols exist (checked above) with these C signatures (nvrtc.h):
    // nvrtcVersion(int*, int*), nvrtcGetNumSupportedArchs(int*), nvrtcGetSupportedArchs(int*)
    // which writes as many ints as the count reported, for which `archs` has room.
    unsafe {
        let (mut major, mut minor) = (0, 0);
        let status =
            lib.get::<GetVersion>(b"nvrtcVersion").map_err(no_nvrtc)?(&mut major, &mut minor);
        if status != 0 {
            return Err(GpuError::NoNvrtc {
                reason: format!("nvrtcVersion failed with status {status}"),
            });
        }
        let mut count = 0;
        let status = lib
            .get::<GetCount>(b"nvrtcGetNumSupportedArchs")
            .map_err(no_nvrtc)?(&mut count);
        if status != 0 || !(0..=1024).contains(&count) {
            return Err(GpuError::NoNvrtc {
                reason: format!("nvrtcGetNumSupportedArchs: status {status}, count {count}"),
            });
        }
        let mut archs = vec![0 as c_int; count as usize];
        let status = lib
            .get::<GetArchs>(b"nvrtcGetSupportedArchs")
            .map_err(no_nvrtc)?(archs.as_mut_ptr());
        if status != 0 {
            return Err(GpuError::NoNvrtc {
                reason: format!("nvrtcGetSupportedArchs failed with status {status}"),
            });
        }
        let mut architectures: Vec<u32> = archs
            .into_iter()
            .filter_map(|a| u32::try_from(a).ok())
            .collect();
        architectures.sort_unstable();
        Ok(NvrtcInfo {
            library,
            version: (major, minor),
            architectures,
        })
    }
}
