//! Synthetic findings for the staging and report tests: one region per finding, its location
//! given by class name in the v1 table.

use uptake::classes::{LocationClass, v1_classes, v1_id};
use uptake::regions::Region;
use uptake::staging::FindingInput;

/// A region with the given id, volume and SUVs; total uptake = SUVmean × mL, and SUVmax in the
/// PET's f32, as in S4.
pub fn region(id: u32, volume_ml: f64, suv_max: f64, suv_mean: f64) -> Region {
    Region {
        id,
        voxel_count: (volume_ml / 0.048).round() as u64,
        volume_ml,
        suv_max: suv_max as f32,
        max_voxel: [id as usize, 2, 3],
        max_lps: [id as f64, -20.5, 300.25],
        suv_mean,
        suv_peak: 0.5 * (suv_max + suv_mean),
        total_uptake: suv_mean * volume_ml,
        bbox_min: [0, 1, 2],
        bbox_max: [id as usize + 1, 4, 5],
    }
}

/// Location probabilities with 0.8 on `class` and the rest spread evenly.
fn probs_for(class: &str) -> Vec<f32> {
    let classes = v1_classes();
    let c = v1_id(class).unwrap_or_else(|| panic!("no class {class}")) as usize;
    let rest = 0.2 / (classes.len() - 1) as f32;
    (0..classes.len())
        .map(|i| if i == c { 0.8 } else { rest })
        .collect()
}

/// A finding of 1 mL, SUVmax 10, SUVmean 6 located in `class`.
pub fn finding(id: u32, class: &str, p_suspicious: f32) -> FindingInput {
    FindingInput {
        region: region(id, 1.0, 10.0, 6.0),
        p_suspicious,
        location_probs: probs_for(class),
    }
}

/// `n` suspicious findings in `class`, ids from `first`.
pub fn suspicious(first: u32, n: u32, class: &str) -> Vec<FindingInput> {
    (first..first + n)
        .map(|id| finding(id, class, 0.9))
        .collect()
}

pub fn classes() -> Vec<LocationClass> {
    v1_classes()
}
