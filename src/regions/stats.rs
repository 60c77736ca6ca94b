//! Final labels and the statistics of each region.

use rayon::prelude::*;

use super::Region;
use super::sweep::{unpack, voxel_of};
use crate::volume::{Geometry, Volume};

/// Radius of the 1 mL sphere used for SUVpeak: (3 / (4π))^(1/3) · 10 mm. Not public: the C
/// header generator would export it.
const SUV_PEAK_RADIUS_MM: f64 = 6.2035;

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

/// Turns the labels the sweep left at the candidates into region ids (`region_id` of each,
/// 0 for none) and measures every region. `candidates` are the keys in index order, so the
/// label map and the PET are read in memory order; sums are therefore formed in an order
/// independent of the thread count and of the sweep used.
pub(super) fn label_and_measure(
    pet: &Volume<f32>,
    candidates: Vec<u64>,
    mut labels: Vec<u32>,
    region_count: u32,
    region_id: impl Fn(u32) -> u32,
) -> (Vec<u32>, Vec<Region>) {
    let geometry = pet.geometry();
    let [nx, ny, _] = geometry.dims();

    let mut accumulators = vec![Accumulator::EMPTY; region_count as usize];
    for &key in &candidates {
        let (suv, index) = unpack(key);
        let id = region_id(labels[index]);
        labels[index] = id;
        if id == 0 {
            continue;
        }
        let voxel = voxel_of(index, nx, ny);
        let a = &mut accumulators[id as usize - 1];
        // Strictly greater: among equal maxima the lowest index stays.
        if a.count == 0 || suv > a.suv_max {
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
    drop(candidates);

    // SUVpeak reads the PET around each maximum: visit the maxima in memory order, so that
    // neighbouring spheres share cache lines, then put the results back in id order.
    let sphere = PeakSphere::new(geometry);
    let mut by_position: Vec<(usize, usize)> = accumulators
        .iter()
        .enumerate()
        .map(|(i, a)| {
            (
                geometry.index(a.max_voxel[0], a.max_voxel[1], a.max_voxel[2]),
                i,
            )
        })
        .collect();
    by_position.sort_unstable();
    let peaks: Vec<(usize, f64)> = by_position
        .par_iter()
        .map(|&(_, i)| (i, sphere.mean_around(pet, accumulators[i].max_voxel)))
        .collect();
    drop(by_position);
    let mut suv_peak = vec![0.0; accumulators.len()];
    for (i, peak) in peaks {
        suv_peak[i] = peak;
    }

    let voxel_ml = geometry.voxel_volume_ml();
    let regions = accumulators
        .iter()
        .zip(suv_peak)
        .enumerate()
        .map(|(i, (a, suv_peak))| {
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
                suv_peak,
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
    /// The same offsets as flat index steps.
    flat: Vec<isize>,
    /// Largest |offset| along each axis: a centre this far from every face has its whole
    /// sphere inside the volume.
    reach: [usize; 3],
}

/// Voxels along each axis the SUVpeak sphere's search box reaches from its centre: the radius
/// in voxels widened by 1 % and one voxel, clipped to the volume (saturating: a spacing of
/// nanometres gives a radius beyond `usize`, which the clip brings back to the volume).
fn peak_search_reach(geometry: &Geometry) -> [usize; 3] {
    let (spacing, dims) = (geometry.spacing_mm(), geometry.dims());
    std::array::from_fn(|axis| {
        let r = (SUV_PEAK_RADIUS_MM * 1.01 / spacing[axis]).ceil() as usize;
        r.saturating_add(1).min(dims[axis] - 1)
    })
}

/// Bytes the SUVpeak sphere's offsets may take on this grid (24 + 8 per offset, at most every
/// voxel of its search box), for the analyzer's memory budget.
pub(crate) fn peak_sphere_bytes(geometry: &Geometry) -> u64 {
    peak_search_reach(geometry)
        .iter()
        .map(|&r| 2 * r as u64 + 1)
        .product::<u64>()
        .saturating_mul(32)
}

impl PeakSphere {
    /// Distances are measured in patient space (direction and spacing), in `f64`. The search
    /// box is widened by 1 % and one voxel because the direction is orthonormal only to 1e-3,
    /// and clipped to the volume, which no offset can leave anyway.
    fn new(geometry: &Geometry) -> Self {
        let dims = geometry.dims();
        let search = peak_search_reach(geometry).map(|r| r as isize);
        let origin = geometry.voxel_to_patient([0.0; 3]);
        let radius_squared = SUV_PEAK_RADIUS_MM * SUV_PEAK_RADIUS_MM;
        let mut offsets = Vec::new();
        for dz in -search[2]..=search[2] {
            for dy in -search[1]..=search[1] {
                for dx in -search[0]..=search[0] {
                    let p = geometry.voxel_to_patient([dx as f64, dy as f64, dz as f64]);
                    let d2 = (0..3).map(|k| (p[k] - origin[k]).powi(2)).sum::<f64>();
                    if d2 <= radius_squared {
                        offsets.push([dx, dy, dz]);
                    }
                }
            }
        }
        let [nx, ny, _] = dims;
        let flat = offsets
            .iter()
            .map(|&[dx, dy, dz]| dx + (dy + dz * ny as isize) * nx as isize)
            .collect();
        let reach = std::array::from_fn(|axis| {
            offsets
                .iter()
                .map(|o| o[axis].unsigned_abs())
                .max()
                .unwrap_or(0)
        });
        Self {
            offsets,
            flat,
            reach,
        }
    }

    /// Mean SUV of the sphere's voxels that lie inside the volume.
    fn mean_around(&self, pet: &Volume<f32>, centre: [usize; 3]) -> f64 {
        let geometry = pet.geometry();
        let dims = geometry.dims();
        let data = pet.data();
        let inside = (0..3).all(|axis| {
            centre[axis] >= self.reach[axis] && centre[axis] + self.reach[axis] < dims[axis]
        });
        if inside {
            let c = geometry.index(centre[0], centre[1], centre[2]);
            let sum: f64 = self
                .flat
                .iter()
                .map(|&step| f64::from(data[c.wrapping_add_signed(step)]))
                .sum();
            return sum / self.flat.len() as f64;
        }
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
