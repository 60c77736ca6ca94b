//! PROMISE miTNM staging and tumour burden (DESIGN S8).
//!
//! Input: every uptake region of a study with the network's output (p_suspicious and one
//! probability per location class of the model's table). A finding's location is the most
//! probable class, whose role in the table (T, N, M1a, M1b, M1c) says what it means for staging;
//! it is suspicious when `p_suspicious` reaches the operating point of that role: `threshold`
//! for local and regional findings, `distant_threshold` for distant ones (M1a, M1b, M1c), where
//! a single false finding turns a study metastatic. From the suspicious findings:
//!
//! ```text
//! miT  T0 | T+                  any local (prostate, bladder) finding
//! miN  N0 | N1 | N2             0 | 1 | ≥ 2 regional node findings
//! miM  M0 | M1a | M1b | M1c     highest present: M1c > M1b > M1a
//!      bone pattern             u: 1 lesion, o: 2–3, d: ≥ 4
//!      dmi                      suspicious bone volume > dmi_fraction × skeleton volume
//! ```
//!
//! Burden (tumour volume, total lesion uptake, counts per role) and the miPSMA expression score
//! of each suspicious finding against reference SUVmean values of the same study complete it.
//! docs/report-schema.md states every choice made here for the report's readers.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::classes::{LocationClass, Role};
use crate::findings::{Finding, LocationPrediction, Source};
use crate::model::OperatingPoints;
use crate::regions::Region;
use crate::volume::Volume;

/// CT value (HU) above which a voxel of the common grid counts as skeleton for dmi.
const BONE_HU: f32 = 200.0;
/// Class name (model table) of the liver reference regions.
const LIVER_CLASS: &str = "liver";
/// Class name (model table) of the parotid reference regions: the class covers all major
/// salivary glands, whose PSMA uptake is of the same order as the parotid's.
const PAROTID_CLASS: &str = "salivary_gland";

/// Why staging rejected its input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum StagingError {
    #[error("{name} is {value}; it must lie in [0, 1]")]
    Threshold { name: &'static str, value: f32 },
    #[error("dmi_fraction is {0}; it must lie in (0, 1]")]
    DmiFraction(f64),
    #[error("blood_pool_suv is {0}; it must be finite and > 0")]
    BloodPool(f64),
    #[error("skeleton volume is {0} mL; it must be finite and ≥ 0")]
    SkeletonVolume(f64),
    #[error("the location class table has {0} classes; staging needs at least 3")]
    TooFewClasses(usize),
    #[error("region {region}: {got} location probabilities for a class table of {expected}")]
    LocationCount {
        region: u32,
        got: usize,
        expected: usize,
    },
    #[error("region {region}: {what} is {value}; it must lie in [0, 1]")]
    Probability {
        region: u32,
        what: &'static str,
        value: f32,
    },
    #[error("region {region}: {field} is {value}; it must be finite")]
    NonFinite {
        region: u32,
        field: &'static str,
        value: f64,
    },
    #[error("region {region}: volume is {value} mL; it must be ≥ 0")]
    NegativeVolume { region: u32, value: f64 },
    #[error("region id 0 is background in the label map and cannot be a finding")]
    ZeroRegionId,
    #[error("region id {0} appears in more than one finding")]
    DuplicateRegion(u32),
}

/// Settings of the staging rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StagingConfig {
    /// Operating point of local and regional findings (roles T and N): suspicious when
    /// `p_suspicious ≥ threshold`. Default 0.5; the analyzer replaces it by the model's for the
    /// study's tracer.
    pub threshold: f32,
    /// Operating point of distant findings (roles M1a, M1b, M1c). Default 0.5; the analyzer
    /// replaces it by the model's distant operating point for the study's tracer (its single
    /// one when it has no separate one).
    pub distant_threshold: f32,
    /// Read classes that carry an alternative role with that role (model v1: common iliac
    /// nodes as regional, N, instead of M1a). Default false.
    pub common_iliac_as_regional: bool,
    /// dmi when the suspicious bone volume exceeds this fraction of the skeleton volume.
    /// Default 0.2: several large focal lesions (S11 lesions are ≤ 20 mL each) stay far below
    /// a fifth of an adult skeleton (litres), only superscan-like involvement reaches it.
    pub dmi_fraction: f64,
    /// Blood-pool reference SUVmean for the expression score. Default 1.5, a typical aortic
    /// blood-pool SUVmean one hour after 68Ga-PSMA-11.
    pub blood_pool_suv: f64,
}

impl Default for StagingConfig {
    fn default() -> Self {
        Self {
            threshold: 0.5,
            distant_threshold: 0.5,
            common_iliac_as_regional: false,
            dmi_fraction: 0.2,
            blood_pool_suv: 1.5,
        }
    }
}

impl StagingConfig {
    /// Checks every field's range.
    pub fn validate(&self) -> Result<(), StagingError> {
        for (name, value) in [
            ("threshold", self.threshold),
            ("distant_threshold", self.distant_threshold),
        ] {
            if !(0.0..=1.0).contains(&value) {
                return Err(StagingError::Threshold { name, value });
            }
        }
        if !(self.dmi_fraction > 0.0 && self.dmi_fraction <= 1.0) {
            return Err(StagingError::DmiFraction(self.dmi_fraction));
        }
        if !(self.blood_pool_suv.is_finite() && self.blood_pool_suv > 0.0) {
            return Err(StagingError::BloodPool(self.blood_pool_suv));
        }
        Ok(())
    }

    /// The role a suspicious finding at `class` contributes to.
    fn role_of(&self, class: &LocationClass) -> Role {
        match class.alternative_role {
            Some(alternative) if self.common_iliac_as_regional => alternative,
            _ => class.role,
        }
    }

    /// The two operating points this configuration stages with.
    pub fn operating_points(&self) -> OperatingPoints {
        OperatingPoints {
            threshold: self.threshold,
            distant_threshold: self.distant_threshold,
        }
    }

    /// This configuration staging at `points` instead of its own two.
    pub fn at(self, points: OperatingPoints) -> Self {
        StagingConfig {
            threshold: points.threshold,
            distant_threshold: points.distant_threshold,
            ..self
        }
    }
}

/// One uptake region with the network's output, as the pipeline hands it to staging.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingInput {
    pub region: Region,
    pub p_suspicious: f32,
    /// One probability per class of the model's table, in table order.
    pub location_probs: Vec<f32>,
}

impl FindingInput {
    fn validate(&self, class_count: usize) -> Result<(), StagingError> {
        let region = self.region.id;
        if region == 0 {
            return Err(StagingError::ZeroRegionId);
        }
        let probability = |what, value: f32| {
            if (0.0..=1.0).contains(&value) {
                Ok(())
            } else {
                Err(StagingError::Probability {
                    region,
                    what,
                    value,
                })
            }
        };
        probability("p_suspicious", self.p_suspicious)?;
        if self.location_probs.len() != class_count {
            return Err(StagingError::LocationCount {
                region,
                got: self.location_probs.len(),
                expected: class_count,
            });
        }
        for &p in &self.location_probs {
            probability("a location probability", p)?;
        }
        let r = &self.region;
        let stats = [
            ("volume_ml", r.volume_ml),
            ("suv_max", f64::from(r.suv_max)),
            ("suv_mean", r.suv_mean),
            ("suv_peak", r.suv_peak),
            ("total_uptake", r.total_uptake),
            ("max_lps[0]", r.max_lps[0]),
            ("max_lps[1]", r.max_lps[1]),
            ("max_lps[2]", r.max_lps[2]),
        ];
        for (field, value) in stats {
            if !value.is_finite() {
                return Err(StagingError::NonFinite {
                    region,
                    field,
                    value,
                });
            }
        }
        if r.volume_ml < 0.0 {
            return Err(StagingError::NegativeVolume {
                region,
                value: r.volume_ml,
            });
        }
        Ok(())
    }
}

/// Local tumour stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TStage {
    /// No suspicious local finding.
    #[serde(rename = "T0")]
    T0,
    /// A suspicious local (prostate, prostate bed, seminal vesicle, bladder) finding.
    #[serde(rename = "T+")]
    TPlus,
}

/// Regional node stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum NStage {
    /// No suspicious regional node.
    N0,
    /// One suspicious regional node.
    N1,
    /// Two or more suspicious regional nodes.
    N2,
}

/// Distant metastasis stage; the order is the order of severity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum MStage {
    /// No distant metastasis.
    M0,
    /// Extrapelvic lymph nodes.
    M1a,
    /// Bone.
    M1b,
    /// Other organs.
    M1c,
}

/// Pattern of bone metastases (PROMISE).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BonePattern {
    /// One lesion.
    #[serde(rename = "u")]
    Unifocal,
    /// Two or three lesions.
    #[serde(rename = "o")]
    Oligometastatic,
    /// Four or more lesions.
    #[serde(rename = "d")]
    Disseminated,
}

impl TStage {
    /// The code the report writes: "T0" or "T+".
    pub fn code(self) -> &'static str {
        match self {
            TStage::T0 => "T0",
            TStage::TPlus => "T+",
        }
    }
}

impl NStage {
    /// The code the report writes: "N0", "N1" or "N2".
    pub fn code(self) -> &'static str {
        match self {
            NStage::N0 => "N0",
            NStage::N1 => "N1",
            NStage::N2 => "N2",
        }
    }
}

impl MStage {
    /// The code the report writes: "M0", "M1a", "M1b" or "M1c".
    pub fn code(self) -> &'static str {
        match self {
            MStage::M0 => "M0",
            MStage::M1a => "M1a",
            MStage::M1b => "M1b",
            MStage::M1c => "M1c",
        }
    }
}

impl BonePattern {
    /// The code the report writes: "u", "o" or "d".
    pub fn code(self) -> &'static str {
        match self {
            BonePattern::Unifocal => "u",
            BonePattern::Oligometastatic => "o",
            BonePattern::Disseminated => "d",
        }
    }

    fn from_lesion_count(count: usize) -> Option<Self> {
        match count {
            0 => None,
            1 => Some(BonePattern::Unifocal),
            2 | 3 => Some(BonePattern::Oligometastatic),
            _ => Some(BonePattern::Disseminated),
        }
    }
}

/// A stage code that names no category of its kind (see [`TStage`]'s `FromStr`).
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[error("unknown {kind} stage {text:?}")]
pub struct ParseStageError {
    /// "T", "N", "M" or "bone pattern".
    pub kind: &'static str,
    /// The text as given.
    pub text: String,
}

/// Display writes the code ([`TStage::code`] and its siblings); `FromStr` reads a code back as
/// PROMISE writes it, in any case, the T, N and M stages with or without the `mi` prefix ("T+",
/// "miT+", "n2", "miM1b", "D"). Each category has exactly one code, so what Display wrote parses
/// back as the same value.
macro_rules! stage_codes {
    ($($stage:ident: $kind:literal, prefix $prefix:literal, [$($variant:ident),+];)+) => {$(
        impl fmt::Display for $stage {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(self.code())
            }
        }

        impl FromStr for $stage {
            type Err = ParseStageError;

            fn from_str(text: &str) -> Result<Self, ParseStageError> {
                let lower = text.trim().to_ascii_lowercase();
                let bare = lower.strip_prefix($prefix).unwrap_or(&lower);
                [$($stage::$variant),+]
                    .into_iter()
                    .find(|s| s.code().eq_ignore_ascii_case(bare))
                    .ok_or_else(|| ParseStageError {
                        kind: $kind,
                        text: text.to_string(),
                    })
            }
        }
    )+};
}

stage_codes! {
    TStage: "T", prefix "mi", [T0, TPlus];
    NStage: "N", prefix "mi", [N0, N1, N2];
    MStage: "M", prefix "mi", [M0, M1a, M1b, M1c];
    BonePattern: "bone pattern", prefix "", [Unifocal, Oligometastatic, Disseminated];
}

/// Name of a role as the report writes it ("T", "N", "M1a", "M1b", "M1c").
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::T => "T",
        Role::N => "N",
        Role::M1a => "M1a",
        Role::M1b => "M1b",
        Role::M1c => "M1c",
    }
}

/// One present M category and the findings that make it present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MCategory {
    pub category: MStage,
    /// Region ids, ascending.
    pub finding_ids: Vec<u32>,
}

/// The miTNM stage with the findings behind each part. Finding ids are region ids, ascending.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiTnm {
    pub t: TStage,
    pub t_findings: Vec<u32>,
    pub n: NStage,
    pub n_findings: Vec<u32>,
    /// The highest present M category (M0 when none).
    pub m: MStage,
    /// Every present M category, in the order M1a, M1b, M1c.
    pub m_categories: Vec<MCategory>,
    /// Present exactly when M1b is.
    pub bone_pattern: Option<BonePattern>,
    /// Diffuse marrow involvement.
    pub dmi: bool,
}

impl MiTnm {
    fn from_findings(findings: &[Finding], burden: &Burden, dmi_fraction: f64) -> Self {
        let ids = |role: Role| -> Vec<u32> {
            let mut ids: Vec<u32> = findings
                .iter()
                .filter(|f| f.role == Some(role))
                .map(|f| f.region.id)
                .collect();
            ids.sort_unstable();
            ids
        };
        let t_findings = ids(Role::T);
        let n_findings = ids(Role::N);
        let m_categories: Vec<MCategory> = [
            (MStage::M1a, Role::M1a),
            (MStage::M1b, Role::M1b),
            (MStage::M1c, Role::M1c),
        ]
        .into_iter()
        .map(|(category, role)| MCategory {
            category,
            finding_ids: ids(role),
        })
        .filter(|c| !c.finding_ids.is_empty())
        .collect();
        let bone_lesions = burden.role_counts.m1b;
        Self {
            t: if t_findings.is_empty() {
                TStage::T0
            } else {
                TStage::TPlus
            },
            n: match n_findings.len() {
                0 => NStage::N0,
                1 => NStage::N1,
                _ => NStage::N2,
            },
            t_findings,
            n_findings,
            m: m_categories
                .iter()
                .map(|c| c.category)
                .max()
                .unwrap_or(MStage::M0),
            m_categories,
            bone_pattern: BonePattern::from_lesion_count(bone_lesions),
            // Without any skeleton on the CT there is nothing to compare with: no dmi.
            dmi: burden.skeleton_volume_ml > 0.0
                && burden.suspicious_bone_volume_ml > dmi_fraction * burden.skeleton_volume_ml,
        }
    }

    /// The M category with its bone pattern and dmi, e.g. "M1b/o" or "M1b/d+dmi".
    fn category_code(&self, category: MStage) -> String {
        let mut code = category.code().to_string();
        if category == MStage::M1b {
            if let Some(pattern) = self.bone_pattern {
                code = format!("{code}/{}", pattern.code());
            }
            if self.dmi {
                code.push_str("+dmi");
            }
        }
        code
    }

    /// One line for people: `miTNM: T+ N1 M1b/o | T+ [4] | N1 [7] | M1a [9] | M1b/o [2, 3]`.
    pub fn line(&self) -> String {
        let ids = |ids: &[u32]| {
            let ids: Vec<String> = ids.iter().map(u32::to_string).collect();
            format!("[{}]", ids.join(", "))
        };
        let mut line = format!(
            "miTNM: {} {} {}",
            self.t.code(),
            self.n.code(),
            self.category_code(self.m)
        );
        if !self.t_findings.is_empty() {
            line += &format!(" | {} {}", self.t.code(), ids(&self.t_findings));
        }
        if !self.n_findings.is_empty() {
            line += &format!(" | {} {}", self.n.code(), ids(&self.n_findings));
        }
        for c in &self.m_categories {
            line += &format!(
                " | {} {}",
                self.category_code(c.category),
                ids(&c.finding_ids)
            );
        }
        line
    }
}

/// Number of suspicious findings per staging role.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoleCounts {
    pub t: usize,
    pub n: usize,
    pub m1a: usize,
    pub m1b: usize,
    pub m1c: usize,
}

/// Tumour burden over the suspicious findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Burden {
    pub suspicious_count: usize,
    pub role_counts: RoleCounts,
    /// Total suspicious volume, mL (PSMA-TV for PSMA, MTV for FDG).
    pub tumour_volume_ml: f64,
    /// Sum of SUVmean × mL, SUV·mL (TL-PSMA for PSMA, TLG for FDG).
    pub total_lesion_uptake: f64,
    /// Total volume of the suspicious bone (M1b) findings, mL.
    pub suspicious_bone_volume_ml: f64,
    /// CT > 200 HU on the common grid, mL, as given to staging.
    pub skeleton_volume_ml: f64,
}

impl Burden {
    fn from_findings(findings: &[Finding], skeleton_volume_ml: f64) -> Self {
        let mut burden = Self {
            suspicious_count: 0,
            role_counts: RoleCounts::default(),
            tumour_volume_ml: 0.0,
            total_lesion_uptake: 0.0,
            suspicious_bone_volume_ml: 0.0,
            skeleton_volume_ml,
        };
        for f in findings {
            let Some(role) = f.role else { continue };
            burden.suspicious_count += 1;
            burden.tumour_volume_ml += f.region.volume_ml;
            burden.total_lesion_uptake += f.region.total_uptake;
            let counts = &mut burden.role_counts;
            match role {
                Role::T => counts.t += 1,
                Role::N => counts.n += 1,
                Role::M1a => counts.m1a += 1,
                Role::M1b => {
                    counts.m1b += 1;
                    burden.suspicious_bone_volume_ml += f.region.volume_ml;
                }
                Role::M1c => counts.m1c += 1,
            }
        }
        burden
    }
}

/// Reference SUVmean values for the miPSMA expression score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct References {
    /// Configured (`StagingConfig::blood_pool_suv`).
    pub blood_pool_suv: f64,
    /// Volume-weighted mean SUVmean of the non-suspicious regions located in the liver;
    /// `None` when there is none.
    pub liver_suv: Option<f64>,
    pub liver_region_ids: Vec<u32>,
    /// The same over the non-suspicious regions located in the salivary glands.
    pub parotid_suv: Option<f64>,
    pub parotid_region_ids: Vec<u32>,
}

impl References {
    fn from_findings(findings: &[Finding], blood_pool_suv: f64) -> Self {
        let (liver_suv, liver_region_ids) = reference_suv(findings, LIVER_CLASS);
        let (parotid_suv, parotid_region_ids) = reference_suv(findings, PAROTID_CLASS);
        Self {
            blood_pool_suv,
            liver_suv,
            liver_region_ids,
            parotid_suv,
            parotid_region_ids,
        }
    }

    /// miPSMA expression score of a lesion SUVmax: 0 below blood pool, 1 from blood pool,
    /// 2 from liver, 3 from parotid (equal to a reference gives the higher score). Each step
    /// needs the ones below it and its own reference: a missing liver reference caps the score
    /// at 1, a missing parotid reference at 2, so a score is never higher than the study shows.
    pub fn expression_score(&self, suv_max: f64) -> u8 {
        let mut score = 0;
        for reference in [Some(self.blood_pool_suv), self.liver_suv, self.parotid_suv] {
            match reference {
                Some(r) if suv_max >= r => score += 1,
                _ => break,
            }
        }
        score
    }
}

/// Σ total uptake / Σ volume (= Σ SUVmean·mL / Σ mL) over the non-suspicious findings located
/// in `class_name`, with their region ids (ascending).
fn reference_suv(findings: &[Finding], class_name: &str) -> (Option<f64>, Vec<u32>) {
    let regions: Vec<&Region> = findings
        .iter()
        .filter(|f| !f.suspicious && f.location.name == class_name)
        .map(|f| &f.region)
        .collect();
    let volume: f64 = regions.iter().map(|r| r.volume_ml).sum();
    let uptake: f64 = regions.iter().map(|r| r.total_uptake).sum();
    let mut ids: Vec<u32> = regions.iter().map(|r| r.id).collect();
    ids.sort_unstable();
    let suv = (volume > 0.0).then(|| uptake / volume);
    (suv, ids)
}

/// Everything staging derives from the findings of one study.
#[derive(Debug, Clone, PartialEq)]
pub struct Staging {
    pub config: StagingConfig,
    /// In input order.
    pub findings: Vec<Finding>,
    pub tnm: MiTnm,
    pub burden: Burden,
    pub references: References,
}

/// Stages one study (DESIGN S8).
///
/// `classes` is the model's location table (`location_probs` follow its order);
/// `skeleton_volume_ml` is the CT > 200 HU volume ([`skeleton_volume_ml`]).
pub fn stage(
    findings: &[FindingInput],
    classes: &[LocationClass],
    skeleton_volume_ml: f64,
    config: &StagingConfig,
) -> Result<Staging, StagingError> {
    config.validate()?;
    if !(skeleton_volume_ml.is_finite() && skeleton_volume_ml >= 0.0) {
        return Err(StagingError::SkeletonVolume(skeleton_volume_ml));
    }
    if classes.len() < 3 {
        return Err(StagingError::TooFewClasses(classes.len()));
    }
    let mut seen = HashSet::with_capacity(findings.len());
    let mut assessed = Vec::with_capacity(findings.len());
    for input in findings {
        input.validate(classes.len())?;
        if !seen.insert(input.region.id) {
            return Err(StagingError::DuplicateRegion(input.region.id));
        }
        assessed.push(classify(input, classes, config));
    }
    let references = References::from_findings(&assessed, config.blood_pool_suv);
    for f in assessed.iter_mut().filter(|f| f.suspicious) {
        f.expression_score = Some(references.expression_score(f64::from(f.region.suv_max)));
    }
    let burden = Burden::from_findings(&assessed, skeleton_volume_ml);
    let tnm = MiTnm::from_findings(&assessed, &burden, config.dmi_fraction);
    Ok(Staging {
        config: config.clone(),
        findings: assessed,
        tnm,
        burden,
        references,
    })
}

/// Suspicious flag, location (argmax; ties: lower table index) and role of one validated input.
fn classify(input: &FindingInput, classes: &[LocationClass], config: &StagingConfig) -> Finding {
    let probs = &input.location_probs;
    let mut order: Vec<usize> = (0..classes.len()).collect();
    // Stable sort: equal probabilities keep table order. Inputs are validated, so no NaN.
    order.sort_by(|&a, &b| probs[b].partial_cmp(&probs[a]).unwrap_or(Ordering::Equal));
    let prediction = |i: usize| LocationPrediction {
        id: classes[i].id,
        name: classes[i].name.clone(),
        probability: probs[i],
    };
    let top3 = [
        prediction(order[0]),
        prediction(order[1]),
        prediction(order[2]),
    ];
    let role = config.role_of(&classes[order[0]]);
    let suspicious = input.p_suspicious >= config.operating_points().of(role);
    Finding {
        region: input.region.clone(),
        p_suspicious: input.p_suspicious,
        suspicious,
        location: top3[0].clone(),
        top3,
        role: suspicious.then_some(role),
        expression_score: None,
        source: Source::S4,
        parent: None,
    }
}

/// Skeleton volume in mL: voxels of the common-grid CT above 200 HU.
pub fn skeleton_volume_ml(ct3: &Volume<f32>) -> f64 {
    let bone = ct3.data().iter().filter(|&&hu| hu > BONE_HU).count();
    bone as f64 * ct3.geometry().voxel_volume_ml()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_reads_back_as_its_category_in_any_case_and_with_the_mi_prefix() {
        for t in [TStage::T0, TStage::TPlus] {
            assert_eq!(t.to_string().parse(), Ok(t));
            assert_eq!(format!("mi{}", t.code().to_lowercase()).parse(), Ok(t));
        }
        for n in [NStage::N0, NStage::N1, NStage::N2] {
            assert_eq!(n.to_string().parse(), Ok(n));
            assert_eq!(format!("MI{}", n.code().to_uppercase()).parse(), Ok(n));
        }
        for m in [MStage::M0, MStage::M1a, MStage::M1b, MStage::M1c] {
            assert_eq!(m.to_string().parse(), Ok(m));
            assert_eq!(format!(" mi{m} ").parse(), Ok(m));
        }
        for p in [
            BonePattern::Unifocal,
            BonePattern::Oligometastatic,
            BonePattern::Disseminated,
        ] {
            assert_eq!(p.to_string().parse(), Ok(p));
            assert_eq!(p.code().to_uppercase().parse(), Ok(p));
        }
    }

    #[test]
    fn codes_of_another_kind_or_none_are_refused() {
        assert_eq!(
            "N3".parse::<NStage>(),
            Err(ParseStageError {
                kind: "N",
                text: "N3".into()
            })
        );
        assert!("M1".parse::<MStage>().is_err());
        assert!("M1b/u".parse::<MStage>().is_err());
        assert!("dmi".parse::<BonePattern>().is_err());
        assert!("miu".parse::<BonePattern>().is_err());
        assert!("N0".parse::<TStage>().is_err());
        assert!("".parse::<MStage>().is_err());
    }
}
