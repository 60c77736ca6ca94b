//! Findings: the uptake regions of a study as classified, the unit that staging assesses
//! (DESIGN S8) and the report lists (DESIGN S9).

use serde::{Deserialize, Serialize};

use crate::classes::Role;
use crate::regions::Region;

/// One location class with the network's probability for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LocationPrediction {
    /// Class id in the model's table (DESIGN S6).
    pub id: u32,
    pub name: String,
    pub probability: f32,
}

/// Which candidate stage proposed a finding's region.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// An uptake region of S4, the paper's method.
    #[default]
    S4,
    /// A focus inside an S4 region (`regions::subregions`, issue #33).
    Subregion,
}

/// One uptake region with its classification and what it means for staging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The region's statistics (S4), as segmented.
    pub region: Region,
    pub p_suspicious: f32,
    /// `p_suspicious ≥` the operating point of its location's role (`StagingConfig`).
    pub suspicious: bool,
    /// The most probable location (equal to `top3[0]`).
    pub location: LocationPrediction,
    /// The three most probable locations, most probable first (ties: lower id first).
    pub top3: [LocationPrediction; 3],
    /// The staging role this finding contributes to; `None` when it is not suspicious.
    pub role: Option<Role>,
    /// miPSMA expression score 0–3; `None` when it is not suspicious.
    pub expression_score: Option<u8>,
    /// The stage that proposed the region.
    #[serde(default)]
    pub source: Source,
    /// For a sub-region, the id of the S4 region that holds it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<u32>,
}
