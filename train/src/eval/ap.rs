//! Average precision (area under the precision–recall curve, step-wise).
//!
//! With the distinct scores s_1 > s_2 > … > s_K as thresholds, P_k and R_k the precision and
//! recall of "score ≥ s_k", and R_0 = 0:
//!
//! AP = Σ_k (R_k − R_{k−1}) · P_k
//!
//! which is scikit-learn's `average_precision_score` (no interpolation). Tied scores form one
//! threshold, so the order of tied findings does not matter. Weights generalise repetition: a
//! finding of weight w counts as w copies, which is how a subject drawn twice by the bootstrap
//! enters the pooled curve.

use super::EvalError;

/// Average precision of `scores` against binary `positives`.
pub fn average_precision(scores: &[f64], positives: &[bool]) -> Result<f64, EvalError> {
    if scores.len() != positives.len() {
        return Err(EvalError::LengthMismatch {
            what: "average precision",
            left: scores.len(),
            right: positives.len(),
        });
    }
    let order = descending_order(scores)?;
    let weights = vec![1.0; scores.len()];
    weighted_average_precision(scores, positives, &weights, &order).ok_or(EvalError::NoPositives)
}

/// Indices of `scores` sorted by decreasing score; rejects NaN and infinities.
pub fn descending_order(scores: &[f64]) -> Result<Vec<usize>, EvalError> {
    if let Some((index, &value)) = scores.iter().enumerate().find(|(_, s)| !s.is_finite()) {
        return Err(EvalError::NonFiniteScore { index, value });
    }
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    Ok(order)
}

/// Average precision with per-finding weights, visiting findings in `order` (decreasing score,
/// from [`descending_order`]). `None` when the positive weight is zero (AP undefined).
pub fn weighted_average_precision(
    scores: &[f64],
    positives: &[bool],
    weights: &[f64],
    order: &[usize],
) -> Option<f64> {
    let total_positive: f64 = order
        .iter()
        .filter(|&&i| positives[i])
        .map(|&i| weights[i])
        .sum();
    if total_positive <= 0.0 {
        return None;
    }
    let (mut true_positive, mut false_positive) = (0.0f64, 0.0f64);
    let mut previous_recall = 0.0;
    let mut ap = 0.0;
    for (rank, &i) in order.iter().enumerate() {
        if positives[i] {
            true_positive += weights[i];
        } else {
            false_positive += weights[i];
        }
        let group_ends = order
            .get(rank + 1)
            .is_none_or(|&next| scores[next] != scores[i]);
        if group_ends && true_positive + false_positive > 0.0 {
            let recall = true_positive / total_positive;
            let precision = true_positive / (true_positive + false_positive);
            ap += (recall - previous_recall) * precision;
            previous_recall = recall;
        }
    }
    Some(ap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_ranking_gives_one() {
        let ap = average_precision(&[0.9, 0.8, 0.2, 0.1], &[true, true, false, false]).unwrap();
        assert_eq!(ap, 1.0);
    }

    #[test]
    fn hand_computed_example() {
        // Ranking: +, -, +  → (1/2)·1 + (1/2)·(2/3)
        let ap = average_precision(&[0.9, 0.5, 0.1], &[true, false, true]).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-15, "{ap}");
    }

    #[test]
    fn ties_form_one_threshold() {
        // All tied: one threshold with precision 1/2 and recall 1.
        let ap = average_precision(&[0.5; 4], &[true, false, true, false]).unwrap();
        assert_eq!(ap, 0.5);
    }

    #[test]
    fn weight_two_equals_a_duplicate() {
        let scores = [0.9, 0.7, 0.4, 0.3];
        let positives = [false, true, true, false];
        let order = descending_order(&scores).unwrap();
        let weighted =
            weighted_average_precision(&scores, &positives, &[2.0, 1.0, 1.0, 1.0], &order).unwrap();
        let duplicated = average_precision(
            &[0.9, 0.9, 0.7, 0.4, 0.3],
            &[false, false, true, true, false],
        )
        .unwrap();
        assert!((weighted - duplicated).abs() < 1e-15);
    }

    #[test]
    fn errors_are_typed() {
        assert!(matches!(
            average_precision(&[0.1], &[false]),
            Err(EvalError::NoPositives)
        ));
        assert!(matches!(
            average_precision(&[f64::NAN], &[true]),
            Err(EvalError::NonFiniteScore { index: 0, .. })
        ));
        assert!(matches!(
            average_precision(&[0.1, 0.2], &[true]),
            Err(EvalError::LengthMismatch { .. })
        ));
    }
}
