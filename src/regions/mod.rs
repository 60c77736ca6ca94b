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
//! # Bad input
//! Non-finite voxels are rejected; SUV ≤ 0 is background (the candidate threshold is > 0); a
//! volume without any candidate has no regions. Memory is bounded by the voxel count: 4 bytes
//! per voxel for the label map, 8 per candidate for the visiting order (16 while it is radix
//! sorted), 8 per seed for the union-find forest, and about 250 bytes per region for its
//! statistics and the returned [`Region`]. Seeds and regions never outnumber the candidates.

mod stats;
mod sweep;

use serde::Serialize;
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

/// One uptake region and its statistics (all on the native PET grid).
#[derive(Debug, Clone, PartialEq, Serialize)]
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

/// Segments the uptake regions of a PET volume in SUV (S4).
///
/// Deterministic: the result does not depend on the number of threads.
pub fn segment(pet: &Volume<f32>, params: &RegionParams) -> Result<Segmentation, RegionsError> {
    let threshold = params.candidate_threshold()?;
    let order = sweep::visiting_order(pet, threshold)?;
    let sweep = sweep::sweep(pet, &order, params);
    let (labels, regions) = stats::label_and_measure(pet, order, sweep);
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
    let sweep = sweep::sweep(pet, &order, params);
    let (labels, regions) = stats::label_and_measure(pet, order, sweep);
    Ok(Segmentation {
        labels: Volume::new(*pet.geometry(), labels)?,
        regions,
    })
}
