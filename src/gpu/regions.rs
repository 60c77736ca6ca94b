//! S4 on the device: the visiting order of the candidates (`kernels/regions.cu`).
//!
//! The order is the whole of S4 step 1: candidates (SUV ≥ f·t) sorted by decreasing SUV, ties by
//! increasing linear index, each as the key `(!bits(SUV) << 32) | index` — the same keys the CPU
//! sweep consumes. Keys are unique, so the order is unique and the host sweep that follows gives
//! the CPU's labels and statistics bit for bit.

use std::sync::Arc;

use cudarc::driver::{CudaFunction, CudaModule, LaunchConfig, PushKernelArg};

use super::{CudaBackend, DeviceVolume, GpuError, driver, function, grid_1d, guard};

pub(super) struct Kernels {
    count: CudaFunction,
    keys: CudaFunction,
    pad: CudaFunction,
    sort_chunks: CudaFunction,
    merge_global: CudaFunction,
    merge_chunks: CudaFunction,
}

impl Kernels {
    pub(super) fn load(module: &Arc<CudaModule>) -> Result<Self, GpuError> {
        Ok(Self {
            count: function(module, "regions_count")?,
            keys: function(module, "regions_keys")?,
            pad: function(module, "regions_pad")?,
            sort_chunks: function(module, "regions_sort_chunks")?,
            merge_global: function(module, "regions_merge_global")?,
            merge_chunks: function(module, "regions_merge_chunks")?,
        })
    }
}

/// Keys per shared-memory chunk of the bitonic sort (`CHUNK` in regions.cu); half as many threads.
const CHUNK: u64 = 2048;

/// The sorted array length: a power of two, at least one chunk.
fn padded_len(candidates: u64) -> u64 {
    candidates.next_power_of_two().max(CHUNK)
}

fn chunk_launch(padded: u64) -> Result<LaunchConfig, GpuError> {
    let blocks = u32::try_from(padded / CHUNK).map_err(|_| GpuError::Invalid {
        kernel: "regions_sort_chunks",
        reason: format!("{padded} keys exceed one launch"),
    })?;
    Ok(LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: ((CHUNK / 2) as u32, 1, 1),
        shared_mem_bytes: 0,
    })
}

impl CudaBackend {
    /// The S4 visiting order of `pet` (SUV) for candidate threshold `threshold` = f·t (> 0): the
    /// sorted candidate keys. An error when any voxel is not finite (as the CPU rejects it).
    pub fn visiting_order(&self, pet: &DeviceVolume, threshold: f32) -> Result<Vec<u64>, GpuError> {
        guard("visiting order", || {
            if !(threshold.is_finite() && threshold > 0.0) {
                return Err(GpuError::Invalid {
                    kernel: "regions_count",
                    reason: format!("candidate threshold {threshold} must be finite and > 0"),
                });
            }
            let n = pet.geometry.len() as u64;
            let config = grid_1d("regions_count", n)?;
            let k = &self.modules.regions;
            let _lock = self.lock()?;

            // Pass 1: count candidates and non-finite voxels.
            let counts = self.count_pass(pet, threshold, config)?;
            let (candidates, non_finite, first) =
                (counts.at_least, counts.non_finite, counts.first_non_finite);
            if non_finite > 0 {
                return Err(GpuError::NonFinite {
                    count: non_finite,
                    first,
                });
            }
            if candidates == 0 {
                return Ok(Vec::new());
            }

            // Pass 2: the keys, unordered, then padding to a power of two.
            let padded = padded_len(candidates);
            // SAFETY: regions_keys writes keys[0 .. candidates) and regions_pad the rest before
            // the sort reads any of them.
            let mut keys = unsafe { self.stream.alloc::<u64>(padded as usize) }
                .map_err(driver("allocating keys"))?;
            let mut cursor = self
                .stream
                .alloc_zeros::<u32>(1)
                .map_err(driver("allocating a cursor"))?;
            let mut launch = self.stream.launch_builder(&k.keys);
            launch
                .arg(&pet.data)
                .arg(&n)
                .arg(&threshold)
                .arg(&mut keys)
                .arg(&mut cursor);
            // SAFETY: as regions_count; keys has room for all `candidates` keys, which pass 1
            // counted with the same predicate.
            unsafe { launch.launch(config) }.map_err(driver("regions_keys"))?;
            let mut launch = self.stream.launch_builder(&k.pad);
            launch.arg(&mut keys).arg(&candidates).arg(&padded);
            // SAFETY: writes keys[candidates .. padded), guarded by the kernel.
            unsafe { launch.launch(grid_1d("regions_pad", padded - candidates)?) }
                .map_err(driver("regions_pad"))?;

            // Bitonic sort: chunks in shared memory, then per k the global stages and the
            // in-chunk tail.
            let chunks = chunk_launch(padded)?;
            let mut launch = self.stream.launch_builder(&k.sort_chunks);
            launch.arg(&mut keys);
            // SAFETY: one block of CHUNK/2 threads per CHUNK keys; padded is a multiple of CHUNK.
            unsafe { launch.launch(chunks) }.map_err(driver("regions_sort_chunks"))?;
            let pairs = grid_1d("regions_merge_global", padded / 2)?;
            let mut stage_k = 2 * CHUNK;
            while stage_k <= padded {
                let mut j = stage_k / 2;
                while j >= CHUNK {
                    let mut launch = self.stream.launch_builder(&k.merge_global);
                    launch.arg(&mut keys).arg(&padded).arg(&stage_k).arg(&j);
                    // SAFETY: one thread per pair, t < padded/2 guarded; j < padded.
                    unsafe { launch.launch(pairs) }.map_err(driver("regions_merge_global"))?;
                    j /= 2;
                }
                let mut launch = self.stream.launch_builder(&k.merge_chunks);
                launch.arg(&mut keys).arg(&stage_k);
                // SAFETY: as regions_sort_chunks.
                unsafe { launch.launch(chunks) }.map_err(driver("regions_merge_chunks"))?;
                stage_k *= 2;
            }
            self.stream
                .clone_dtoh(&keys.slice(..candidates as usize))
                .map_err(driver("reading the order"))
        })
    }
}

/// What [`CudaBackend::count_voxels`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoxelCounts {
    /// Finite voxels ≥ the threshold.
    pub at_least: u64,
    pub non_finite: u64,
    /// Linear index of the first non-finite voxel (meaningless when there is none).
    pub first_non_finite: u64,
}

impl CudaBackend {
    /// Counts the finite voxels ≥ `threshold` (> 0) and the non-finite voxels of `volume`, with
    /// the candidate count of the visiting order (S4 step 1); the analyzer also uses it for the
    /// CT's skeleton volume and for how much of the common grid the CT covers.
    pub fn count_voxels(
        &self,
        volume: &DeviceVolume,
        threshold: f32,
    ) -> Result<VoxelCounts, GpuError> {
        guard("counting voxels", || {
            if !(threshold.is_finite() && threshold > 0.0) {
                return Err(GpuError::Invalid {
                    kernel: "regions_count",
                    reason: format!("threshold {threshold} must be finite and > 0"),
                });
            }
            let config = grid_1d("regions_count", volume.geometry.len() as u64)?;
            let _lock = self.lock()?;
            self.count_pass(volume, threshold, config)
        })
    }

    /// Launches `regions_count` over `volume` and reads the counters back; the caller holds the
    /// lock and has checked `threshold`.
    fn count_pass(
        &self,
        volume: &DeviceVolume,
        threshold: f32,
        config: LaunchConfig,
    ) -> Result<VoxelCounts, GpuError> {
        let n = volume.geometry.len() as u64;
        let mut counters = self
            .stream
            .clone_htod(&[0u32, 0, u32::MAX])
            .map_err(driver("allocating counters"))?;
        let mut launch = self.stream.launch_builder(&self.modules.regions.count);
        launch
            .arg(&volume.data)
            .arg(&n)
            .arg(&threshold)
            .arg(&mut counters);
        // SAFETY: argument types and order match regions_count; the volume holds n floats;
        // counters holds the 3 u32 the kernel updates; the grid covers n in whole warps.
        unsafe { launch.launch(config) }.map_err(driver("regions_count"))?;
        let counts = self
            .stream
            .clone_dtoh(&counters)
            .map_err(driver("reading counters"))?;
        Ok(VoxelCounts {
            at_least: u64::from(counts[0]),
            non_finite: u64::from(counts[1]),
            first_non_finite: u64::from(counts[2]),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::BLOCK;
    use super::*;

    #[test]
    fn padding_is_a_power_of_two_and_whole_chunks() {
        assert_eq!(padded_len(1), CHUNK);
        assert_eq!(padded_len(CHUNK), CHUNK);
        assert_eq!(padded_len(CHUNK + 1), 2 * CHUNK);
        assert_eq!(padded_len(3_000_000), 1 << 22);
        assert_eq!(BLOCK % 32, 0, "the count/key kernels need whole warps");
    }
}
