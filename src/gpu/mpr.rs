//! S5 on the device: the reformations of every region in one launch (`kernels/mpr.cu`), the
//! twin of `crate::mpr::extract_batch`. The fp16 variant writes the network's input directly.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, CudaSlice, DeviceRepr, PushKernelArg};

use crate::mpr::MprSpec;

use super::{CudaBackend, DeviceVolume, GpuError, IndexMap, driver, function, grid_1d, guard, int};

/// The gather functions (public only as the [`GatherOutput`] dispatch argument).
pub struct Kernels {
    gather_f32: CudaFunction,
    gather_f16: CudaFunction,
}

impl Kernels {
    pub(super) fn load(module: &Arc<CudaModule>) -> Result<Self, GpuError> {
        Ok(Self {
            gather_f32: function(module, "mpr_gather_f32")?,
            gather_f16: function(module, "mpr_gather_f16")?,
        })
    }
}

/// Window [lo, hi] as `(v − lo)·scale` clamped to [0, 1]; `struct Window` in mpr.cu.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
struct Window {
    lo: f32,
    scale: f32,
}

// SAFETY: #[repr(C)] two f32, the layout of `struct Window` in kernels/mpr.cu.
unsafe impl DeviceRepr for Window {}

impl Window {
    fn new([lo, hi]: [f64; 2]) -> Self {
        Self {
            lo: lo as f32,
            scale: (1.0 / (hi - lo)) as f32,
        }
    }
}

/// Reformations on the device, `[regions][2·planes][size][size]`.
pub struct DeviceTensor<T> {
    pub(super) data: CudaSlice<T>,
    pub regions: usize,
    /// Elements per region.
    pub region_len: usize,
}

impl<T> std::fmt::Debug for DeviceTensor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceTensor")
            .field("regions", &self.regions)
            .field("region_len", &self.region_len)
            .finish_non_exhaustive()
    }
}

/// Element types the gather writes: f32, and fp16 as raw bits.
pub trait GatherOutput: DeviceRepr + Copy {
    #[doc(hidden)]
    fn kernel(kernels: &Kernels) -> &CudaFunction;
}

impl GatherOutput for f32 {
    fn kernel(kernels: &Kernels) -> &CudaFunction {
        &kernels.gather_f32
    }
}

impl GatherOutput for u16 {
    fn kernel(kernels: &Kernels) -> &CudaFunction {
        &kernels.gather_f16
    }
}

const KERNEL: &str = "mpr_gather";

impl CudaBackend {
    /// Reformats every region at once from the common-grid volumes `pet3` and `ct3` (same grid),
    /// around `centres` (patient LPS mm), each optionally through an augmentation matrix
    /// (`crate::mpr::Augment::matrix`, row-major). The tensor stays on the device.
    pub fn reformat<T: GatherOutput>(
        &self,
        pet3: &DeviceVolume,
        ct3: &DeviceVolume,
        spec: &MprSpec,
        centres: &[[f64; 3]],
        augments: Option<&[[[f64; 3]; 3]]>,
    ) -> Result<DeviceTensor<T>, GpuError> {
        guard("reformat", || {
            // The CPU stage's own validation: one set of bounds for both paths.
            spec.validate().map_err(|e| GpuError::Invalid {
                kernel: KERNEL,
                reason: e.to_string(),
            })?;
            if pet3.geometry != ct3.geometry {
                return Err(GpuError::Invalid {
                    kernel: KERNEL,
                    reason: "PET and CT must lie on the same grid".into(),
                });
            }
            if let Some(a) = augments
                && a.len() != centres.len()
            {
                return Err(GpuError::Invalid {
                    kernel: KERNEL,
                    reason: format!("{} augmentations for {} centres", a.len(), centres.len()),
                });
            }
            if let Some(c) = centres.iter().find(|c| c.iter().any(|v| !v.is_finite())) {
                return Err(GpuError::Invalid {
                    kernel: KERNEL,
                    reason: format!("region centre {c:?} is not finite"),
                });
            }
            let region_len = spec.tensor_len();
            let total = region_len
                .checked_mul(centres.len())
                .ok_or_else(|| GpuError::Invalid {
                    kernel: KERNEL,
                    reason: "tensor size overflows".into(),
                })?;
            let frames = frames(pet3, spec, centres, augments);
            let [nx, ny, nz] = pet3.geometry.dims();
            let args = [
                int(KERNEL, "nx", nx)?,
                int(KERNEL, "ny", ny)?,
                int(KERNEL, "nz", nz)?,
                int(KERNEL, "regions", centres.len())?,
                int(KERNEL, "planes", spec.plane_offsets_mm.len())?,
                int(KERNEL, "plane size", spec.plane_size)?,
            ];
            let (pet_window, ct_window) = (
                Window::new(spec.pet_window_suv),
                Window::new(spec.ct_window_hu),
            );
            let config = grid_1d(KERNEL, (total / 2) as u64)?;
            let _lock = self.lock()?;
            // SAFETY: alloc leaves the memory uninitialised; the kernel writes both halves of every
            // region (one thread per PET/CT pixel pair) before anything reads them.
            let mut out = unsafe { self.stream.alloc::<T>(total.max(1)) }
                .map_err(driver("allocating reformations"))?;
            if centres.is_empty() {
                return Ok(DeviceTensor {
                    data: out,
                    regions: 0,
                    region_len,
                });
            }
            let frames = self
                .stream
                .clone_htod(&frames)
                .map_err(driver("copying region frames"))?;
            let offsets = self
                .stream
                .clone_htod(&spec.plane_offsets_mm)
                .map_err(driver("copying plane offsets"))?;
            let mut launch = self.stream.launch_builder(T::kernel(&self.modules.mpr));
            launch
                .arg(&pet3.data)
                .arg(&ct3.data)
                .arg(&args[0])
                .arg(&args[1])
                .arg(&args[2])
                .arg(&frames)
                .arg(&offsets)
                .arg(&args[3])
                .arg(&args[4])
                .arg(&args[5])
                .arg(&pet_window)
                .arg(&ct_window)
                .arg(&mut out);
            // SAFETY: argument types and order match mpr_gather_*; pet3 and ct3 hold nx·ny·nz
            // floats; frames holds 12 doubles per region, offsets one per plane; out holds
            // regions·2·planes·size² elements and the kernel guards t < regions·planes·size².
            unsafe { launch.launch(config) }.map_err(driver(KERNEL))?;
            Ok(DeviceTensor {
                data: out,
                regions: centres.len(),
                region_len,
            })
        })
    }

    /// Puts reformations made on the host (`regions` tensors of `region_len` floats) on the
    /// device as the network's fp16 input.
    pub fn upload_tensor(
        &self,
        values: &[f32],
        regions: usize,
        region_len: usize,
    ) -> Result<DeviceTensor<u16>, GpuError> {
        guard("upload tensor", || {
            if regions.checked_mul(region_len) != Some(values.len()) {
                return Err(GpuError::Invalid {
                    kernel: KERNEL,
                    reason: format!(
                        "{} values for {regions} regions of {region_len}",
                        values.len()
                    ),
                });
            }
            let halves: Vec<u16> = values
                .iter()
                .map(|&v| half::f16::from_f32(v).to_bits())
                .collect();
            let _lock = self.lock()?;
            // An empty batch still gets a (one-element) buffer: CUDA has no zero-size allocation.
            let data = if halves.is_empty() {
                self.stream.alloc_zeros::<u16>(1)
            } else {
                self.stream.clone_htod(&halves)
            }
            .map_err(driver("copying reformations to the device"))?;
            Ok(DeviceTensor {
                data,
                regions,
                region_len,
            })
        })
    }

    /// Copies reformations back (tests, training tools).
    pub fn download_tensor<T: DeviceRepr + Copy>(
        &self,
        tensor: &DeviceTensor<T>,
    ) -> Result<Vec<T>, GpuError> {
        guard("download tensor", || {
            let _lock = self.lock()?;
            self.stream
                .clone_dtoh(&tensor.data.slice(..tensor.regions * tensor.region_len))
                .map_err(driver("copying reformations from the device"))
        })
    }
}

/// Per region, 12 doubles in the grid's index space: centre, then the steps of one column, one
/// row and one mm of plane offset, with the augmentation folded in (as `crate::mpr`).
fn frames(
    grid: &DeviceVolume,
    spec: &MprSpec,
    centres: &[[f64; 3]],
    augments: Option<&[[[f64; 3]; 3]]>,
) -> Vec<f64> {
    const IDENTITY: [[f64; 3]; 3] = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let to_index = IndexMap::patient_to(&grid.geometry);
    let px = spec.pixel_mm;
    let mut frames = Vec::with_capacity(12 * centres.len());
    for (i, &centre) in centres.iter().enumerate() {
        let a = augments.map_or(IDENTITY, |a| a[i]);
        let along = |v: [f64; 3]| {
            to_index.linear(std::array::from_fn(|r| {
                a[r][0] * v[0] + a[r][1] * v[1] + a[r][2] * v[2]
            }))
        };
        frames.extend_from_slice(&to_index.apply(centre));
        frames.extend_from_slice(&along([px, 0.0, 0.0]));
        frames.extend_from_slice(&along([0.0, 0.0, -px]));
        frames.extend_from_slice(&along([0.0, 1.0, 0.0]));
    }
    frames
}
