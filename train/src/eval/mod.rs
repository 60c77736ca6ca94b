//! Evaluation statistics of DESIGN S12, as the paper reports them.
//!
//! - [`ap`]: pooled average precision, step-wise, equal to scikit-learn's `average_precision_score`.
//! - [`metrics`]: findings of many subjects, pooled and per-subject metrics at an operating point.
//! - [`bootstrap`]: 95 % confidence intervals from subject-level bootstrap resamples and the
//!   two-sided paired z-test on bootstrap replicates, with Bonferroni correction.
//! - [`agreement`]: miN and miM confusion matrices and percent agreement.
//! - [`autopet`]: the autoPET challenge's Dice, false-positive and false-negative volumes.
//! - [`stats`]: quantiles (numpy's default, linear), summaries, the normal tail.

pub mod agreement;
pub mod ap;
pub mod autopet;
pub mod bootstrap;
pub mod metrics;
pub mod stats;

/// Why an evaluation could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{what}: {left} scores but {right} labels")]
    LengthMismatch {
        what: &'static str,
        left: usize,
        right: usize,
    },
    #[error("score {value} at position {index} is not finite")]
    NonFiniteScore { index: usize, value: f64 },
    #[error("average precision is undefined without positive examples")]
    NoPositives,
    #[error("{path}:{line}: {message}")]
    Csv {
        path: String,
        line: usize,
        message: String,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("no subjects to evaluate")]
    Empty,
    #[error("some findings carry the report's call and some do not")]
    PartlyReported,
    #[error("the findings carry no report's calls (a findings.csv without its reported column)")]
    NotReported,
    #[error("compared evaluations must hold the same subjects: {0}")]
    SubjectMismatch(String),
}
