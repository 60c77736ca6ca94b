//! The radiotracer of a study.

use serde::{Deserialize, Serialize};

/// Which tracer the PET shows; the network's tracer bit (DESIGN S7) is 0 for PSMA, 1 for FDG.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tracer {
    /// 68Ga-PSMA-11.
    Psma,
    /// 18F-FDG.
    Fdg,
}

impl Tracer {
    /// The network input bit.
    pub fn bit(self) -> f32 {
        match self {
            Tracer::Psma => 0.0,
            Tracer::Fdg => 1.0,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Tracer::Psma => "psma",
            Tracer::Fdg => "fdg",
        }
    }
}

impl std::str::FromStr for Tracer {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "psma" => Ok(Tracer::Psma),
            "fdg" => Ok(Tracer::Fdg),
            other => Err(format!("unknown tracer {other:?}: expected psma or fdg")),
        }
    }
}
