//! Final labels and the statistics of each region.

use rayon::prelude::*;

use super::Region;
use super::sweep::{Swept, VISITED_BACKGROUND, unpack};
use crate::volume::{Geometry, Volume};

/// What one pass over a region's voxels collects.
#[derive(Clone)]
struct Accumulator {
    count: u64,
    sum: f64,
    suv_max: f32,
    max_voxel: [usize; 3],
    bbox_min: [usize; 3],
    bbox_max: [usize; 3],
}

impl Accumulator {
    const EMPTY: Self = Self {
        count: 0,
        sum: 0.0,
        suv_max: 0.0,
        max_voxel: [0; 3],
        bbox_min: [usize::MAX; 3],
        bbox_max: [0; 3],
    };
}

/// Turns the sweep's labels into region ids and measures every region. Voxels are taken in
/// visiting order, so the first voxel of a region is its maximum (lowest index among equal
/// maxima) and the SUV sums are formed in an order independent of the thread count.
pub(super) fn label_and_measure(
    pet: &Volume<f32>,
    order: &[u64],
    swept: Swept,
) -> (Vec<u32>, Vec<Region>) {
    let Swept { mut labels, forest } = swept;
    let (region_of_node, region_count) = forest.into_region_ids();
    let geometry = pet.geometry();
    let [nx, ny, _] = geometry.dims();

    let mut accumulators = vec![Accumulator::EMPTY; region_count as usize];
    for &key in order {
        let (suv, index) = unpack(key);
        let label = labels[index];
        if label == VISITED_BACKGROUND {
            labels[index] = 0;
            continue;
        }
        let id = region_of_node[label as usize - 1];
        labels[index] = id;
        let voxel = [index % nx, (index / nx) % ny, index / (nx * ny)];
        let a = &mut accumulators[id as usize - 1];
        if a.count == 0 {
            a.suv_max = suv;
            a.max_voxel = voxel;
        }
        a.count += 1;
        a.sum += f64::from(suv);
        for ((lo, hi), &c) in a.bbox_min.iter_mut().zip(&mut a.bbox_max).zip(&voxel) {
            *lo = (*lo).min(c);
            *hi = (*hi).max(c);
        }
    }
    drop(region_of_node);

    let sphere = PeakSphere::new(geometry);
    let voxel_ml = geometry.voxel_volume_ml();
    let regions = accumulators
        .par_iter()
        .enumerate()
        .map(|(i, a)| {
            let volume_ml = a.count as f64 * voxel_ml;
            let suv_mean = a.sum / a.count as f64;
            Region {
                id: i as u32 + 1,
                voxel_count: a.count,
                volume_ml,
                suv_max: a.suv_max,
                max_voxel: a.max_voxel,
                max_lps: geometry.voxel_to_patient(a.max_voxel.map(|c| c as f64)),
                suv_mean,
                suv_peak: sphere.mean_around(pet, a.max_voxel),
                total_uptake: suv_mean * volume_ml,
                bbox_min: a.bbox_min,
                bbox_max: a.bbox_max,
            }
        })
        .collect();
    (labels, regions)
}

/// Voxel offsets whose centres lie within the 1 mL SUVpeak sphere around a voxel's centre.
struct PeakSphere {
    offsets: Vec<[isize; 3]>,
}

impl PeakSphere {
    /// Distances are measured in patient space (direction and spacing), in `f64`. The search
    /// box is widened by 1 % and one voxel because the direction is orthonormal only to 1e-3,
    /// and clipped to the volume, which no offset can leave anyway.
    fn new(geometry: &Geometry) -> Self {
        let spacing = geometry.spacing_mm();
        let dims = geometry.dims();
        let reach: [isize; 3] = std::array::from_fn(|axis| {
            let r = (Region::SUV_PEAK_RADIUS_MM * 1.01 / spacing[axis]).ceil() as usize + 1;
            r.min(dims[axis] - 1) as isize
        });
        let origin = geometry.voxel_to_patient([0.0; 3]);
        let radius_squared = Region::SUV_PEAK_RADIUS_MM * Region::SUV_PEAK_RADIUS_MM;
        let mut offsets = Vec::new();
        for dz in -reach[2]..=reach[2] {
            for dy in -reach[1]..=reach[1] {
                for dx in -reach[0]..=reach[0] {
                    let p = geometry.voxel_to_patient([dx as f64, dy as f64, dz as f64]);
                    let d2 = (0..3).map(|k| (p[k] - origin[k]).powi(2)).sum::<f64>();
                    if d2 <= radius_squared {
                        offsets.push([dx, dy, dz]);
                    }
                }
            }
        }
        Self { offsets }
    }

    /// Mean SUV of the sphere's voxels that lie inside the volume.
    fn mean_around(&self, pet: &Volume<f32>, centre: [usize; 3]) -> f64 {
        let geometry = pet.geometry();
        let dims = geometry.dims();
        let data = pet.data();
        let mut sum = 0.0;
        let mut count = 0u64;
        for &offset in &self.offsets {
            let voxel: [Option<usize>; 3] = std::array::from_fn(|axis| {
                centre[axis]
                    .checked_add_signed(offset[axis])
                    .filter(|&c| c < dims[axis])
            });
            if let [Some(x), Some(y), Some(z)] = voxel {
                sum += f64::from(data[geometry.index(x, y, z)]);
                count += 1;
            }
        }
        // The centre itself is always inside, so count ≥ 1.
        sum / count.max(1) as f64
    }
}
