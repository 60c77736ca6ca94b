//! CUDA backend (DESIGN S13): the GPU twins of S3 resampling, the S4 visiting order, S5
//! reformation and the S7 network, for machines that have a CUDA device; the library builds and
//! runs without one.
//!
//! # Loading
//! cudarc loads `libcuda` and `libnvrtc` at run time and panics when one is missing, so
//! [`CudaBackend::open`] first probes both itself ([`detect`]), and every public entry point runs
//! behind [`guard`], which turns a panic from below into [`GpuError::Panic`]. Kernel files
//! (`kernels/*.cu`) are compiled once per process by NVRTC ([`nvrtc`]): a cubin for the device's
//! architecture, or PTX when NVRTC does not know it.
//!
//! # Data stays on the device
//! PET and CT are uploaded once ([`DeviceVolume`]); resampling, reformation and the network read
//! and write device buffers, and only the region centres (to the device), the visiting order,
//! the common-grid CT and the logits cross the bus. The host runs the S4 sweep (inherently sequential) with the CPU's own
//! code over the order computed here, so the label map is identical by construction.

pub mod cnn;
pub mod detect;
pub mod mpr;
pub mod nvrtc;
pub mod regions;
pub mod resample;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};

use cudarc::driver::{CudaContext, CudaFunction, CudaModule, CudaSlice, CudaStream, LaunchConfig};
use cudarc::nvrtc::Ptx;
use thiserror::Error;

use crate::grid::IndexMap;
use crate::volume::{Geometry, Volume};

pub use detect::{DriverInfo, NvrtcInfo, probe_driver, probe_nvrtc};
pub use nvrtc::{KernelSource, Target};

/// Why the GPU path could not run. The analyzer returns it as `Error::Gpu` (and, for `device =
/// auto`, to a log line and the CPU path).
#[derive(Debug, Error)]
pub enum GpuError {
    #[error("no usable CUDA driver: {reason}")]
    NoDriver { reason: String },
    #[error("no usable NVRTC library: {reason}")]
    NoNvrtc { reason: String },
    #[error("CUDA device {ordinal} requested, but the driver sees {count} device(s)")]
    NoDevice { ordinal: usize, count: i32 },
    #[error("this device cannot run the kernels: {reason}")]
    Unsupported { reason: String },
    #[error("NVRTC could not compile kernels/{kernel}.cu for {arch}: {message}\n{log}")]
    Compile {
        kernel: &'static str,
        arch: String,
        message: String,
        log: String,
    },
    #[error("CUDA driver error in {during}: {error}")]
    Driver { during: &'static str, error: String },
    #[error("invalid input to {kernel}: {reason}")]
    Invalid {
        kernel: &'static str,
        reason: String,
    },
    #[error("PET holds {count} non-finite voxel(s); the first at linear index {first}")]
    NonFinite { count: u64, first: u64 },
    #[error("the CUDA library panicked during {during}: {message}")]
    Panic {
        during: &'static str,
        message: String,
    },
    #[error("the CUDA network cannot run this model: {0}")]
    UnsupportedNetwork(String),
    #[error("internal error in the CUDA backend: {0}")]
    Internal(String),
}

impl GpuError {
    /// True when the machine simply has no usable CUDA (the `auto` fallback case), as opposed to
    /// a failure of a device that exists.
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            GpuError::NoDriver { .. }
                | GpuError::NoNvrtc { .. }
                | GpuError::NoDevice { .. }
                | GpuError::Unsupported { .. }
        )
    }
}

/// A driver error mapper naming the failed step.
fn driver(during: &'static str) -> impl Fn(cudarc::driver::DriverError) -> GpuError {
    move |e| GpuError::Driver {
        during,
        error: e.to_string(),
    }
}

/// Runs `f`, turning a panic inside cudarc (a symbol missing from an unusual driver, a broken
/// library) into an error. Our own code does not panic; this is the last line of defence.
pub fn guard<T>(
    during: &'static str,
    f: impl FnOnce() -> Result<T, GpuError>,
) -> Result<T, GpuError> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(payload) => {
            let message = crate::error::panic_message(&*payload);
            Err(GpuError::Panic { during, message })
        }
    }
}

/// Where inference and the heavy stages run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Device {
    /// CUDA when a usable device exists, else the CPU (with a log line saying why).
    #[default]
    Auto,
    Cpu,
    Cuda,
}

/// Resolves the configured device (`device = auto | cpu | cuda`): `Ok(None)` means the CPU path.
/// `cpu` never touches CUDA; `cuda` is an error when the device cannot be opened; `auto` opens it
/// when it can and otherwise logs why and returns the CPU.
pub fn open_for(device: Device, ordinal: usize) -> Result<Option<CudaBackend>, GpuError> {
    match device {
        Device::Cpu => Ok(None),
        Device::Cuda => CudaBackend::open(ordinal).map(Some),
        Device::Auto => match CudaBackend::open(ordinal) {
            Ok(backend) => Ok(Some(backend)),
            Err(e) if e.is_unavailable() => {
                log::info!("device auto: using the CPU ({e})");
                Ok(None)
            }
            Err(e) => {
                log::warn!("device auto: CUDA device {ordinal} failed, using the CPU ({e})");
                Ok(None)
            }
        },
    }
}

/// Facts about the opened device, for logs, the report and the benchmark table.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub ordinal: usize,
    pub name: String,
    /// 10·major + minor (90 for an H100/H200).
    pub compute_capability: u32,
    pub multiprocessors: u32,
    /// Peak SM clock, kHz.
    pub clock_khz: u32,
    pub memory_bytes: usize,
    pub driver: DriverInfo,
    pub nvrtc: NvrtcInfo,
    /// What the kernels were compiled to.
    pub target: Target,
    /// Whether the convolutions run on tensor cores (mma.sync m16n8k16 needs compute 8.0).
    pub tensor_cores: bool,
}

impl DeviceInfo {
    /// Dense fp16 tensor-core FLOP per clock per SM with fp32 accumulation, by architecture
    /// (NVIDIA's published peaks divided by SM count and boost clock); an estimate for the
    /// benchmark's "fraction of peak" column, `None` where unknown.
    pub fn fp16_flop_per_clock_per_sm(&self) -> Option<f64> {
        match self.compute_capability {
            90 => Some(4096.0),
            80 => Some(2048.0),
            70 | 72 | 75 | 86 | 87 | 89 => Some(1024.0),
            _ => None,
        }
    }

    /// Estimated dense fp16 tensor-core peak, FLOP/s.
    pub fn fp16_peak_flops(&self) -> Option<f64> {
        self.fp16_flop_per_clock_per_sm()
            .map(|per| per * f64::from(self.multiprocessors) * f64::from(self.clock_khz) * 1e3)
    }
}

/// Forces the convolution kernel: `simt` runs the scalar kernel even where tensor cores exist
/// (to check one against the other on a device).
pub const CONV_ENV: &str = "UPTAKE_GPU_CONV";

/// The loaded modules of every kernel file.
struct Modules {
    resample: resample::Kernels,
    regions: regions::Kernels,
    mpr: mpr::Kernels,
    cnn: cnn::Kernels,
}

/// An open CUDA device with its kernels loaded. Operations are serialised on one stream (and one
/// lock), so a backend can be shared between threads.
pub struct CudaBackend {
    stream: Arc<CudaStream>,
    info: DeviceInfo,
    modules: Modules,
    lock: Mutex<()>,
}

impl std::fmt::Debug for CudaBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CudaBackend")
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

impl CudaBackend {
    /// Opens device `ordinal`: probes the driver and NVRTC, creates the context and stream,
    /// compiles (or takes from the cache) and loads every kernel file. Never panics.
    pub fn open(ordinal: usize) -> Result<Self, GpuError> {
        let driver_info = probe_driver()?;
        if ordinal >= usize::try_from(driver_info.devices).unwrap_or(0) {
            return Err(GpuError::NoDevice {
                ordinal,
                count: driver_info.devices,
            });
        }
        let nvrtc_info = probe_nvrtc()?;
        guard("opening the CUDA device", || {
            Self::open_probed(ordinal, driver_info, nvrtc_info)
        })
    }

    fn open_probed(
        ordinal: usize,
        driver_info: DriverInfo,
        nvrtc_info: NvrtcInfo,
    ) -> Result<Self, GpuError> {
        use cudarc::driver::sys::CUdevice_attribute as A;
        let ctx = CudaContext::new(ordinal).map_err(driver("creating the context"))?;
        let attribute = |a| {
            ctx.attribute(a)
                .map_err(driver("reading a device attribute"))
                .map(|v| u32::try_from(v).unwrap_or(0))
        };
        let (major, minor) = ctx
            .compute_capability()
            .map_err(driver("reading the compute capability"))?;
        let cc = u32::try_from(major * 10 + minor).unwrap_or(0);
        let target = Target::for_device(cc, &nvrtc_info)?;
        let conv_simt = std::env::var(CONV_ENV).is_ok_and(|v| v == "simt");
        let info = DeviceInfo {
            ordinal,
            name: ctx.name().map_err(driver("reading the device name"))?,
            compute_capability: cc,
            multiprocessors: attribute(A::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)?,
            clock_khz: attribute(A::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)?,
            memory_bytes: ctx.total_mem().map_err(driver("reading the memory size"))?,
            driver: driver_info,
            nvrtc: nvrtc_info,
            target,
            tensor_cores: cc >= 80 && !conv_simt,
        };
        // One stream per backend and no other: cudarc's cross-stream event tracking is not needed.
        // SAFETY: every buffer of this backend is used on `stream` only.
        unsafe { ctx.disable_event_tracking() };
        let stream = ctx.new_stream().map_err(driver("creating a stream"))?;
        let load = |source: KernelSource| -> Result<Arc<CudaModule>, GpuError> {
            let image = nvrtc::compile(source, target, &info.nvrtc)?;
            ctx.load_module(Ptx::from_binary(image.bytes.clone()))
                .map_err(driver("loading a kernel module"))
        };
        let modules = Modules {
            resample: resample::Kernels::load(&load(nvrtc::RESAMPLE)?)?,
            regions: regions::Kernels::load(&load(nvrtc::REGIONS)?)?,
            mpr: mpr::Kernels::load(&load(nvrtc::MPR)?)?,
            cnn: cnn::Kernels::load(&load(nvrtc::CNN)?)?,
        };
        log::info!(
            "CUDA device {ordinal}: {} (compute {}.{}, {} SMs, {} MiB), driver CUDA {}.{}, NVRTC {}.{}, kernels as {:?}{}",
            info.name,
            major,
            minor,
            info.multiprocessors,
            info.memory_bytes >> 20,
            info.driver.version / 1000,
            (info.driver.version % 1000) / 10,
            info.nvrtc.version.0,
            info.nvrtc.version.1,
            target,
            if info.tensor_cores {
                ", tensor cores"
            } else {
                ""
            }
        );
        Ok(Self {
            stream,
            info,
            modules,
            lock: Mutex::new(()),
        })
    }

    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// Runs the convolutions on the scalar kernel even where tensor cores exist (parity checks
    /// of one kernel against the other; [`CONV_ENV`] does the same at open).
    pub fn without_tensor_cores(mut self) -> Self {
        self.info.tensor_cores = false;
        self
    }

    /// Serialises the operations of threads sharing this backend.
    fn lock(&self) -> Result<MutexGuard<'_, ()>, GpuError> {
        self.lock
            .lock()
            .map_err(|_| GpuError::Internal("device lock poisoned".into()))
    }

    /// Waits for all queued work.
    pub fn synchronize(&self) -> Result<(), GpuError> {
        guard("synchronize", || {
            self.stream.synchronize().map_err(driver("synchronize"))
        })
    }

    /// Copies a volume to the device.
    pub fn upload(&self, volume: &Volume<f32>) -> Result<DeviceVolume, GpuError> {
        guard("upload", || {
            let _lock = self.lock()?;
            let data = self
                .stream
                .clone_htod(volume.data())
                .map_err(driver("copying a volume to the device"))?;
            Ok(DeviceVolume {
                geometry: *volume.geometry(),
                data,
            })
        })
    }

    /// Copies a device volume back.
    pub fn download(&self, volume: &DeviceVolume) -> Result<Volume<f32>, GpuError> {
        guard("download", || {
            let _lock = self.lock()?;
            let data = self
                .stream
                .clone_dtoh(&volume.data)
                .map_err(driver("copying a volume from the device"))?;
            Volume::new(volume.geometry, data).map_err(|e| GpuError::Internal(e.to_string()))
        })
    }
}

/// A volume whose voxels live on the device.
pub struct DeviceVolume {
    geometry: Geometry,
    data: CudaSlice<f32>,
}

impl DeviceVolume {
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }
}

impl std::fmt::Debug for DeviceVolume {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceVolume")
            .field("geometry", &self.geometry)
            .finish_non_exhaustive()
    }
}

/// Threads per block of the element-wise kernels.
const BLOCK: u32 = 256;

/// A one-dimensional launch covering `n` threads in blocks of [`BLOCK`]; an error when the grid
/// would exceed the device limit (2^31 − 1 blocks).
fn grid_1d(kernel: &'static str, n: u64) -> Result<LaunchConfig, GpuError> {
    let blocks = n.div_ceil(u64::from(BLOCK)).max(1);
    let blocks = u32::try_from(blocks)
        .ok()
        .filter(|&b| b < (1 << 31))
        .ok_or_else(|| GpuError::Invalid {
            kernel,
            reason: format!("{n} threads exceed one launch"),
        })?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    })
}

/// Loads a function by name from a module.
fn function(module: &Arc<CudaModule>, name: &'static str) -> Result<CudaFunction, GpuError> {
    module
        .load_function(name)
        .map_err(driver("looking up a kernel function"))
}

/// A dimension as the `int` the kernels take.
fn int(kernel: &'static str, what: &str, v: usize) -> Result<i32, GpuError> {
    i32::try_from(v).map_err(|_| GpuError::Invalid {
        kernel,
        reason: format!("{what} = {v} exceeds the kernel's int range"),
    })
}

// SAFETY: `grid::IndexMap` is #[repr(C)] plain f64 data (M row-major, then t) with the layout of
// `struct IndexMap` in kernels/common.cuh.
unsafe impl cudarc::driver::DeviceRepr for IndexMap {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_turns_a_panic_into_an_error() {
        let r: Result<(), GpuError> = guard("test", || panic!("boom"));
        match r {
            Err(GpuError::Panic { during, message }) => {
                assert_eq!(during, "test");
                assert_eq!(message, "boom");
            }
            other => panic!("expected a panic error, got {other:?}"),
        }
    }

    #[test]
    fn index_map_has_the_kernels_layout() {
        // kernels/common.cuh: struct IndexMap { double m[9]; double t[3]; }
        assert_eq!(std::mem::size_of::<IndexMap>(), 12 * 8);
        assert_eq!(std::mem::align_of::<IndexMap>(), 8);
    }

    #[test]
    fn peak_estimate_for_an_h200_is_about_1000_tflops() {
        let info = DeviceInfo {
            ordinal: 0,
            name: "NVIDIA H200".into(),
            compute_capability: 90,
            multiprocessors: 132,
            clock_khz: 1_980_000,
            memory_bytes: 0,
            driver: DriverInfo {
                library: String::new(),
                version: 13000,
                devices: 1,
            },
            nvrtc: NvrtcInfo {
                library: String::new(),
                version: (12, 9),
                architectures: vec![90],
            },
            target: Target::Cubin(90),
            tensor_cores: true,
        };
        let peak = info.fp16_peak_flops().unwrap();
        assert!((peak / 1e12 - 1070.5).abs() < 1.0, "{peak}");
    }
}
