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

use std::fmt::{self, Write};
use std::path::Path;
use std::str::FromStr;

use serde::{Serialize, Serializer};
use uptake::{BonePattern, MStage, MiTnm, NStage, ParseStageError};
use uptake_phantom::{TrueBonePattern, TrueStage};

use super::EvalError;
use super::bootstrap::{percentile_interval, subject_weights};

/// The miN categories, in the order of the confusion matrices.
pub const N_STAGES: [NStage; 3] = [NStage::N0, NStage::N1, NStage::N2];
/// The miM codes, in the order of the confusion matrices.
pub const M_STAGES: [MCode; 7] = [
    MCode::M0,
    MCode::M1a,
    MCode::M1b(BonePattern::Unifocal),
    MCode::M1b(BonePattern::Oligometastatic),
    MCode::M1b(BonePattern::Disseminated),
    MCode::M1bDmi,
    MCode::M1c,
];

/// One miM code of the staging CSV: the highest M category, M1b with its bone pattern, and
/// diffuse marrow involvement as a pattern of its own (in place of the focal pattern).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MCode {
    /// No distant metastasis.
    M0,
    /// Extrapelvic lymph nodes.
    M1a,
    /// M1b with the pattern of its focal lesions.
    M1b(BonePattern),
    /// M1b with diffuse marrow involvement.
    M1bDmi,
    /// Other organs.
    M1c,
}

impl MCode {
    /// The M code of a stage the plugin's staging derived: dmi takes the place of the focal
    /// pattern. `None` for M1b without a bone pattern, which staging never gives.
    pub fn of_staging(tnm: &MiTnm) -> Option<Self> {
        Self::new(tnm.m, tnm.bone_pattern, tnm.dmi)
    }

    /// The M code of a phantom's true stage. `None` for M1b without a bone pattern, which the
    /// truth never gives.
    pub fn of_truth(truth: &TrueStage) -> Option<Self> {
        match truth.bone_pattern {
            Some(TrueBonePattern::Focal(p)) => Self::new(truth.mi_m, Some(p), false),
            Some(TrueBonePattern::DiffuseMarrow) => Self::new(truth.mi_m, None, true),
            None => Self::new(truth.mi_m, None, false),
        }
    }

    /// M1b takes its pattern from `dmi`, else from `pattern`; the other categories have none.
    fn new(m: MStage, pattern: Option<BonePattern>, dmi: bool) -> Option<Self> {
        match (m, pattern, dmi) {
            (MStage::M0, ..) => Some(MCode::M0),
            (MStage::M1a, ..) => Some(MCode::M1a),
            (MStage::M1b, _, true) => Some(MCode::M1bDmi),
            (MStage::M1b, Some(p), false) => Some(MCode::M1b(p)),
            (MStage::M1b, None, false) => None,
            (MStage::M1c, ..) => Some(MCode::M1c),
        }
    }

    /// Position in [`M_STAGES`].
    fn index(self) -> usize {
        match self {
            MCode::M0 => 0,
            MCode::M1a => 1,
            MCode::M1b(BonePattern::Unifocal) => 2,
            MCode::M1b(BonePattern::Oligometastatic) => 3,
            MCode::M1b(BonePattern::Disseminated) => 4,
            MCode::M1bDmi => 5,
            MCode::M1c => 6,
        }
    }

    /// "M0", "M1a", "M1b/u", "M1b/o", "M1b/d", "M1b/dmi" or "M1c".
    pub fn code(self) -> &'static str {
        match self {
            MCode::M0 => "M0",
            MCode::M1a => "M1a",
            MCode::M1b(BonePattern::Unifocal) => "M1b/u",
            MCode::M1b(BonePattern::Oligometastatic) => "M1b/o",
            MCode::M1b(BonePattern::Disseminated) => "M1b/d",
            MCode::M1bDmi => "M1b/dmi",
            MCode::M1c => "M1c",
        }
    }

    /// The M category, all bone patterns as one.
    pub fn category(self) -> MStage {
        match self {
            MCode::M0 => MStage::M0,
            MCode::M1a => MStage::M1a,
            MCode::M1b(_) | MCode::M1bDmi => MStage::M1b,
            MCode::M1c => MStage::M1c,
        }
    }
}

impl fmt::Display for MCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.code())
    }
}

impl Serialize for MCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.code())
    }
}

impl FromStr for MCode {
    type Err = ParseStageError;

    /// A code as [`MCode::code`] writes it, in any case, with or without the `mi` prefix: the
    /// category as the plugin reads it, then for M1b (and only there) "/" and the pattern.
    fn from_str(text: &str) -> Result<Self, ParseStageError> {
        let error = || ParseStageError {
            kind: "M",
            text: text.to_string(),
        };
        let (category, pattern) = match text.split_once('/') {
            Some((category, pattern)) => (category, Some(pattern.trim())),
            None => (text, None),
        };
        let m: MStage = category.parse().map_err(|_| error())?;
        match (m, pattern) {
            (MStage::M1b, Some(p)) if p.eq_ignore_ascii_case("dmi") => Self::new(m, None, true),
            (MStage::M1b, Some(p)) => Self::new(m, Some(p.parse().map_err(|_| error())?), false),
            (MStage::M1b, None) | (_, Some(_)) => None,
            (m, None) => Self::new(m, None, false),
        }
        .ok_or_else(error)
    }
}

/// Position of an N stage in [`N_STAGES`].
fn n_index(n: NStage) -> usize {
    match n {
        NStage::N0 => 0,
        NStage::N1 => 1,
        NStage::N2 => 2,
    }
}

/// Expert and predicted stages of one subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePair {
    pub subject: String,
    pub expert_n: NStage,
    pub predicted_n: NStage,
    pub expert_m: MCode,
    pub predicted_m: MCode,
}

impl StagePair {
    /// A subject's stages; `subject` must not hold a comma or a line break (the CSV's).
    pub fn new(
        subject: &str,
        (expert_n, expert_m): (NStage, MCode),
        (predicted_n, predicted_m): (NStage, MCode),
    ) -> Result<Self, String> {
        if subject.contains([',', '\n', '\r']) {
            return Err(format!(
                "subject {subject:?} contains a comma or a line break"
            ));
        }
        Ok(Self {
            subject: subject.to_string(),
            expert_n,
            predicted_n,
            expert_m,
            predicted_m,
        })
    }

    /// A subject's stages from their codes (`expert_N`, `predicted_N`, `expert_M`,
    /// `predicted_M`), written as [`read_csv`] accepts them.
    pub fn parse(subject: &str, [en, pn, em, pm]: [&str; 4]) -> Result<Self, String> {
        let n = |t: &str| t.parse::<NStage>().map_err(|e| e.to_string());
        let m = |t: &str| t.parse::<MCode>().map_err(|e| e.to_string());
        Self::new(subject, (n(en)?, m(em)?), (n(pn)?, m(pm)?))
    }
}

/// The staging CSV of `pairs`, as [`read_csv`] reads it.
pub fn to_csv(pairs: &[StagePair]) -> String {
    let mut text = "subject,expert_N,predicted_N,expert_M,predicted_M\n".to_string();
    for p in pairs {
        let _ = writeln!(
            text,
            "{},{},{},{},{}",
            p.subject, p.expert_n, p.predicted_n, p.expert_m, p.predicted_m
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
    pub n_stages: Vec<NStage>,
    pub n_confusion: Vec<Vec<usize>>,
    pub m_stages: Vec<MCode>,
    pub m_confusion: Vec<Vec<usize>>,
    pub n_exact: Agreement,
    pub n0_vs_n_positive: Agreement,
    pub m_exact: Agreement,
    pub m_without_bone_pattern: Agreement,
    pub m0_vs_m1: Agreement,
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
        n_confusion[n_index(p.expert_n)][n_index(p.predicted_n)] += 1;
        m_confusion[p.expert_m.index()][p.predicted_m.index()] += 1;
    }
    StagingAgreement {
        n_stages: N_STAGES.to_vec(),
        n_confusion,
        m_stages: M_STAGES.to_vec(),
        m_confusion,
        n_exact: count(|p| p.expert_n == p.predicted_n),
        n0_vs_n_positive: count(|p| (p.expert_n == NStage::N0) == (p.predicted_n == NStage::N0)),
        m_exact: count(|p| p.expert_m == p.predicted_m),
        m_without_bone_pattern: count(|p| p.expert_m.category() == p.predicted_m.category()),
        m0_vs_m1: count(|p| (p.expert_m == MCode::M0) == (p.predicted_m == MCode::M0)),
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
        assert_eq!("miN2".parse(), Ok(N_STAGES[2]));
        assert_eq!("n0".parse(), Ok(N_STAGES[0]));
        assert_eq!("miM1b/D".parse(), Ok(M_STAGES[4]));
        assert_eq!("M1b/dmi".parse(), Ok(M_STAGES[5]));
        assert!("M1b".parse::<MCode>().is_err());
        assert!("N3".parse::<NStage>().is_err());
        assert!("M0/u".parse::<MCode>().is_err());
        assert!("M1b/x".parse::<MCode>().is_err());
    }

    #[test]
    fn every_code_reads_back_and_sits_at_its_index() {
        for (i, &m) in M_STAGES.iter().enumerate() {
            assert_eq!(m.index(), i);
            assert_eq!(m.code().parse(), Ok(m));
            assert_eq!(format!("mi{}", m.code().to_uppercase()).parse(), Ok(m));
        }
        for (i, &n) in N_STAGES.iter().enumerate() {
            assert_eq!(n_index(n), i);
        }
    }

    #[test]
    fn staging_and_truth_give_the_codes_of_their_categories() {
        use uptake::TStage;
        use uptake::classes::Role;
        let tnm = |m, bone_pattern, dmi| MiTnm {
            t: TStage::T0,
            t_findings: vec![],
            n: NStage::N0,
            n_findings: vec![],
            m,
            m_categories: vec![],
            bone_pattern,
            dmi,
        };
        let d = Some(BonePattern::Disseminated);
        assert_eq!(
            MCode::of_staging(&tnm(MStage::M0, None, false)),
            Some(MCode::M0)
        );
        assert_eq!(
            MCode::of_staging(&tnm(MStage::M1b, d, false)),
            Some(M_STAGES[4])
        );
        assert_eq!(
            MCode::of_staging(&tnm(MStage::M1b, d, true)),
            Some(MCode::M1bDmi)
        );
        assert_eq!(
            MCode::of_staging(&tnm(MStage::M1c, d, true)),
            Some(MCode::M1c)
        );
        assert_eq!(MCode::of_staging(&tnm(MStage::M1b, None, false)), None);
        for (roles, diffuse) in [
            (&[][..], false),
            (&[Role::M1a], false),
            (&[Role::M1b, Role::M1b], false),
            (&[Role::M1b], true),
            (&[], true),
            (&[Role::M1b, Role::M1c], false),
        ] {
            let truth = uptake_phantom::stage(roles, diffuse);
            let code = MCode::of_truth(&truth).unwrap();
            assert_eq!(code.code(), truth.m_code(), "{roles:?}");
            assert_eq!(code.category(), truth.mi_m, "{roles:?}");
        }
    }

    #[test]
    fn written_csv_reads_back_as_the_same_pairs() {
        let pairs = vec![
            StagePair::parse("a", ["N0", "miN2", "M0", "M1b/dmi"]).unwrap(),
            StagePair::parse("b", ["n1", "N1", "miM1c", "m1b/o"]).unwrap(),
        ];
        assert_eq!(pairs[0].predicted_n, N_STAGES[2]);
        assert_eq!(pairs[1].predicted_m, M_STAGES[3]);
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
        let pair = |em: usize, pm: usize| StagePair {
            subject: "s".into(),
            expert_n: N_STAGES[0],
            predicted_n: N_STAGES[1],
            expert_m: M_STAGES[em],
            predicted_m: M_STAGES[pm],
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
                expert_n: N_STAGES[1],
                predicted_n: N_STAGES[match i {
                    0..300 => 1,
                    300..340 => 2,
                    _ => 0,
                }],
                expert_m: M_STAGES[2],
                predicted_m: M_STAGES[match i {
                    0..260 => 2,
                    260..280 => 3,
                    280..320 => 1,
                    _ => 0,
                }],
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
