//! Quantiles, summaries and the normal distribution tail.

use serde::Serialize;

/// Quantile `q` in [0, 1] of `values` with numpy's default (`method="linear"`, Hyndman–Fan type 7):
/// h = (n − 1)·q, x[⌊h⌋] + (h − ⌊h⌋)·(x[⌊h⌋+1] − x[⌊h⌋]) on the sorted values.
/// `None` for an empty slice.
pub fn quantile(values: &[f64], q: f64) -> Option<f64> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile_sorted(&sorted, q)
}

/// [`quantile`] on values already sorted ascending.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> Option<f64> {
    let last = sorted.len().checked_sub(1)?;
    let h = last as f64 * q.clamp(0.0, 1.0);
    let below = h.floor() as usize;
    let above = (below + 1).min(last);
    Some(sorted[below] + (h - below as f64) * (sorted[above] - sorted[below]))
}

/// The per-subject summary of the paper's Table 2.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Summary {
    /// Subjects where the metric is defined.
    pub n: usize,
    pub mean: f64,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub max: f64,
}

impl Summary {
    /// Summary of `values`, quantiles as in [`quantile`]; `None` for no values.
    pub fn of(values: &[f64]) -> Option<Summary> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Summary {
            n: sorted.len(),
            mean: sorted.iter().sum::<f64>() / sorted.len() as f64,
            min: *sorted.first()?,
            q1: quantile_sorted(&sorted, 0.25)?,
            median: quantile_sorted(&sorted, 0.5)?,
            q3: quantile_sorted(&sorted, 0.75)?,
            max: *sorted.last()?,
        })
    }
}

/// Sample standard deviation (n − 1 in the denominator, as R's `sd`); `None` below two values.
pub fn sample_std(values: &[f64]) -> Option<f64> {
    if values.len() < 2 {
        return None;
    }
    let mean = values.iter().sum::<f64>() / values.len() as f64;
    let squares: f64 = values.iter().map(|v| (v - mean).powi(2)).sum();
    Some((squares / (values.len() - 1) as f64).sqrt())
}

/// Two-sided p-value of a standard normal statistic: 2·P(Z > |z|) = erfc(|z|/√2).
pub fn two_sided_p(z: f64) -> f64 {
    if z.is_nan() {
        return f64::NAN;
    }
    erfc(z.abs() / std::f64::consts::SQRT_2).min(1.0)
}

/// Complementary error function for x ≥ 0, to about 1e-14 relative.
///
/// Below 2.5 it is 1 − erf(x) with erf from the all-positive series
/// erf(x) = 2/√π · e^{−x²} · Σ_n 2^n x^{2n+1} / (1·3·…·(2n+1)), which has no cancellation.
/// From 2.5 on, where 1 − erf would lose digits, the continued fraction
/// erfc(x) = e^{−x²}/√π · 1/(x + (1/2)/(x + 1/(x + (3/2)/(x + …)))) is evaluated backwards.
fn erfc(x: f64) -> f64 {
    const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;
    if x < 2.5 {
        let mut term = x;
        let mut sum = x;
        let mut n = 0.0;
        while term > sum * 1e-17 {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        1.0 - 2.0 * FRAC_1_SQRT_PI * (-x * x).exp() * sum
    } else {
        let mut tail = x;
        for k in (1..=120).rev() {
            tail = x + (k as f64 / 2.0) / tail;
        }
        (-x * x).exp() * FRAC_1_SQRT_PI / tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_match_numpy_linear() {
        // numpy.quantile([1, 2, 4, 8, 16], [0.25, 0.5, 0.75, 0.1]) = [2, 4, 8, 1.4]
        let v = [16.0, 1.0, 8.0, 2.0, 4.0];
        assert_eq!(quantile(&v, 0.25), Some(2.0));
        assert_eq!(quantile(&v, 0.5), Some(4.0));
        assert_eq!(quantile(&v, 0.75), Some(8.0));
        assert!((quantile(&v, 0.1).unwrap() - 1.4).abs() < 1e-12);
        // numpy.quantile([1, 2, 3, 4], 0.25) = 1.75
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.25), Some(1.75));
        assert_eq!(quantile(&[], 0.5), None);
        assert_eq!(quantile(&[3.0], 0.9), Some(3.0));
    }

    #[test]
    fn two_sided_p_matches_scipy() {
        // 2 * scipy.stats.norm.sf(z), scipy 1.x
        let cases = [
            (0.0, 1.0),
            (0.5, 0.617_075_077_451_973_8),
            (1.959_963_984_540_054, 0.05),
            (2.5, 0.012_419_330_651_552_265),
            (3.0, 0.002_699_796_063_260_186_6),
            (5.0, 5.733_031_437_583_866e-7),
            (8.0, 1.244_192_114_854_348e-15),
        ];
        for (z, expected) in cases {
            let p = two_sided_p(z);
            assert!(
                ((p - expected) / expected).abs() < 1e-12,
                "z {z}: {p} vs {expected}"
            );
            assert_eq!(two_sided_p(-z), p);
        }
    }

    #[test]
    fn summary_and_std() {
        let s = Summary::of(&[1.0, 2.0, 3.0, 4.0]).unwrap();
        assert_eq!((s.n, s.mean, s.min, s.max), (4, 2.5, 1.0, 4.0));
        assert_eq!((s.q1, s.median, s.q3), (1.75, 2.5, 3.25));
        assert!(Summary::of(&[]).is_none());
        // numpy.std([1, 2, 3, 4], ddof=1)
        assert!(
            (sample_std(&[1.0, 2.0, 3.0, 4.0]).unwrap() - 1.290_994_448_735_805_6).abs() < 1e-15
        );
    }
}
