//! S3 on the device: trilinear resampling onto a target grid (`kernels/resample.cu`), the twin
//! of `crate::grid::resample`.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, PushKernelArg};

use super::{CudaBackend, DeviceVolume, GpuError, IndexMap, driver, function, grid_1d, guard, int};
use crate::volume::Geometry;

pub(super) struct Kernels {
    trilinear: CudaFunction,
}

impl Kernels {
    pub(super) fn load(module: &Arc<CudaModule>) -> Result<Self, GpuError> {
        Ok(Self {
            trilinear: function(module, "resample_trilinear")?,
        })
    }
}

const KERNEL: &str = "resample_trilinear";

impl CudaBackend {
    /// Resamples `src` onto `target` (trilinear in patient space, `outside` beyond `src`), on the
    /// device; the result stays there.
    pub fn resample(
        &self,
        src: &DeviceVolume,
        target: &Geometry,
        outside: f32,
    ) -> Result<DeviceVolume, GpuError> {
        guard("resample", || {
            let [sx, sy, sz] = src.geometry.dims();
            let [tx, ty, tz] = target.dims();
            let dims = [
                int(KERNEL, "source nx", sx)?,
                int(KERNEL, "source ny", sy)?,
                int(KERNEL, "source nz", sz)?,
                int(KERNEL, "target nx", tx)?,
                int(KERNEL, "target ny", ty)?,
                int(KERNEL, "target nz", tz)?,
            ];
            let map = IndexMap::between(target, &src.geometry);
            let total = target.len();
            let config = grid_1d(KERNEL, total as u64)?;
            let _lock = self.lock()?;
            // SAFETY: alloc leaves the memory uninitialised; the kernel writes every one of the
            // `total` voxels (one thread each) before anything reads them.
            let mut dst = unsafe { self.stream.alloc::<f32>(total) }
                .map_err(driver("allocating the resampled volume"))?;
            let mut launch = self.stream.launch_builder(&self.modules.resample.trilinear);
            launch
                .arg(&src.data)
                .arg(&dims[0])
                .arg(&dims[1])
                .arg(&dims[2])
                .arg(&mut dst)
                .arg(&dims[3])
                .arg(&dims[4])
                .arg(&dims[5])
                .arg(&map)
                .arg(&outside);
            // SAFETY: argument types and order match resample_trilinear; src holds sx·sy·sz
            // floats (a Volume's invariant), dst holds tx·ty·tz, and the kernel guards v < total.
            unsafe { launch.launch(config) }.map_err(driver(KERNEL))?;
            Ok(DeviceVolume {
                geometry: *target,
                data: dst,
            })
        })
    }
}
