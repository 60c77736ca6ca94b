//! The autoPET challenge's segmentation metrics, so that our figures sit beside its results:
//! Dice of the predicted lesion mask, false-positive volume (predicted connected components that
//! touch no ground-truth lesion voxel) and false-negative volume (ground-truth components that
//! touch no predicted voxel), components with 18-connectivity as in the challenge's
//! `val_script.py`. Dice and false-negative volume are defined on studies with lesions only.

use uptake::regions::{Connectivity, components};

/// The three figures of one study.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentationMetrics {
    /// 2|P ∩ G| / (|P| + |G|); `None` when the study has no lesion voxel.
    pub dice: Option<f64>,
    /// Volume of the predicted components without a ground-truth voxel, in ml.
    pub false_positive_ml: f64,
    /// Volume of the ground-truth components without a predicted voxel, in ml; `None` when the
    /// study has no lesion voxel.
    pub false_negative_ml: Option<f64>,
}

/// The metrics of `predicted` against `truth` (same grid, x fastest), each voxel `voxel_ml`.
///
/// # Panics
/// When the masks' lengths differ or are not the product of `dims`.
pub fn segmentation_metrics(
    predicted: &[bool],
    truth: &[bool],
    dims: [usize; 3],
    voxel_ml: f64,
) -> SegmentationMetrics {
    assert_eq!(predicted.len(), truth.len(), "mask lengths differ");
    let both = predicted
        .iter()
        .zip(truth)
        .filter(|(p, t)| **p && **t)
        .count();
    let count = |m: &[bool]| m.iter().filter(|&&v| v).count();
    let (p, g) = (count(predicted), count(truth));
    let has_lesions = g > 0;
    SegmentationMetrics {
        dice: has_lesions.then(|| 2.0 * both as f64 / (p + g) as f64),
        false_positive_ml: unmatched_voxels(predicted, truth, dims) as f64 * voxel_ml,
        false_negative_ml: has_lesions
            .then(|| unmatched_voxels(truth, predicted, dims) as f64 * voxel_ml),
    }
}

/// Voxels of the components of `mask` that share no voxel with `other`.
fn unmatched_voxels(mask: &[bool], other: &[bool], dims: [usize; 3]) -> usize {
    let (id, sizes) = components(mask, dims, Connectivity::Eighteen);
    let mut touched = vec![false; sizes.len()];
    for (&c, &o) in id.iter().zip(other) {
        if c != 0 && o {
            touched[c as usize - 1] = true;
        }
    }
    sizes
        .iter()
        .zip(&touched)
        .filter(|(_, t)| !**t)
        .map(|(s, _)| s)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lesion_missed_and_a_blob_invented_count_whole() {
        // 1-D row of 8 voxels: truth {0,1} and {5}; prediction {1,2} and {7}.
        let truth = [true, true, false, false, false, true, false, false];
        let predicted = [false, true, true, false, false, false, false, true];
        let m = segmentation_metrics(&predicted, &truth, [8, 1, 1], 0.5);
        assert_eq!(m.dice, Some(2.0 * 1.0 / 6.0));
        assert_eq!(m.false_positive_ml, 0.5); // {7}; {1,2} touches the truth
        assert_eq!(m.false_negative_ml, Some(0.5)); // {5}
    }

    #[test]
    fn a_study_without_lesions_has_only_a_false_positive_volume() {
        let m = segmentation_metrics(&[true, false], &[false, false], [2, 1, 1], 2.0);
        assert_eq!((m.dice, m.false_negative_ml), (None, None));
        assert_eq!(m.false_positive_ml, 2.0);
    }
}
