//! Run-time compilation of `kernels/*.cu` through NVRTC, cached per process (and on disk when
//! [`CACHE_DIR_ENV`] names a folder), keyed by source hash, target architecture and NVRTC version.

use std::collections::HashMap;
use std::ffi::{CStr, CString, c_char};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

use cudarc::nvrtc::{result, sys};

use super::GpuError;
use super::detect::NvrtcInfo;

/// Prepended to every kernel file: integer types, fp16 conversions, the trilinear sampler.
const PRELUDE: &str = include_str!("../../kernels/common.cuh");

/// One kernel file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KernelSource {
    /// File stem in `kernels/`, also the NVRTC program name.
    pub name: &'static str,
    pub code: &'static str,
    /// The `extern "C"` kernels the launch wrappers look up.
    pub entries: &'static [&'static str],
}

pub const RESAMPLE: KernelSource = KernelSource {
    name: "resample",
    code: include_str!("../../kernels/resample.cu"),
    entries: &["resample_trilinear"],
};
pub const REGIONS: KernelSource = KernelSource {
    name: "regions",
    code: include_str!("../../kernels/regions.cu"),
    entries: &[
        "regions_count",
        "regions_keys",
        "regions_pad",
        "regions_sort_chunks",
        "regions_merge_global",
        "regions_merge_chunks",
    ],
};
pub const MPR: KernelSource = KernelSource {
    name: "mpr",
    code: include_str!("../../kernels/mpr.cu"),
    entries: &["mpr_gather_f32", "mpr_gather_f16"],
};
pub const CNN: KernelSource = KernelSource {
    name: "cnn",
    code: include_str!("../../kernels/cnn.cu"),
    entries: &[
        "conv3x3_relu_mma_n32",
        "conv3x3_relu_mma_n64",
        "conv3x3_relu_simt",
        "maxpool2",
        "linear_f16_in",
        "linear_f32_in",
    ],
};

/// Every kernel file, for loading at start-up and for the compile-everything test.
pub const ALL_SOURCES: [KernelSource; 4] = [RESAMPLE, REGIONS, MPR, CNN];

/// Environment variable naming a folder for compiled kernels, reused by later processes.
pub const CACHE_DIR_ENV: &str = "UPTAKE_KERNEL_CACHE";

/// What NVRTC generates: machine code for one architecture, or PTX that the driver compiles for
/// the device it loads on (used when NVRTC does not know the device's architecture).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    /// `sm_XY` cubin, given as 10·X + Y.
    Cubin(u32),
    /// `compute_XY` PTX.
    Ptx(u32),
}

impl Target {
    /// The best target for a device of compute capability `cc` (10·major + minor): its own cubin
    /// if NVRTC knows it, else PTX for the newest architecture NVRTC knows that the device runs.
    pub fn for_device(cc: u32, nvrtc: &NvrtcInfo) -> Result<Self, GpuError> {
        if nvrtc.architectures.contains(&cc) {
            return Ok(Target::Cubin(cc));
        }
        // PTX for compute_XY runs on every device of compute capability XY or newer.
        nvrtc
            .architectures
            .iter()
            .rev()
            .find(|&&a| a <= cc)
            .map(|&a| Target::Ptx(a))
            .ok_or_else(|| GpuError::Unsupported {
                reason: format!(
                    "NVRTC {}.{} generates code for {:?}, none of which runs on compute capability {}.{}",
                    nvrtc.version.0,
                    nvrtc.version.1,
                    nvrtc.architectures,
                    cc / 10,
                    cc % 10
                ),
            })
    }

    /// The `--gpu-architecture` value.
    pub fn arch(self) -> String {
        match self {
            Target::Cubin(a) => format!("sm_{a}"),
            Target::Ptx(a) => format!("compute_{a}"),
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Target::Cubin(_) => "cubin",
            Target::Ptx(_) => "ptx",
        }
    }
}

/// A compiled kernel file, ready for `cuModuleLoadData` (PTX is NUL-terminated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Image {
    pub target: Target,
    pub bytes: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct CacheKey {
    source_hash: u64,
    target: Target,
    nvrtc: (i32, i32),
}

/// FNV-1a, 64 bit: a stable hash for cache keys and file names (not a security boundary).
fn fnv1a(parts: &[&str]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for b in part.bytes() {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    h
}

/// Compile options: fixed so that the cache key covers everything that shapes the output.
fn options(target: Target) -> Vec<String> {
    vec![
        format!("--gpu-architecture={}", target.arch()),
        "--std=c++17".to_string(),
        "--fmad=true".to_string(),
    ]
}

/// The compiled image of `source` for `target`, from the process cache, the disk cache or NVRTC.
pub fn compile(
    source: KernelSource,
    target: Target,
    nvrtc: &NvrtcInfo,
) -> Result<Arc<Image>, GpuError> {
    static CACHE: OnceLock<Mutex<HashMap<CacheKey, Arc<Image>>>> = OnceLock::new();
    let key = CacheKey {
        source_hash: fnv1a(&[PRELUDE, source.code, &options(target).join(" ")]),
        target,
        nvrtc: nvrtc.version,
    };
    let cache = CACHE.get_or_init(Default::default);
    if let Some(image) = cache.lock().map_err(|_| poisoned())?.get(&key) {
        return Ok(Arc::clone(image));
    }
    let file = disk_cache_file(source, &key);
    let image = match file.as_ref().and_then(|f| std::fs::read(f).ok()) {
        Some(bytes) if !bytes.is_empty() => Image { target, bytes },
        _ => {
            let image = compile_uncached(source, target)?;
            if let Some(file) = &file {
                // A cache that cannot be written only costs a compile next time.
                if let Err(e) = std::fs::write(file, &image.bytes) {
                    log::warn!("kernel cache {}: {e}", file.display());
                }
            }
            image
        }
    };
    let image = Arc::new(image);
    cache
        .lock()
        .map_err(|_| poisoned())?
        .insert(key, Arc::clone(&image));
    Ok(image)
}

fn poisoned() -> GpuError {
    GpuError::Internal("kernel cache lock poisoned".into())
}

fn disk_cache_file(source: KernelSource, key: &CacheKey) -> Option<PathBuf> {
    let dir = PathBuf::from(std::env::var_os(CACHE_DIR_ENV)?);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        log::warn!("kernel cache {}: {e}", dir.display());
        return None;
    }
    Some(dir.join(format!(
        "{}-{:016x}-{}-nvrtc{}.{}.{}",
        source.name,
        key.source_hash,
        key.target.arch(),
        key.nvrtc.0,
        key.nvrtc.1,
        key.target.extension()
    )))
}

/// Owns an NVRTC program; destroys it on every path.
struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        // SAFETY: the program came from create_program and is destroyed exactly once, here.
        if let Err(e) = unsafe { result::destroy_program(self.0) } {
            log::warn!("nvrtcDestroyProgram: {e:?}");
        }
    }
}

fn c_string(bytes: Vec<c_char>) -> String {
    let bytes: Vec<u8> = bytes.into_iter().map(|c| c as u8).collect();
    CStr::from_bytes_until_nul(&bytes)
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).into_owned())
}

/// Compiles without any cache. The caller has probed NVRTC (so cudarc's loader cannot panic).
fn compile_uncached(source: KernelSource, target: Target) -> Result<Image, GpuError> {
    let compile_error = |message: String, log: String| GpuError::Compile {
        kernel: source.name,
        arch: target.arch(),
        message,
        log,
    };
    let code = CString::new(format!("{PRELUDE}\n{}", source.code))
        .map_err(|_| compile_error("the source contains a NUL byte".into(), String::new()))?;
    let name = CString::new(format!("{}.cu", source.name))
        .map_err(|_| compile_error("the name contains a NUL byte".into(), String::new()))?;
    let program = Program(
        result::create_program(&code, Some(&name))
            .map_err(|e| compile_error(format!("nvrtcCreateProgram: {e:?}"), String::new()))?,
    );
    // SAFETY: `program` is a live program (destroyed only by its Drop); `code` and `name`
    // outlive it.
    unsafe {
        if let Err(e) = result::compile_program(program.0, &options(target)) {
            let log = result::get_program_log(program.0)
                .map(c_string)
                .unwrap_or_else(|le| format!("(no log: {le:?})"));
            return Err(compile_error(format!("{e:?}"), log));
        }
        let bytes = match target {
            Target::Ptx(_) => result::get_ptx(program.0)
                .map_err(|e| compile_error(format!("nvrtcGetPTX: {e:?}"), String::new()))?
                .into_iter()
                .map(|c| c as u8)
                .collect(),
            Target::Cubin(_) => {
                let mut size = 0usize;
                sys::nvrtcGetCUBINSize(program.0, &mut size)
                    .result()
                    .map_err(|e| {
                        compile_error(format!("nvrtcGetCUBINSize: {e:?}"), String::new())
                    })?;
                let mut bytes = vec![0u8; size];
                sys::nvrtcGetCUBIN(program.0, bytes.as_mut_ptr().cast())
                    .result()
                    .map_err(|e| compile_error(format!("nvrtcGetCUBIN: {e:?}"), String::new()))?;
                bytes
            }
        };
        Ok(Image { target, bytes })
    }
}
