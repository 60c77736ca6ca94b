//! miN and miM agreement between expert and predicted staging (paper, Tables 3 and 4).
//!
//! Input is a CSV `subject,expert_N,predicted_N,expert_M,predicted_M` with stages written as in
//! PROMISE (`N0`, `N1`, `N2`; `M0`, `M1a`, `M1b/u`, `M1b/o`, `M1b/d`, `M1b/dmi`, `M1c`), with or
//! without the `mi` prefix, any case. Agreement figures:
//! - N exact; N0 vs N+ (any regional node);
//! - M exact; M without the bone pattern (all M1b/* as one); M0 vs M1 (any distant metastasis).
//!
//! Each figure can have a 95 % interval from subject-level bootstrap resamples (seed 0), drawn as
//! `evaluate` draws them, so a few dozen studies show how far their agreement can be trusted.

use std::fmt::Write;
use std::path::Path;

use serde::Serialize;

use super::EvalError;
use super::bootstrap::{percentile_interval, subject_weights};

pub const N_STAGES: [&str; 3] = ["N0", "N1", "N2"];
pub const M_STAGES: [&str; 7] = ["M0", "M1a", "M1b/u", "M1b/o", "M1b/d", "M1b/dmi", "M1c"];

/// Index of a stage name in `stages`, ignoring case and an `mi` prefix.
fn parse_stage(stages: &[&str], text: &str) -> Option<usize> {
    let lower = text.trim().to_ascii_lowercase();
    let bare = lower.strip_prefix("mi").unwrap_or(&lower);
    stages.iter().position(|s| s.to_ascii_lowercase() == bare)
}

/// Expert and predicted stages of one subject (indices into [`N_STAGES`] / [`M_STAGES`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePair {
    pub subject: String,
    pub expert_n: usize,
    pub predicted_n: usize,
    pub expert_m: usize,
    pub predicted_m: usize,
}

impl StagePair {
    /// A subject's stages from their names (`expert_N`, `predicted_N`, `expert_M`,
    /// `predicted_M`), written as [`read_csv`] accepts them.
    pub fn parse(subject: &str, [en, pn, em, pm]: [&str; 4]) -> Result<Self, String> {
        if subject.contains([',', '\n', '\r']) {
            return Err(format!(
                "subject {subject:?} contains a comma or a line break"
            ));
        }
        let n = |t: &str| parse_stage(&N_STAGES, t).ok_or_else(|| format!("unknown N stage {t:?}"));
        let m = |t: &str| parse_stage(&M_STAGES, t).ok_or_else(|| format!("unknown M stage {t:?}"));
        Ok(Self {
            subject: subject.to_string(),
            expert_n: n(en)?,
            predicted_n: n(pn)?,
            expert_m: m(em)?,
            predicted_m: m(pm)?,
        })
    }
}

/// The staging CSV of `pairs`, as [`read_csv`] reads it.
pub fn to_csv(pairs: &[StagePair]) -> String {
    let mut text = "subject,expert_N,predicted_N,expert_M,predicted_M\n".to_string();
    for p in pairs {
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            p.subject,
            N_STAGES[p.expert_n],
            N_STAGES[p.predicted_n],
            M_STAGES[p.expert_m],
            M_STAGES[p.predicted_m]
        );
    }
    text
}

/// A fraction with its counts, and its 95 % bootstrap interval where resamples were drawn.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Agreement {
    pub agree: usize,
    pub total: usize,
    pub fraction: f64,
    pub low: Option<f64>,
    pub high: Option<f64>,
}

impl Agreement {
    /// `weights`: each subject's multiplicity in each bootstrap replicate (none: no interval).
    fn with_interval(
        pairs: &[StagePair],
        weights: &[Vec<f64>],
        same: impl Fn(&StagePair) -> bool,
    ) -> Agreement {
        let agrees: Vec<bool> = pairs.iter().map(same).collect();
        let agree = agrees.iter().filter(|&&a| a).count();
        // Without subjects no replicate draws any, and there is no interval.
        let replicates: Vec<f64> = weights
            .iter()
            .filter_map(|w| {
                let drawn: f64 = w.iter().sum();
                let hits: f64 = w
                    .iter()
                    .zip(&agrees)
                    .filter(|(_, a)| **a)
                    .map(|(w, _)| w)
                    .sum();
                (drawn > 0.0).then(|| hits / drawn)
            })
            .collect();
        let (low, high) = percentile_interval(replicates);
        Agreement {
            agree,
            total: pairs.len(),
            fraction: agree as f64 / pairs.len().max(1) as f64,
            low,
            high,
        }
    }
}

/// Confusion matrices (rows expert, columns predicted) and agreement figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StagingAgreement {
    pub n_stages: Vec<&'static str>,
    pub n_confusion: Vec<Vec<usize>>,
    pub m_stages: Vec<&'static str>,
    pub m_confusion: Vec<Vec<usize>>,
    pub n_exact: Agreement,
    pub n0_vs_n_positive: Agreement,
    pub m_exact: Agreement,
    pub m_without_bone_pattern: Agreement,
    pub m0_vs_m1: Agreement,
}

/// M stage with all bone patterns merged: M0, M1a, M1b, M1c.
fn without_bone_pattern(m: usize) -> usize {
    match M_STAGES[m] {
        "M0" => 0,
        "M1a" => 1,
        "M1c" => 3,
        _ => 2,
    }
}

/// Confusion matrices and agreement of `pairs`, each figure with its 95 % interval from
/// `resamples` subject-level bootstrap resamples (seed 0; 0 resamples: counts only).
pub fn agreement(pairs: &[StagePair], resamples: usize) -> StagingAgreement {
    let subjects: Vec<&str> = pairs.iter().map(|p| p.subject.as_str()).collect();
    let weights = subject_weights(&subjects, resamples, 0);
    let count = |same: fn(&StagePair) -> bool| Agreement::with_interval(pairs, &weights, same);
    let mut n_confusion = vec![vec![0; N_STAGES.len()]; N_STAGES.len()];
    let mut m_confusion = vec![vec![0; M_STAGES.len()]; M_STAGES.len()];
    for p in pairs {
        n_confusion[p.expert_n][p.predicted_n] += 1;
        m_confusion[p.expert_m][p.predicted_m] += 1;
    }
    StagingAgreement {
        n_stages: N_STAGES.to_vec(),
        n_confusion,
        m_stages: M_STAGES.to_vec(),
        m_confusion,
        n_exact: count(|p| p.expert_n == p.predicted_n),
        n0_vs_n_positive: count(|p| (p.expert_n == 0) == (p.predicted_n == 0)),
        m_exact: count(|p| p.expert_m == p.predicted_m),
        m_without_bone_pattern: count(|p| {
            without_bone_pattern(p.expert_m) == without_bone_pattern(p.predicted_m)
        }),
        m0_vs_m1: count(|p| (p.expert_m == 0) == (p.predicted_m == 0)),
    }
}

/// Reads the staging CSV (header `subject,expert_N,predicted_N,expert_M,predicted_M`).
pub fn read_csv(path: &Path) -> Result<Vec<StagePair>, EvalError> {
    let text = std::fs::read_to_string(path)?;
    let error = |line: usize, message: String| EvalError::Csv {
        path: path.display().to_string(),
        line,
        message,
    };
    let mut lines = text.lines().enumerate();
    let header = "subject,expert_n,predicted_n,expert_m,predicted_m";
    match lines.next() {
        Some((_, h)) if h.trim().to_ascii_lowercase() == header => {}
        _ => {
            return Err(error(
                1,
                "header must be subject,expert_N,predicted_N,expert_M,predicted_M".into(),
            ));
        }
    }
    let mut pairs = Vec::new();
    for (i, line) in lines {
        if line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        let [subject, en, pn, em, pm] = fields[..] else {
            return Err(error(
                i + 1,
                format!("expected 5 fields, found {}", fields.len()),
            ));
        };
        pairs.push(StagePair::parse(subject, [en, pn, em, pm]).map_err(|e| error(i + 1, e))?);
    }
    if pairs.is_empty() {
        return Err(EvalError::Empty);
    }
    Ok(pairs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names_parse_with_and_without_prefix() {
        assert_eq!(parse_stage(&N_STAGES, "miN2"), Some(2));
        assert_eq!(parse_stage(&N_STAGES, "n0"), Some(0));
        assert_eq!(parse_stage(&M_STAGES, "miM1b/D"), Some(4));
        assert_eq!(parse_stage(&M_STAGES, "M1b/dmi"), Some(5));
        assert_eq!(parse_stage(&M_STAGES, "M1b"), None);
        assert_eq!(parse_stage(&N_STAGES, "N3"), None);
    }

    #[test]
    fn written_csv_reads_back_as_the_same_pairs() {
        let pairs = vec![
            StagePair::parse("a", ["N0", "miN2", "M0", "M1b/dmi"]).unwrap(),
            StagePair::parse("b", ["n1", "N1", "miM1c", "m1b/o"]).unwrap(),
        ];
        assert_eq!(pairs[0].predicted_n, 2);
        assert_eq!(pairs[1].predicted_m, 3);
        assert!(StagePair::parse("c", ["N0", "N3", "M0", "M0"]).is_err());
        assert!(StagePair::parse("c,d", ["N0", "N0", "M0", "M0"]).is_err());
        assert_eq!(
            to_csv(&pairs),
            "subject,expert_N,predicted_N,expert_M,predicted_M\n\
             a,N0,N2,M0,M1b/dmi\n\
             b,N1,N1,M1c,M1b/o\n"
        );
        let path = std::env::temp_dir().join(format!("staging-{}.csv", std::process::id()));
        std::fs::write(&path, to_csv(&pairs)).unwrap();
        let read = read_csv(&path);
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read.unwrap(), pairs);
    }

    #[test]
    fn bone_patterns_merge() {
        let pair = |em, pm| StagePair {
            subject: "s".into(),
            expert_n: 0,
            predicted_n: 1,
            expert_m: em,
            predicted_m: pm,
        };
        let a = agreement(&[pair(2, 4), pair(0, 1), pair(6, 6)], 0);
        assert_eq!(a.m_exact.agree, 1);
        assert_eq!(a.m_without_bone_pattern.agree, 2);
        assert_eq!(a.m0_vs_m1.agree, 2);
        assert_eq!(a.n_exact.agree, 0);
        assert_eq!(a.n0_vs_n_positive.agree, 0);
        assert_eq!(a.m_confusion[2][4], 1);
    }

    /// 400 subjects, expert N1 and M1b/u, on whom the five figures agree in 300 (N exact), 340
    /// (N0 vs N+), 260 (M exact), 280 (M without the bone pattern) and 320 (M0 vs M1).
    fn staged() -> Vec<StagePair> {
        (0..400)
            .map(|i| StagePair {
                subject: format!("s{i:04}"),
                expert_n: 1,
                predicted_n: match i {
                    0..300 => 1,
                    300..340 => 2,
                    _ => 0,
                },
                expert_m: 2,
                predicted_m: match i {
                    0..260 => 2,
                    260..280 => 3,
                    280..320 => 1,
                    _ => 0,
                },
            })
            .collect()
    }

    #[test]
    fn each_interval_matches_the_normal_approximation_of_its_own_proportion() {
        // p ± 1.96 √(p(1 − p)/n): for 340 of 400, 0.85 ± 0.035. The bootstrap's percentiles
        // move in steps of 1/400, and 2000 replicates add about 0.001 of noise to each; the
        // 90 % percentiles (± 0.029 there) would miss by 0.006.
        let a = agreement(&staged(), 2000);
        for (figure, agree) in [
            (a.n_exact, 300),
            (a.n0_vs_n_positive, 340),
            (a.m_exact, 260),
            (a.m_without_bone_pattern, 280),
            (a.m0_vs_m1, 320),
        ] {
            let p = agree as f64 / 400.0;
            assert_eq!(
                (figure.agree, figure.total, figure.fraction),
                (agree, 400, p)
            );
            let half = 1.96 * (p * (1.0 - p) / 400.0).sqrt();
            let (low, high) = (figure.low.unwrap(), figure.high.unwrap());
            assert!((low - (p - half)).abs() < 0.004, "{figure:?}");
            assert!((high - (p + half)).abs() < 0.004, "{figure:?}");
        }
    }

    #[test]
    fn intervals_collapse_when_all_agree_and_are_absent_without_resamples_or_subjects() {
        let pairs = staged();
        let all = agreement(&pairs[..250], 2000).m_exact;
        assert_eq!(
            (all.low, all.fraction, all.high),
            (Some(1.0), 1.0, Some(1.0))
        );
        let counts = agreement(&pairs, 0).m0_vs_m1;
        assert_eq!((counts.agree, counts.low, counts.high), (320, None, None));
        let none = agreement(&[], 2000).n_exact;
        assert_eq!((none.total, none.low, none.high), (0, None, None));
    }
}
