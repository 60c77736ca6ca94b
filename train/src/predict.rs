//! The held-out test of a model through the plugin's own analysis: every finding of a report
//! labelled against the study's ground truth with the training rule (`data::label_regions`),
//! lesion detection, the report's stage in the codes of the staging CSV, and the stage a perfect
//! classifier would give with the same regions.

use std::collections::BTreeMap;

use uptake::classes::LocationClass;
use uptake::model::OperatingPoints;
use uptake::report::Report;
use uptake::staging::{FindingInput, MStage, MiTnm, stage};
use uptake::volume::Volume;

use crate::data::{Candidate, GroundTruth, RegionRef, label_regions};
use crate::eval::metrics::Finding;
use crate::studies::AnnotatedStudy;

/// What became of one ground-truth lesion in a report: reported, or where it was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LesionFate {
    /// A finding reported suspicious is labelled with it.
    Reported,
    /// Findings are labelled with it, but the report called each of them physiological.
    NotCalled,
    /// Its hottest voxel lies in a region labelled with another lesion.
    MergedWithLesion,
    /// Its hottest voxel lies in a region labelled as physiological uptake.
    MergedWithUptake,
    /// Its hottest voxel lies in no region: below the seed minimum, or on the tail of brighter
    /// uptake.
    NoRegion,
}

impl LesionFate {
    /// The name in lesions.csv.
    pub fn name(self) -> &'static str {
        match self {
            LesionFate::Reported => "reported",
            LesionFate::NotCalled => "not_called",
            LesionFate::MergedWithLesion => "merged_with_lesion",
            LesionFate::MergedWithUptake => "merged_with_uptake",
            LesionFate::NoRegion => "no_region",
        }
    }
}

/// One lesion the ground truth draws on the PET grid, and its fate in the report.
#[derive(Debug, Clone, PartialEq)]
pub struct LesionOutcome {
    /// Lesion number (1-based) in the study's lesion map.
    pub lesion: u32,
    /// S6 class from the study's `lesion_classes`; `None` where that list is too short.
    pub class: Option<u32>,
    /// Its voxels on the PET grid.
    pub voxels: usize,
    /// The highest SUV among them (its hottest voxel; ties: the first in index order).
    pub suv_max: f32,
    pub fate: LesionFate,
    /// The highest p_suspicious of the findings labelled with it; `None` when none is.
    pub p_suspicious: Option<f32>,
}

/// Lesions of one subject, what became of each, and the suspicious findings.
pub struct Detection {
    pub subject: String,
    /// Every lesion the ground truth draws on the PET grid (a lesion smaller than a voxel may
    /// not be drawn), in lesion-number order.
    pub lesions: Vec<LesionOutcome>,
    pub suspicious_findings: usize,
    /// Suspicious findings labelled with a lesion.
    pub true_positive_findings: usize,
}

impl Detection {
    /// Lesions that a finding reported as suspicious is labelled with.
    pub fn detected(&self) -> usize {
        self.lesions
            .iter()
            .filter(|l| l.fate == LesionFate::Reported)
            .count()
    }
}

/// The report's findings labelled against the study's ground truth, and the lesion detection.
pub fn label_report(
    study: &AnnotatedStudy,
    report: &Report,
) -> Result<(Vec<Finding>, Detection), String> {
    let labels = report
        .label_map
        .as_ref()
        .ok_or("the report carries no label map")?;
    let regions: Vec<RegionRef> = report
        .findings
        .iter()
        .map(|f| RegionRef {
            id: f.region.id,
            max_voxel: f.region.max_voxel,
            max_lps: f.region.max_lps,
            suv_max: f.region.suv_max,
        })
        .collect();
    let truth = GroundTruth {
        structures: &study.structures,
        lesions: &study.lesions,
        lesion_classes: &study.info.lesion_classes,
    };
    let candidates = label_regions(&regions, labels, &truth);
    let mut suspicious_findings = 0;
    let mut true_positive_findings = 0;
    let mut findings = Vec::new();
    for (finding, candidate) in report.findings.iter().zip(&candidates) {
        if finding.suspicious {
            suspicious_findings += 1;
            if candidate.lesion.is_some() {
                true_positive_findings += 1;
            }
        }
        findings.push(Finding {
            subject: 0,
            suspicious: candidate.suspicious(),
            p_suspicious: f64::from(finding.p_suspicious),
            location: candidate.location,
            predicted_location: finding.location.id,
            reported: Some(finding.suspicious),
        });
    }
    let lesions = lesion_outcomes(study, report, labels, &candidates);
    Ok((
        findings,
        Detection {
            subject: study.info.subject.clone(),
            lesions,
            suspicious_findings,
            true_positive_findings,
        },
    ))
}

/// The fate of every lesion drawn in `study.lesions`; `candidates` are the report's findings
/// labelled by `label_regions`, in the report's order.
fn lesion_outcomes(
    study: &AnnotatedStudy,
    report: &Report,
    region_labels: &Volume<u32>,
    candidates: &[Candidate],
) -> Vec<LesionOutcome> {
    // Per lesion: voxel count and hottest voxel (SUV, index), in one pass over the PET grid.
    let mut drawn: BTreeMap<u32, (usize, f32, usize)> = BTreeMap::new();
    for (index, (&lesion, &suv)) in study
        .lesions
        .data()
        .iter()
        .zip(study.pet.data())
        .enumerate()
    {
        if lesion == 0 {
            continue;
        }
        let entry = drawn.entry(lesion).or_insert((0, f32::NEG_INFINITY, index));
        entry.0 += 1;
        if suv > entry.1 {
            (entry.1, entry.2) = (suv, index);
        }
    }
    let candidate_of_region: BTreeMap<u32, &Candidate> = report
        .findings
        .iter()
        .zip(candidates)
        .map(|(f, c)| (f.region.id, c))
        .collect();
    drawn
        .into_iter()
        .map(|(lesion, (voxels, suv_max, hottest))| {
            let labelled: Vec<_> = report
                .findings
                .iter()
                .zip(candidates)
                .filter(|(_, c)| c.lesion == Some(lesion))
                .map(|(f, _)| f)
                .collect();
            let p_suspicious = labelled.iter().map(|f| f.p_suspicious).reduce(f32::max);
            let fate = if labelled.iter().any(|f| f.suspicious) {
                LesionFate::Reported
            } else if !labelled.is_empty() {
                LesionFate::NotCalled
            } else {
                match candidate_of_region.get(&region_labels.data()[hottest]) {
                    None => LesionFate::NoRegion,
                    Some(c) if c.suspicious() => LesionFate::MergedWithLesion,
                    Some(_) => LesionFate::MergedWithUptake,
                }
            };
            LesionOutcome {
                lesion,
                class: study.info.lesion_classes.get(lesion as usize - 1).copied(),
                voxels,
                suv_max,
                fate,
                p_suspicious,
            }
        })
        .collect()
}

/// The stage of `report`'s regions read as their ground-truth labels say (`labelled`, from
/// [`label_report`], in the report's finding order): suspicious or not, and the true location
/// where it is known (else the predicted one, which a non-suspicious finding never uses). This
/// is what a perfect classifier of these regions reports: where it differs from the expert
/// stage, the regions themselves (a lesion merged into brighter uptake, or too faint to form a
/// region) decide, not the network.
pub fn ceiling_stage(
    report: &Report,
    labelled: &[Finding],
    classes: &[LocationClass],
) -> Result<MiTnm, String> {
    if labelled.len() != report.findings.len() {
        return Err(format!(
            "{} labelled findings for {} reported ones",
            labelled.len(),
            report.findings.len()
        ));
    }
    // Any operating point in (0, 1] reads these 0/1 scores the same.
    stage_report(report, classes, OperatingPoints::single(0.5), |i, _| {
        let label = &labelled[i];
        let p = if label.suspicious { 1.0 } else { 0.0 };
        (p, label.location.unwrap_or(label.predicted_location))
    })
}

/// The stage of `report`'s findings at another pair of operating points: the network's outputs
/// as reported, the report's other rules. One analysis thus gives the stage at every operating
/// point.
pub fn restage(
    report: &Report,
    classes: &[LocationClass],
    points: OperatingPoints,
) -> Result<MiTnm, String> {
    stage_report(report, classes, points, |_, f| {
        (f.p_suspicious, f.location.id)
    })
}

/// Stages `report`'s regions with `read(i, finding)` = (p_suspicious, location id) in place of
/// the network's outputs, at the given operating points and the report's other staging rules.
fn stage_report(
    report: &Report,
    classes: &[LocationClass],
    points: OperatingPoints,
    read: impl Fn(usize, &uptake::report::Finding) -> (f32, u32),
) -> Result<MiTnm, String> {
    let inputs: Vec<FindingInput> = report
        .findings
        .iter()
        .enumerate()
        .map(|(i, finding)| {
            let (p_suspicious, location) = read(i, finding);
            FindingInput {
                region: finding.region.clone(),
                p_suspicious,
                // Staging reads the most probable class only.
                location_probs: classes
                    .iter()
                    .map(|c| if c.id == location { 1.0 } else { 0.0 })
                    .collect(),
            }
        })
        .collect();
    let config = report.staging_config.clone().at(points);
    stage(&inputs, classes, report.burden.skeleton_volume_ml, &config)
        .map(|staged| staged.tnm)
        .map_err(|e| e.to_string())
}

/// The M stage of `tnm` as the staging CSV writes it: "M1b/u", "M1b/o", "M1b/d", "M1b/dmi" (diffuse
/// marrow involvement), else the category ("M0", "M1a", "M1c").
pub fn m_code(tnm: &MiTnm) -> String {
    match (tnm.m, tnm.dmi, tnm.bone_pattern) {
        (MStage::M1b, true, _) => "M1b/dmi".to_string(),
        (MStage::M1b, false, Some(pattern)) => format!("M1b/{}", pattern.code()),
        (m, _, _) => m.code().to_string(),
    }
}
