//! The held-out test of a model through the plugin's own analysis: every finding of a report
//! labelled against the study's ground truth with the training rule (`data::label_regions`),
//! lesion detection, the report's stage in the codes of the staging CSV, and the stage a perfect
//! classifier would give with the same regions.

use std::collections::{BTreeMap, BTreeSet};

use uptake::classes::LocationClass;
use uptake::findings::Source;
use uptake::model::OperatingPoints;
use uptake::report::Report;
use uptake::staging::{FindingInput, MiTnm, stage};

use crate::data::{Candidate, GroundTruth, RegionRef, label_regions};
use crate::eval::agreement::MCode;
use crate::eval::autopet::{SegmentationMetrics, segmentation_metrics};
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
    /// Every fate, `Reported` first.
    pub const ALL: [LesionFate; 5] = [
        LesionFate::Reported,
        LesionFate::NotCalled,
        LesionFate::MergedWithLesion,
        LesionFate::MergedWithUptake,
        LesionFate::NoRegion,
    ];

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
    /// Its voxels on the PET grid, and their volume.
    pub voxels: usize,
    pub volume_ml: f64,
    /// Its SUVmax: the highest finite SUV of its voxels, at its hottest voxel (ties: the first
    /// in index order, as S4 visits them); `None` when no voxel is finite.
    pub suv_max: Option<f32>,
    pub fate: LesionFate,
    /// The highest p_suspicious of the findings labelled with it; `None` when none is.
    pub p_suspicious: Option<f32>,
    /// Whether the finding whose region holds its hottest voxel is reported suspicious: a
    /// lesion merged into a reported region is still seen by a reader of the report. `None`
    /// when that voxel lies in no region.
    pub in_reported_region: Option<bool>,
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
    /// Findings labelled with no lesion: the physiological sites the report lists.
    pub physiological_findings: usize,
    /// The suspicious findings' voxels as a lesion mask against the drawn lesions (autoPET).
    pub segmentation: SegmentationMetrics,
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
    // S4's regions are labelled on the label map, sub-regions on the sub-region map, each with
    // the training rule, as `studies::cache_study` labels the same candidates.
    let is_sub = |f: &&uptake::findings::Finding| f.source == Source::Subregion;
    let refs = |sub: bool| -> Vec<RegionRef> {
        report
            .findings
            .iter()
            .filter(|f| is_sub(f) == sub)
            .map(|f| RegionRef {
                id: f.region.id,
                max_voxel: f.region.max_voxel,
                max_lps: f.region.max_lps,
                suv_max: f.region.suv_max,
            })
            .collect()
    };
    let (s4_regions, sub_regions) = (refs(false), refs(true));
    let sub_map = match &report.subregion_map {
        Some(map) => Some(map),
        None if sub_regions.is_empty() => None,
        None => return Err("the report has sub-region findings but no sub-region map".into()),
    };
    let truth = GroundTruth {
        structures: &study.structures,
        lesions: &study.lesions,
        lesion_classes: &study.info.lesion_classes,
    };
    for (name, dims) in [
        ("structure map", study.structures.dims()),
        ("lesion map", study.lesions.dims()),
        ("report's label map", labels.dims()),
        (
            "report's sub-region map",
            sub_map.map_or(labels.dims(), |m| m.dims()),
        ),
    ] {
        if dims != study.pet.dims() {
            return Err(format!(
                "the {name}'s dims {dims:?} differ from the PET's {:?}",
                study.pet.dims()
            ));
        }
    }
    let mut s4_labelled = label_regions(&s4_regions, labels, &truth).into_iter();
    let mut sub_labelled = match sub_map {
        Some(map) => label_regions(&sub_regions, map, &truth),
        None => Vec::new(),
    }
    .into_iter();
    let candidates: Vec<Candidate> = report
        .findings
        .iter()
        .filter_map(|f| {
            if is_sub(&f) {
                sub_labelled.next()
            } else {
                s4_labelled.next()
            }
        })
        .collect();
    // The finest candidate at each voxel: its sub-region where it has one, else its region.
    let finest: Vec<u32> = match sub_map {
        Some(map) => labels
            .data()
            .iter()
            .zip(map.data())
            .map(|(&region, &sub)| if sub != 0 { sub } else { region })
            .collect(),
        None => labels.data().to_vec(),
    };
    let mut suspicious_findings = 0;
    let mut true_positive_findings = 0;
    let mut physiological_findings = 0;
    let mut findings = Vec::new();
    for (finding, candidate) in report.findings.iter().zip(&candidates) {
        if finding.suspicious {
            suspicious_findings += 1;
            if candidate.lesion.is_some() {
                true_positive_findings += 1;
            }
        }
        if candidate.lesion.is_none() {
            physiological_findings += 1;
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
    let calls: Vec<Call> = report
        .findings
        .iter()
        .map(|f| Call {
            region: f.region.id,
            p_suspicious: f.p_suspicious,
            suspicious: f.suspicious,
        })
        .collect();
    let lesions = lesion_outcomes(
        study.pet.data(),
        study.lesions.data(),
        &study.info.lesion_classes,
        study.pet.geometry().voxel_volume_ml(),
        &finest,
        &calls,
        &candidates,
    );
    let segmentation = suspicious_mask_metrics(study, labels.data(), &calls);
    Ok((
        findings,
        Detection {
            subject: study.info.subject.clone(),
            lesions,
            suspicious_findings,
            true_positive_findings,
            physiological_findings,
            segmentation,
        },
    ))
}

/// The autoPET metrics of the report's suspicious regions (their voxels in the label map) against
/// every lesion voxel the ground truth draws on the PET grid.
fn suspicious_mask_metrics(
    study: &AnnotatedStudy,
    region_labels: &[u32],
    calls: &[Call],
) -> SegmentationMetrics {
    let suspicious: BTreeSet<u32> = calls
        .iter()
        .filter(|c| c.suspicious)
        .map(|c| c.region)
        .collect();
    let predicted: Vec<bool> = region_labels
        .iter()
        .map(|l| suspicious.contains(l))
        .collect();
    let truth: Vec<bool> = study.lesions.data().iter().map(|&l| l != 0).collect();
    segmentation_metrics(
        &predicted,
        &truth,
        study.pet.dims(),
        study.pet.geometry().voxel_volume_ml(),
    )
}

/// A report's finding as the lesion fates read it.
struct Call {
    /// Its region's value in the label map.
    region: u32,
    p_suspicious: f32,
    suspicious: bool,
}

/// The fate of every lesion drawn in `lesions` (all volumes flat, on the PET grid, whose
/// voxels hold `voxel_ml` each); `calls` and `candidates` are the report's findings and their
/// training labels, in the same order.
fn lesion_outcomes(
    pet: &[f32],
    lesions: &[u32],
    lesion_classes: &[u32],
    voxel_ml: f64,
    region_labels: &[u32],
    calls: &[Call],
    candidates: &[Candidate],
) -> Vec<LesionOutcome> {
    // Per lesion, in one pass: voxel count, hottest finite voxel (SUV, index) and first voxel.
    struct Drawn {
        voxels: usize,
        hottest: Option<(f32, usize)>,
        first: usize,
    }
    let mut drawn: BTreeMap<u32, Drawn> = BTreeMap::new();
    for (index, (&lesion, &suv)) in lesions.iter().zip(pet).enumerate() {
        if lesion == 0 {
            continue;
        }
        let d = drawn.entry(lesion).or_insert(Drawn {
            voxels: 0,
            hottest: None,
            first: index,
        });
        d.voxels += 1;
        if suv.is_finite() && d.hottest.is_none_or(|(max, _)| suv > max) {
            d.hottest = Some((suv, index));
        }
    }
    let mut finding_of_region: BTreeMap<u32, (&Call, &Candidate)> = BTreeMap::new();
    let mut labelled_with: BTreeMap<u32, Vec<&Call>> = BTreeMap::new();
    for (call, c) in calls.iter().zip(candidates) {
        finding_of_region.insert(call.region, (call, c));
        if let Some(lesion) = c.lesion {
            labelled_with.entry(lesion).or_default().push(call);
        }
    }
    drawn
        .into_iter()
        .map(|(lesion, d)| {
            let labelled = labelled_with.get(&lesion).map_or(&[][..], Vec::as_slice);
            let p_suspicious = labelled.iter().map(|c| c.p_suspicious).reduce(f32::max);
            // Without a finite voxel, the region of its first voxel stands for it.
            let at = d.hottest.map_or(d.first, |(_, index)| index);
            let holding = finding_of_region.get(&region_labels[at]);
            let fate = if labelled.iter().any(|c| c.suspicious) {
                LesionFate::Reported
            } else if !labelled.is_empty() {
                LesionFate::NotCalled
            } else {
                match holding {
                    None => LesionFate::NoRegion,
                    Some((_, c)) if c.suspicious() => LesionFate::MergedWithLesion,
                    Some(_) => LesionFate::MergedWithUptake,
                }
            };
            LesionOutcome {
                lesion,
                class: lesion_classes.get(lesion as usize - 1).copied(),
                voxels: d.voxels,
                volume_ml: d.voxels as f64 * voxel_ml,
                suv_max: d.hottest.map(|(suv, _)| suv),
                fate,
                p_suspicious,
                in_reported_region: holding.map(|(call, _)| call.suspicious),
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
    read: impl Fn(usize, &uptake::findings::Finding) -> (f32, u32),
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
    MCode::of_staging(tnm).map_or_else(|| tnm.m.to_string(), |code| code.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(lesion: Option<u32>) -> Candidate {
        Candidate {
            centre_lps: [0.0; 3],
            suv_max: 1.0,
            lesion,
            location: Some(0),
        }
    }

    #[test]
    fn every_lesion_gets_the_fate_of_its_findings_or_of_its_hottest_voxel() {
        // Eleven voxels in a row: lesion numbers, SUVs and the regions holding them.
        let lesions = [1, 1, 2, 3, 4, 5, 6, 6, 7, 0, 0];
        let pet = [
            5.0,
            9.0,
            3.0,
            4.0,
            2.5,
            1.2,
            f32::NAN,
            f32::INFINITY,
            6.0,
            8.0,
            2.0,
        ];
        let regions = [1, 1, 2, 1, 3, 0, 0, 0, 4, 4, 3];
        // Region 1 is lesion 1's and reported; region 2 lesion 2's, not reported; region 3 is
        // physiological; region 4 is labelled with lesion 7 and also not reported.
        let calls = [
            Call {
                region: 1,
                p_suspicious: 0.9,
                suspicious: true,
            },
            Call {
                region: 2,
                p_suspicious: 0.3,
                suspicious: false,
            },
            Call {
                region: 3,
                p_suspicious: 0.1,
                suspicious: false,
            },
            Call {
                region: 4,
                p_suspicious: 0.4,
                suspicious: false,
            },
        ];
        let candidates = [
            candidate(Some(1)),
            candidate(Some(2)),
            candidate(None),
            candidate(Some(7)),
        ];
        let outcomes = lesion_outcomes(
            &pet,
            &lesions,
            &[21, 16, 21],
            0.5,
            &regions,
            &calls,
            &candidates,
        );
        let got: Vec<_> = outcomes
            .iter()
            .map(|o| {
                (
                    o.lesion,
                    o.voxels,
                    o.suv_max,
                    o.fate,
                    o.p_suspicious,
                    o.class,
                )
            })
            .collect();
        use LesionFate::*;
        assert_eq!(
            got,
            [
                (1, 2, Some(9.0), Reported, Some(0.9), Some(21)),
                (2, 1, Some(3.0), NotCalled, Some(0.3), Some(16)),
                (3, 1, Some(4.0), MergedWithLesion, None, Some(21)),
                (4, 1, Some(2.5), MergedWithUptake, None, None),
                (5, 1, Some(1.2), NoRegion, None, None),
                // No finite voxel: no SUVmax, and the first voxel's region (none) decides.
                (6, 2, None, NoRegion, None, None),
                (7, 1, Some(6.0), NotCalled, Some(0.4), None),
            ]
        );
        // One reported finding among several labelled with a lesion is enough.
        let mut split = candidates;
        split[1] = candidate(Some(1));
        let outcomes = lesion_outcomes(&pet, &lesions, &[], 0.5, &regions, &calls, &split);
        assert_eq!(outcomes[0].fate, Reported);
        assert_eq!(outcomes[0].p_suspicious, Some(0.9));
        // Lesion 2 now lies in region 2, labelled with lesion 1.
        assert_eq!(outcomes[1].fate, MergedWithLesion);
    }
}
