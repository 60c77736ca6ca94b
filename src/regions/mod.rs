//! Uptake regions (DESIGN S4): incremental connected components at 45 % of each region's SUVmax.
//!
//! On the native PET grid, every voxel with `SUV ≥ f·t` (the *candidates*; f = 0.45, t = 1.0 SUV
//! by default) is visited once, in order of decreasing SUV, ties by increasing linear index
//! (x fastest). "Visited" means visited before the current voxel.
//!
//! ```text
//!  no visited neighbour ──> SUV > t ? seed a new region (peak = SUV) : background
//!  visited neighbours   ──> R = regions of the visited neighbours (after earlier merges)
//!                           A = { r in R : SUV ≥ f·peak(r) }
//!                           A empty ? background (tail of brighter uptake)
//!                                   : join the region of A with the highest peak (ties: the
//!                                     region created first) and merge the rest of A into it
//! ```
//!
//! Visited background voxels still count as visited neighbours, so a voxel on the tail of
//! brighter uptake never seeds a region, while a true local maximum above t always does.
//! An isolated hot spot therefore yields exactly the connected component of
//! `{SUV ≥ f·SUVmax}` that holds its maximum.
//!
//! # Neighbourhoods
//! ```text
//!     z-1          z          z+1        F: shares a face    (6-, 18- and 26-connectivity)
//!    C E C       E F E       C E C       E: shares an edge   (18 and 26)
//!    E F E       F . F       E F E       C: shares a corner  (26 only)
//!    C E C       E F E       C E C       rows y-1, y, y+1; columns x-1, x, x+1
//! ```
//! The neighbours are precomputed as flat index offsets; voxels on the volume's border take a
//! slower path that checks each neighbour's coordinates.
//!
//! # Arithmetic
//! All comparisons are made in `f32`, the type of the voxels: the candidate threshold is the
//! `f32` product `f·t`, the acceptance test is `SUV ≥ f·p` with `f·p` rounded to `f32`, and the
//! seed test is `SUV > t`. Rounded multiplication by a positive `f` is monotone, so a region
//! with a higher peak never accepts a voxel that a region with a lower peak rejects.
//!
//! # Passes
//! 1. Scan the PET once (in parallel, in fixed chunks): the candidates, in index order, as keys
//!    (SUV, linear index); non-finite voxels are rejected here.
//! 2. Radix sort the keys into visiting order.
//! 3. The sweep, one of two that give identical results:
//!    * *compact* (`compact.rs`): each candidate's list of neighbours visited before it is
//!      built in index order, then the sweep runs on arrays indexed by visiting rank that fit
//!      the cache. Chosen while the candidates are at most 1/32 of the voxels (they are
//!      1.6 % in the clinical-size phantom of `scripts/bench_regions.py`).
//!    * *direct*: reads the neighbours from the volume-sized label map in visiting order;
//!      slower (nearly every neighbourhood misses the cache) but without the lists, so memory
//!      stays small when most voxels are candidates.
//!
//!    [`segment_with`] runs a chosen one, so that both can be checked on any volume.
//! 4. In index order: region ids into the label map and the statistics of every region.
//!
//! # Bad input
//! Non-finite voxels are rejected; SUV ≤ 0 is background (the candidate threshold is > 0); a
//! volume without any candidate has no regions. Memory is bounded by the voxel count: 4 bytes
//! per voxel for the label map, 8 per candidate for the keys (16 while they are radix sorted),
//! 8 per seed for the union-find forest, and about 250 bytes per region for its statistics
//! and the returned [`Region`]. The compact sweep adds 16 bytes per candidate for the visiting
//! order, list ends and sweep labels, and its lists, reserved at 104 bytes per candidate and
//! never zeroed, so that unwritten pages of fresh memory stay unmapped (`compact.rs`): at most
//! about 4 bytes per voxel while it is chosen; 1.9 on the first call of
//! `scripts/bench_regions.py`'s clinical-size PET, 2.1 over repeated calls. Seeds and regions
//! never outnumber the candidates.

mod compact;
mod components;
mod slots;
mod stats;
pub(crate) use stats::peak_sphere_bytes;
mod subregions;
pub(crate) use subregions::SUBREGIONS_BYTES_PER_VOXEL;
mod sweep;

pub use components::components;
pub use subregions::{
    Subregion, SubregionParams, SubregionShape, Subregions, SubregionsError, subregions,
};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::volume::{Volume, VolumeError};

/// Which voxels count as neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(into = "u32")]
pub enum Connectivity {
    /// Voxels sharing a face.
    Six,
    /// Voxels sharing a face or an edge.
    Eighteen,
    /// Voxels sharing a face, an edge or a corner.
    #[default]
    TwentySix,
}

impl Connectivity {
    /// The three connectivities, fewest neighbours first.
    pub fn all() -> [Self; 3] {
        [Self::Six, Self::Eighteen, Self::TwentySix]
    }

    /// The connectivity with this many neighbours (6, 18 or 26).
    pub fn from_neighbours(count: u32) -> Option<Self> {
        match count {
            6 => Some(Self::Six),
            18 => Some(Self::Eighteen),
            26 => Some(Self::TwentySix),
            _ => None,
        }
    }

    /// Number of neighbours of an interior voxel.
    pub fn neighbours(self) -> u32 {
        match self {
            Self::Six => 6,
            Self::Eighteen => 18,
            Self::TwentySix => 26,
        }
    }

    /// Offsets (dx, dy, dz) of the neighbours, in increasing order of their flat offset.
    pub fn offsets(self) -> Vec<[isize; 3]> {
        // Number of non-zero components: 1 = face, 2 = edge, 3 = corner.
        let max_order = match self {
            Self::Six => 1,
            Self::Eighteen => 2,
            Self::TwentySix => 3,
        };
        let mut offsets = Vec::with_capacity(26);
        for dz in -1..=1isize {
            for dy in -1..=1isize {
                for dx in -1..=1isize {
                    let order = [dx, dy, dz].iter().filter(|&&d| d != 0).count();
                    if order > 0 && order <= max_order {
                        offsets.push([dx, dy, dz]);
                    }
                }
            }
        }
        offsets
    }
}

impl From<Connectivity> for u32 {
    fn from(c: Connectivity) -> u32 {
        c.neighbours()
    }
}

/// Parameters of S4.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct RegionParams {
    /// Fraction f of a region's SUVmax that its voxels reach (0.45).
    pub fraction: f32,
    /// Seed minimum t: a region starts only at a voxel with SUV > t (1.0 SUV).
    pub seed_min_suv: f32,
    pub connectivity: Connectivity,
}

impl Default for RegionParams {
    fn default() -> Self {
        Self {
            fraction: 0.45,
            seed_min_suv: 1.0,
            connectivity: Connectivity::TwentySix,
        }
    }
}

impl RegionParams {
    /// The candidate threshold f·t in `f32`, after checking the parameters.
    pub fn candidate_threshold(&self) -> Result<f32, RegionsError> {
        let f = self.fraction;
        if !(f > 0.0 && f <= 1.0) {
            return Err(RegionsError::BadFraction(f));
        }
        let t = self.seed_min_suv;
        if !(t.is_finite() && t > 0.0) {
            return Err(RegionsError::BadSeedMinimum(t));
        }
        let threshold = f * t;
        if threshold <= 0.0 {
            // f·t underflowed: zero and negative voxels would become candidates.
            return Err(RegionsError::ThresholdUnderflow {
                fraction: f,
                seed_min_suv: t,
            });
        }
        Ok(threshold)
    }
}

/// Why this stage rejected its input.
#[derive(Debug, Error)]
pub enum RegionsError {
    #[error(transparent)]
    Volume(#[from] VolumeError),
    #[error("threshold fraction {0} must lie in (0, 1]")]
    BadFraction(f32),
    #[error("seed minimum {0} SUV must be finite and > 0")]
    BadSeedMinimum(f32),
    #[error(
        "candidate threshold fraction × seed minimum ({fraction} × {seed_min_suv}) underflows to 0"
    )]
    ThresholdUnderflow { fraction: f32, seed_min_suv: f32 },
    #[error("the given visiting order is not S4's order of this PET's candidates: {0}")]
    BadOrder(String),
}

/// One uptake region and its statistics (all on the native PET grid; SUV as the PET gives it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Region {
    /// 1-based; ids follow descending SUVmax, ties by the linear index of the maximum voxel.
    pub id: u32,
    pub voxel_count: u64,
    /// voxel_count × voxel volume.
    pub volume_ml: f64,
    pub suv_max: f32,
    /// The maximum voxel (x, y, z); among equal maxima the one with the lowest linear index.
    pub max_voxel: [usize; 3],
    /// Patient LPS position of the maximum voxel's centre, mm.
    pub max_lps: [f64; 3],
    pub suv_mean: f64,
    /// Mean SUV of all voxels (of any label) whose centres lie within 6.2035 mm (the radius of
    /// a 1 mL sphere) of the maximum voxel's centre.
    pub suv_peak: f64,
    /// suv_mean × volume_ml.
    pub total_uptake: f64,
    /// Inclusive voxel bounding box.
    pub bbox_min: [usize; 3],
    pub bbox_max: [usize; 3],
}

/// The label map (0 = no region, otherwise the region id) and the regions, ordered by id.
#[derive(Debug, Clone)]
pub struct Segmentation {
    pub labels: Volume<u32>,
    pub regions: Vec<Region>,
}

/// Segments the uptake regions of a PET volume in SUV (S4), with the sweep chosen by the share
/// of candidates in the volume.
///
/// Deterministic: the result does not depend on the number of threads, nor on the sweep
/// used (see [`Sweep`]).
pub fn segment(pet: &Volume<f32>, params: &RegionParams) -> Result<Segmentation, RegionsError> {
    segment_with(pet, params, Sweep::Automatic)
}

/// How the sweep reads the labels of a candidate's neighbours. Both sweeps give identical
/// results; they differ in speed and memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Sweep {
    /// Compact while the candidates are at most 1/32 of the voxels, direct above.
    #[default]
    Automatic,
    /// From the volume-sized label map, in visiting order: no memory beyond the label map and
    /// the order, but nearly every neighbourhood misses the cache.
    Direct,
    /// From per-candidate lists built in index order (`compact.rs`): several times faster,
    /// for up to 120 bytes per candidate.
    Compact,
}

impl Sweep {
    /// The sweep to run for this many candidates among this many voxels.
    fn resolve(self, candidates: usize, voxels: usize) -> Self {
        let sweep = match self {
            Self::Automatic if candidates <= voxels / COMPACT_MAX_SHARE => Self::Compact,
            Self::Automatic => Self::Direct,
            chosen => chosen,
        };
        if sweep == Self::Compact && !compact::fits(candidates) {
            Self::Direct
        } else {
            sweep
        }
    }
}

/// The compact sweep is chosen while the candidates are at most this share of the voxels
/// (1/32), which keeps its memory under about 4 bytes per voxel beyond the direct sweep's.
const COMPACT_MAX_SHARE: usize = 32;

/// [`segment`] with a chosen sweep. A compact sweep over more candidates than its lists can
/// address (over 165 million) runs the direct one.
pub fn segment_with(
    pet: &Volume<f32>,
    params: &RegionParams,
    sweep: Sweep,
) -> Result<Segmentation, RegionsError> {
    let threshold = params.candidate_threshold()?;
    let candidates = sweep::candidates(pet, threshold)?;
    let sweep = sweep.resolve(candidates.len(), pet.data().len());
    let (labels, regions) = if sweep == Sweep::Compact {
        let ranked = compact::sweep(pet, &candidates, params);
        let (region_of_node, region_count) = ranked.forest.into_region_ids();
        let region_id =
            |rank: u32| region_of(&region_of_node, ranked.sweep_labels[rank as usize - 1]);
        stats::label_and_measure(pet, candidates, ranked.labels, region_count, region_id)
    } else {
        let mut order = candidates;
        sweep::sort_by_suv(&mut order);
        let (labels, forest) = sweep::sweep(pet, &order, params);
        let (region_of_node, region_count) = forest.into_region_ids();
        sweep::sort_by_index(&mut order);
        let region_id = |label: u32| region_of(&region_of_node, label);
        stats::label_and_measure(pet, order, labels, region_count, region_id)
    };
    Ok(Segmentation {
        labels: Volume::new(*pet.geometry(), labels)?,
        regions,
    })
}

/// [`segment`] over a visiting order computed elsewhere (the CUDA backend's `visiting_order`):
/// the same sweep and statistics. The order is checked to be exactly S4's (strictly ascending
/// candidate keys, each matching its voxel, as many as there are candidates), so a wrong one is
/// an error, never wrong labels.
pub fn segment_ordered(
    pet: &Volume<f32>,
    params: &RegionParams,
    order: Vec<u64>,
) -> Result<Segmentation, RegionsError> {
    use rayon::prelude::*;
    let threshold = params.candidate_threshold()?;
    pet.check_finite("PET")?;
    let data = pet.data();
    let matches = |&key: &u64| {
        let (suv, index) = sweep::unpack(key);
        suv >= threshold
            && data
                .get(index)
                .is_some_and(|v| v.to_bits() == suv.to_bits())
    };
    let candidates = data.par_iter().filter(|&&v| v >= threshold).count();
    if candidates != order.len() {
        let found = order.len();
        return Err(RegionsError::BadOrder(format!(
            "{found} keys for {candidates} candidates"
        )));
    }
    if !(order.par_iter().all(matches) && order.par_windows(2).all(|w| w[0] < w[1])) {
        return Err(RegionsError::BadOrder(
            "keys out of order or not matching the voxels".into(),
        ));
    }
    // The direct sweep: it takes the visiting order as given (the compact one ranks itself).
    let mut order = order;
    let (labels, forest) = sweep::sweep(pet, &order, params);
    let (region_of_node, region_count) = forest.into_region_ids();
    sweep::sort_by_index(&mut order);
    let region_id = |label: u32| region_of(&region_of_node, label);
    let (labels, regions) = stats::label_and_measure(pet, order, labels, region_count, region_id);
    Ok(Segmentation {
        labels: Volume::new(*pet.geometry(), labels)?,
        regions,
    })
}

/// The region id (0 = none) of a sweep label ([`sweep::VISITED_BACKGROUND`] or node + 1).
fn region_of(region_of_node: &[u32], sweep_label: u32) -> u32 {
    if sweep_label == sweep::VISITED_BACKGROUND {
        0
    } else {
        region_of_node[sweep_label as usize - 1]
    }
}

#[cfg(test)]
mod tests {
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    use super::*;
    use crate::volume::Geometry;

    /// Random values box-blurred `blurs` times, scaled to [low, high] and, with a quantum,
    /// rounded to multiples of it (plateaus and ties).
    fn random_volume(
        rng: &mut ChaCha8Rng,
        dims: [usize; 3],
        blurs: usize,
        [low, high]: [f32; 2],
        quantum: Option<f32>,
    ) -> Volume<f32> {
        let geometry = Geometry::axis_aligned(dims, [4.0, 4.0, 3.0], [0.0; 3]).unwrap();
        let [nx, ny, nz] = dims;
        let mut v: Vec<f32> = (0..geometry.len()).map(|_| rng.random::<f32>()).collect();
        for _ in 0..blurs {
            let mut out = vec![0.0; v.len()];
            for (i, o) in out.iter_mut().enumerate() {
                let [x, y, z] = geometry.coords(i);
                let (mut sum, mut n) = (0.0, 0.0);
                for zn in z.saturating_sub(1)..(z + 2).min(nz) {
                    for yn in y.saturating_sub(1)..(y + 2).min(ny) {
                        for xn in x.saturating_sub(1)..(x + 2).min(nx) {
                            sum += v[xn + nx * (yn + ny * zn)];
                            n += 1.0;
                        }
                    }
                }
                *o = sum / n;
            }
            v = out;
        }
        let (lo, hi) = v
            .iter()
            .fold((f32::MAX, f32::MIN), |(a, b), &x| (a.min(x), b.max(x)));
        for x in &mut v {
            *x = low + (*x - lo) / (hi - lo).max(1e-12) * (high - low);
            if let Some(q) = quantum {
                *x = (*x / q).round() * q;
            }
        }
        Volume::new(geometry, v).unwrap()
    }

    fn both_sweeps(pet: &Volume<f32>, params: &RegionParams) -> usize {
        let direct = segment_with(pet, params, Sweep::Direct).unwrap();
        let compact = segment_with(pet, params, Sweep::Compact).unwrap();
        assert_eq!(direct.labels.data(), compact.labels.data(), "{params:?}");
        assert_eq!(direct.regions, compact.regions, "{params:?}");
        direct.regions.len()
    }

    #[test]
    fn both_sweeps_give_the_same_labels_and_statistics() {
        let mut rng = ChaCha8Rng::seed_from_u64(45);
        let parameters = [(0.45, 1.0), (0.5, 1.0), (0.3, 2.0), (1.0, 0.5)];
        let (mut volumes, mut regions) = (0, 0);
        for k in 0..40 {
            // Thin volumes (every voxel on a border), unblurred noise (many maxima) and
            // quantised values (plateaus, ties) included.
            let dims = std::array::from_fn(|_| rng.random_range(1..=11));
            let quantum = [None, Some(0.125), Some(0.25)][k % 3];
            let pet = random_volume(&mut rng, dims, k % 3, [-0.5, 4.0], quantum);
            for (fraction, seed_min_suv) in parameters {
                for connectivity in Connectivity::all() {
                    let params = RegionParams {
                        fraction,
                        seed_min_suv,
                        connectivity,
                    };
                    regions += both_sweeps(&pet, &params);
                    volumes += 1;
                }
            }
        }
        assert_eq!(volumes, 480);
        assert!(regions > 2000, "{regions} regions");
    }

    #[test]
    fn sparse_uptake_takes_the_compact_sweep_and_agrees_with_the_direct_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let pet = random_volume(&mut rng, [40, 36, 30], 2, [-3.0, 1.6], Some(1.0 / 64.0));
        let candidates = sweep::candidates(&pet, 0.45).unwrap().len();
        assert!(candidates > 50, "{candidates} candidates");
        assert_eq!(
            Sweep::Automatic.resolve(candidates, pet.data().len()),
            Sweep::Compact
        );
        assert!(both_sweeps(&pet, &RegionParams::default()) > 3);
    }

    #[test]
    fn compact_sweep_over_several_runs_of_lists_agrees_with_the_direct_one() {
        // About a quarter of 64 × 65 × 48 voxels are candidates: several runs of lists and
        // several ranges of pass 1 (the last one partial), with runs and ranges ending inside
        // regions.
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        let pet = random_volume(&mut rng, [64, 65, 48], 1, [-1.0, 2.0], Some(1.0 / 128.0));
        let candidates = sweep::candidates(&pet, 0.45).unwrap().len();
        assert!(candidates > 3 * (1 << 14), "{candidates} candidates");
        for connectivity in Connectivity::all() {
            let params = RegionParams {
                connectivity,
                ..RegionParams::default()
            };
            assert!(both_sweeps(&pet, &params) > 50);
        }
    }

    #[test]
    fn automatic_sweep_follows_the_share_of_candidates() {
        let automatic = |candidates, voxels| Sweep::Automatic.resolve(candidates, voxels);
        assert_eq!(automatic(0, 1), Sweep::Compact);
        assert_eq!(automatic(1, 1), Sweep::Direct);
        assert_eq!(automatic(1000, 32_000), Sweep::Compact);
        assert_eq!(automatic(1001, 32_000), Sweep::Direct);
        // A chosen sweep is kept, unless the lists could not address the candidates.
        assert_eq!(Sweep::Compact.resolve(1001, 32_000), Sweep::Compact);
        assert_eq!(Sweep::Direct.resolve(1000, 32_000), Sweep::Direct);
        assert_eq!(
            Sweep::Compact.resolve(400_000_000, usize::MAX),
            Sweep::Direct
        );
    }
}
