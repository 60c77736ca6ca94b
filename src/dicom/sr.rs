//! Writing the report as a DICOM Comprehensive 3D SR with TID 1500 "Measurement Report" (issue
//! #30, "DICOM out"), beside the SEG whose segments it measures.
//!
//! Content tree (PS3.16 TID 1500; codes in docs/dicom-out.md):
//! - Language en-US, the device observer (uptake; the model id as its model name) and the
//!   procedure reported (CID 100: SCT 443271005 "PET/CT FDG imaging of whole body" for FDG,
//!   LN 44139-4 "PET whole body" for PSMA, which CID 100 has no code of its own for).
//! - Image Library (TID 1600): one group, modality PT, every instance of the PET series.
//! - Imaging Measurements: one TID 1411 group per SEG segment, in segment order, with the
//!   segment's TrackingID and TrackingUID, Finding SCT "Lesion", the finding site of the SEG
//!   segment, the Referenced Segment and the PET as its source series, then SUVbw maximum, peak
//!   and mean, volume, total lesion uptake, p_suspicious and the miPSMA expression score as
//!   NUMs (each with its algorithm identification) and the qualitative evaluations: suspicious,
//!   staging role, location class. One TID 1501 group holds the tumour-burden figures.
//! - Qualitative Evaluations: the miTNM line and its categories as codes.
//!
//! Concepts that DICOM has no code for use the private scheme `99UPTAKE` (declared in the
//! Coding Scheme Identification Sequence). Patient and study come from the PET as for the SEG;
//! the SR is a new series with UIDs of the form `2.25.<random UUID>`; the evidence sequence
//! lists the PET instances and the SEG.

use std::path::Path;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use thiserror::Error;

use super::instance::{
    Code, Elements, Kind, NewInstance, WriteError, code, decimal_string, item, random_uid,
    sequence, source_references,
};
use super::seg::{self, SEGMENTATION_STORAGE, SourceSeries, WrittenSeg, WrittenSegment};
use crate::classes::Role;
use crate::findings::Finding;
use crate::report::Report;
use crate::staging::{BonePattern, MStage, MiTnm, NStage, TStage};
use crate::tracer::Tracer;

/// Comprehensive 3D SR Storage.
pub const COMPREHENSIVE_3D_SR_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.88.34";
/// SeriesNumber of every SR written here (the SEG's is [`seg::SERIES_NUMBER`]).
pub const SERIES_NUMBER: u32 = 1001;
/// The private coding scheme of the concepts DICOM has no code for.
pub const PRIVATE_SCHEME: &str = "99UPTAKE";
/// Device Observer UID of uptake: one fixed UID, so that every report names the same device.
const DEVICE_OBSERVER_UID: &str = "2.25.284868898117339919760148366737260476469";

/// Why a DICOM SR could not be written.
#[derive(Debug, Error)]
pub enum SrError {
    #[error("the PET series lacks {0}, which the DICOM SR must reference or copy")]
    MissingAttribute(&'static str),
    #[error("SEG segment {0} is not a suspicious finding of the report")]
    SegmentMismatch(u16),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The identity of a written SR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSr {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    /// TID 1411 groups, one per SEG segment.
    pub measurement_groups: usize,
}

/// Writes `report` as a TID 1500 Measurement Report to `path`, measuring the segments of
/// `seg` (written from the same report and `source`). `algorithm_version` as for the SEG.
pub fn write_sr(
    path: &Path,
    source: &SourceSeries,
    report: &Report,
    seg: &WrittenSeg,
    algorithm_version: &str,
) -> Result<WrittenSr, SrError> {
    let (obj, written) = build(source, report, seg, algorithm_version)?;
    obj.write(path)?;
    Ok(written)
}

/// The SR data set (without its file meta group).
fn build(
    source: &SourceSeries,
    report: &Report,
    seg: &WrittenSeg,
    algorithm_version: &str,
) -> Result<(NewInstance, WrittenSr), SrError> {
    let study_uid = source
        .patient_study
        .study_instance_uid
        .as_deref()
        .ok_or(SrError::MissingAttribute("StudyInstanceUID (0020,000D)"))?;
    let references = source_references(source).map_err(SrError::MissingAttribute)?;
    let mut measured = Vec::with_capacity(seg.segments.len());
    for segment in &seg.segments {
        match report.findings.get(segment.finding) {
            Some(f) if f.suspicious => measured.push((segment, f)),
            _ => return Err(SrError::SegmentMismatch(segment.number)),
        }
    }

    let mut groups: Vec<InMemDicomObject> = measured
        .iter()
        .map(|(segment, f)| roi_group(source, report.tracer, seg, segment, f, algorithm_version))
        .collect();
    groups.push(burden_group(report, algorithm_version));
    let mut library = vec![code_item(HAS_ACQ_CONTEXT, MODALITY, PET_MODALITY)];
    if let Some(frame) = &source.frame_of_reference_uid {
        library.push(uid_item(HAS_ACQ_CONTEXT, FRAME_OF_REFERENCE_UID, frame));
    }
    library.extend(
        references
            .iter()
            .map(|&(class, uid)| image_item(None, class, uid, None)),
    );
    let root = vec![
        code_item(HAS_CONCEPT_MOD, LANGUAGE, ENGLISH_US),
        code_item(HAS_OBS_CONTEXT, OBSERVER_TYPE, DEVICE),
        uid_item(
            HAS_OBS_CONTEXT,
            DEVICE_OBSERVER_UID_CONCEPT,
            DEVICE_OBSERVER_UID,
        ),
        text_item(HAS_OBS_CONTEXT, DEVICE_OBSERVER_NAME, "uptake"),
        text_item(HAS_OBS_CONTEXT, DEVICE_OBSERVER_MANUFACTURER, "uptake"),
        text_item(
            HAS_OBS_CONTEXT,
            DEVICE_OBSERVER_MODEL_NAME,
            &report.model.id,
        ),
        code_item(
            HAS_CONCEPT_MOD,
            PROCEDURE_REPORTED,
            match report.tracer {
                Tracer::Fdg => PET_CT_FDG_WHOLE_BODY,
                Tracer::Psma => PET_WHOLE_BODY,
            },
        ),
        container(
            CONTAINS,
            IMAGE_LIBRARY,
            Some("1600"),
            vec![container(CONTAINS, IMAGE_LIBRARY_GROUP, None, library)],
        ),
        container(CONTAINS, IMAGING_MEASUREMENTS, None, groups),
        container(
            CONTAINS,
            QUALITATIVE_EVALUATIONS,
            None,
            staging_items(&report.staging),
        ),
    ];

    let mut obj = NewInstance::new(
        &Kind {
            sop_class_uid: COMPREHENSIVE_3D_SR_STORAGE,
            modality: "SR",
            series_number: SERIES_NUMBER,
            series_description: "uptake measurement report",
        },
        &source.patient_study,
        study_uid,
    );
    let mut put = |tag: Tag, vr: VR, value: Value<InMemDicomObject>| obj.put(tag, vr, value);
    put(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        VR::SQ,
        sequence([]),
    );
    put(
        tags::PERFORMED_PROCEDURE_CODE_SEQUENCE,
        VR::SQ,
        sequence([]),
    );
    put(tags::COMPLETION_FLAG, VR::CS, "COMPLETE".into());
    put(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED".into());
    let sop_ref = |class: &str, uid: &str| {
        item([
            (tags::REFERENCED_SOP_CLASS_UID, VR::UI, class.into()),
            (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.into()),
        ])
    };
    let series_ref = |series: &str, instances: Vec<InMemDicomObject>| {
        item([
            (tags::SERIES_INSTANCE_UID, VR::UI, series.into()),
            (tags::REFERENCED_SOP_SEQUENCE, VR::SQ, sequence(instances)),
        ])
    };
    put(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        VR::SQ,
        sequence([item([
            (tags::STUDY_INSTANCE_UID, VR::UI, study_uid.into()),
            (
                tags::REFERENCED_SERIES_SEQUENCE,
                VR::SQ,
                sequence([
                    series_ref(
                        &source.series_instance_uid,
                        references
                            .iter()
                            .map(|&(class, uid)| sop_ref(class, uid))
                            .collect(),
                    ),
                    series_ref(
                        &seg.series_instance_uid,
                        vec![sop_ref(SEGMENTATION_STORAGE, &seg.sop_instance_uid)],
                    ),
                ]),
            ),
        ])]),
    );
    put(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        VR::SQ,
        sequence([item([
            (
                tags::CODING_SCHEME_DESIGNATOR,
                VR::SH,
                PRIVATE_SCHEME.into(),
            ),
            (
                tags::CODING_SCHEME_NAME,
                VR::ST,
                "uptake private codes (docs/dicom-out.md)".into(),
            ),
            (
                tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
                VR::ST,
                "uptake".into(),
            ),
        ])]),
    );
    // The root content item is the data set itself.
    put(tags::VALUE_TYPE, VR::CS, "CONTAINER".into());
    put(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        VR::SQ,
        code(IMAGING_MEASUREMENT_REPORT),
    );
    put(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE".into());
    put(tags::CONTENT_TEMPLATE_SEQUENCE, VR::SQ, template("1500"));
    put(tags::CONTENT_SEQUENCE, VR::SQ, sequence(root));
    let written = WrittenSr {
        series_instance_uid: obj.series_instance_uid.clone(),
        sop_instance_uid: obj.sop_instance_uid.clone(),
        measurement_groups: measured.len(),
    };
    Ok((obj, written))
}

/// The TID 1411 group of one SEG segment and its finding.
fn roi_group(
    source: &SourceSeries,
    tracer: Tracer,
    seg: &WrittenSeg,
    segment: &WrittenSegment,
    f: &Finding,
    algorithm: &str,
) -> InMemDicomObject {
    let r = &f.region;
    let mut items = vec![
        text_item(HAS_OBS_CONTEXT, TRACKING_IDENTIFIER, &segment.tracking_id),
        uid_item(HAS_OBS_CONTEXT, TRACKING_UID, &segment.tracking_uid),
        code_item(CONTAINS, FINDING, LESION),
    ];
    if let Some((value, meaning)) = seg::anatomic_region(&f.location.name) {
        items.push(code_item(
            HAS_CONCEPT_MOD,
            FINDING_SITE,
            (value, "SCT", meaning),
        ));
    }
    items.push(image_item(
        Some(REFERENCED_SEGMENT),
        SEGMENTATION_STORAGE,
        &seg.sop_instance_uid,
        Some(segment.number),
    ));
    items.push(uid_item(
        CONTAINS,
        SOURCE_SERIES_FOR_SEGMENTATION,
        &source.series_instance_uid,
    ));
    let total_uptake = match tracer {
        Tracer::Fdg => TOTAL_LESION_GLYCOLYSIS,
        Tracer::Psma => TOTAL_LESION_PSMA,
    };
    let mut numbers = vec![
        (SUVBW, Some(MAXIMUM), from_f32(r.suv_max), SUVBW_UNIT),
        (SUVBW, Some(PEAK), r.suv_peak, SUVBW_UNIT),
        (SUVBW, Some(MEAN), r.suv_mean, SUVBW_UNIT),
        (VOLUME, None, r.volume_ml, MILLILITER),
        (total_uptake, None, r.total_uptake, SUVBW_MILLILITER),
        (P_SUSPICIOUS, None, from_f32(f.p_suspicious), PROBABILITY),
    ];
    if let Some(score) = f.expression_score {
        numbers.push((EXPRESSION_SCORE, None, f64::from(score), SCORE));
    }
    items.extend(
        numbers
            .into_iter()
            .filter_map(|(name, derivation, value, unit)| {
                num_item(name, derivation, value, unit, algorithm)
            }),
    );
    items.push(code_item(
        CONTAINS,
        SUSPICIOUS,
        if f.suspicious { YES } else { NO },
    ));
    if let Some(role) = f.role {
        items.push(code_item(CONTAINS, STAGING_ROLE, role_code(role)));
    }
    items.push(text_item(CONTAINS, LOCATION_CLASS, &f.location.name));
    container(CONTAINS, MEASUREMENT_GROUP, Some("1411"), items)
}

/// The TID 1501 group of the tumour-burden figures.
fn burden_group(report: &Report, algorithm: &str) -> InMemDicomObject {
    let b = &report.burden;
    let c = &b.role_counts;
    let count = |n: usize| n as f64;
    let mut items = vec![
        text_item(HAS_OBS_CONTEXT, TRACKING_IDENTIFIER, "uptake tumour burden"),
        uid_item(HAS_OBS_CONTEXT, TRACKING_UID, &random_uid()),
    ];
    items.extend(
        [
            (TUMOUR_VOLUME, b.tumour_volume_ml, MILLILITER),
            (TOTAL_LESION_UPTAKE, b.total_lesion_uptake, SUVBW_MILLILITER),
            (SUSPICIOUS_COUNT, count(b.suspicious_count), FINDINGS),
            (T_COUNT, count(c.t), FINDINGS),
            (N_COUNT, count(c.n), FINDINGS),
            (M1A_COUNT, count(c.m1a), FINDINGS),
            (M1B_COUNT, count(c.m1b), FINDINGS),
            (M1C_COUNT, count(c.m1c), FINDINGS),
            (BONE_VOLUME, b.suspicious_bone_volume_ml, MILLILITER),
            (SKELETON_VOLUME, b.skeleton_volume_ml, MILLILITER),
        ]
        .into_iter()
        .filter_map(|(name, value, unit)| num_item(name, None, value, unit, algorithm)),
    );
    container(CONTAINS, MEASUREMENT_GROUP, Some("1501"), items)
}

/// The miTNM line and its categories.
fn staging_items(tnm: &MiTnm) -> Vec<InMemDicomObject> {
    let mut items = vec![
        text_item(CONTAINS, MITNM, &tnm.line()),
        code_item(CONTAINS, MIT, t_code(tnm.t)),
        code_item(CONTAINS, MIN, n_code(tnm.n)),
        code_item(CONTAINS, MIM, m_code(tnm.m)),
    ];
    items.extend(
        tnm.m_categories
            .iter()
            .map(|c| code_item(CONTAINS, PRESENT_M_CATEGORY, m_code(c.category))),
    );
    if let Some(pattern) = tnm.bone_pattern {
        items.push(code_item(CONTAINS, BONE_PATTERN, bone_code(pattern)));
    }
    items.push(code_item(
        CONTAINS,
        DIFFUSE_MARROW_INVOLVEMENT,
        if tnm.dmi { YES } else { NO },
    ));
    items
}

/// A TID 300 measurement with its derivation and algorithm; `None` for a value that a DS
/// cannot hold (not finite).
fn num_item(
    name: Code,
    derivation: Option<Code>,
    value: f64,
    unit: Code,
    algorithm: &str,
) -> Option<InMemDicomObject> {
    if !value.is_finite() {
        return None;
    }
    let text = decimal_string(value);
    let mut measured: Elements = vec![
        (tags::MEASUREMENT_UNITS_CODE_SEQUENCE, VR::SQ, code(unit)),
        (tags::NUMERIC_VALUE, VR::DS, text.as_str().into()),
    ];
    // Type 1C: the exact value where 16 characters of DS lose precision.
    if text.parse::<f64>().ok() != Some(value) {
        measured.push((
            tags::FLOATING_POINT_VALUE,
            VR::FD,
            PrimitiveValue::from(value).into(),
        ));
    }
    let mut modifiers = Vec::new();
    if let Some(d) = derivation {
        modifiers.push(code_item(HAS_CONCEPT_MOD, DERIVATION, d));
    }
    modifiers.push(text_item(HAS_CONCEPT_MOD, ALGORITHM_NAME, "uptake"));
    modifiers.push(text_item(HAS_CONCEPT_MOD, ALGORITHM_VERSION, algorithm));
    Some(content(
        CONTAINS,
        "NUM",
        Some(name),
        vec![
            (
                tags::MEASURED_VALUE_SEQUENCE,
                VR::SQ,
                sequence([item(measured)]),
            ),
            (tags::CONTENT_SEQUENCE, VR::SQ, sequence(modifiers)),
        ],
    ))
}

/// An `f32` of the report as the JSON writes it (its shortest decimal), not its binary
/// expansion.
fn from_f32(v: f32) -> f64 {
    v.to_string().parse().unwrap_or(f64::from(v))
}

const CONTAINS: &str = "CONTAINS";
const HAS_CONCEPT_MOD: &str = "HAS CONCEPT MOD";
const HAS_OBS_CONTEXT: &str = "HAS OBS CONTEXT";
const HAS_ACQ_CONTEXT: &str = "HAS ACQ CONTEXT";

/// A content item: relationship, value type, concept name (optional for IMAGE) and value.
fn content(
    relationship: &str,
    value_type: &str,
    name: Option<Code>,
    mut value: Elements,
) -> InMemDicomObject {
    value.push((tags::RELATIONSHIP_TYPE, VR::CS, relationship.into()));
    value.push((tags::VALUE_TYPE, VR::CS, value_type.into()));
    if let Some(name) = name {
        value.push((tags::CONCEPT_NAME_CODE_SEQUENCE, VR::SQ, code(name)));
    }
    item(value)
}

fn container(
    relationship: &str,
    name: Code,
    template_id: Option<&str>,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    let mut value: Elements = vec![
        (tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE".into()),
        (tags::CONTENT_SEQUENCE, VR::SQ, sequence(children)),
    ];
    if let Some(id) = template_id {
        value.push((tags::CONTENT_TEMPLATE_SEQUENCE, VR::SQ, template(id)));
    }
    content(relationship, "CONTAINER", Some(name), value)
}

fn template(id: &str) -> Value<InMemDicomObject> {
    sequence([item([
        (tags::MAPPING_RESOURCE, VR::CS, "DCMR".into()),
        (tags::TEMPLATE_IDENTIFIER, VR::CS, id.into()),
    ])])
}

fn code_item(relationship: &str, name: Code, value: Code) -> InMemDicomObject {
    content(
        relationship,
        "CODE",
        Some(name),
        vec![(tags::CONCEPT_CODE_SEQUENCE, VR::SQ, code(value))],
    )
}

fn text_item(relationship: &str, name: Code, text: &str) -> InMemDicomObject {
    content(
        relationship,
        "TEXT",
        Some(name),
        vec![(tags::TEXT_VALUE, VR::UT, text.into())],
    )
}

fn uid_item(relationship: &str, name: Code, uid: &str) -> InMemDicomObject {
    content(
        relationship,
        "UIDREF",
        Some(name),
        vec![(tags::UID, VR::UI, uid.into())],
    )
}

/// An IMAGE item referencing one instance, or one segment of a SEG.
fn image_item(
    name: Option<Code>,
    class: &str,
    uid: &str,
    segment: Option<u16>,
) -> InMemDicomObject {
    let mut reference: Elements = vec![
        (tags::REFERENCED_SOP_CLASS_UID, VR::UI, class.into()),
        (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.into()),
    ];
    if let Some(number) = segment {
        reference.push((
            tags::REFERENCED_SEGMENT_NUMBER,
            VR::US,
            PrimitiveValue::from(number).into(),
        ));
    }
    content(
        CONTAINS,
        "IMAGE",
        name,
        vec![(
            tags::REFERENCED_SOP_SEQUENCE,
            VR::SQ,
            sequence([item(reference)]),
        )],
    )
}

// Standard concepts (DICOM PS3.16).
const IMAGING_MEASUREMENT_REPORT: Code = ("126000", "DCM", "Imaging Measurement Report");
const LANGUAGE: Code = ("121049", "DCM", "Language of Content Item and Descendants");
const ENGLISH_US: Code = ("en-US", "RFC5646", "English (United States)");
const OBSERVER_TYPE: Code = ("121005", "DCM", "Observer Type");
const DEVICE: Code = ("121007", "DCM", "Device");
const DEVICE_OBSERVER_UID_CONCEPT: Code = ("121012", "DCM", "Device Observer UID");
const DEVICE_OBSERVER_NAME: Code = ("121013", "DCM", "Device Observer Name");
const DEVICE_OBSERVER_MANUFACTURER: Code = ("121014", "DCM", "Device Observer Manufacturer");
const DEVICE_OBSERVER_MODEL_NAME: Code = ("121015", "DCM", "Device Observer Model Name");
const PROCEDURE_REPORTED: Code = ("121058", "DCM", "Procedure reported");
const PET_CT_FDG_WHOLE_BODY: Code = ("443271005", "SCT", "PET/CT FDG imaging of whole body");
const PET_WHOLE_BODY: Code = ("44139-4", "LN", "PET whole body");
const IMAGE_LIBRARY: Code = ("111028", "DCM", "Image Library");
const IMAGE_LIBRARY_GROUP: Code = ("126200", "DCM", "Image Library Group");
const MODALITY: Code = ("121139", "DCM", "Modality");
const PET_MODALITY: Code = ("PT", "DCM", "Positron emission tomography");
const FRAME_OF_REFERENCE_UID: Code = ("112227", "DCM", "Frame of Reference UID");
const IMAGING_MEASUREMENTS: Code = ("126010", "DCM", "Imaging Measurements");
const MEASUREMENT_GROUP: Code = ("125007", "DCM", "Measurement Group");
const TRACKING_IDENTIFIER: Code = ("112039", "DCM", "Tracking Identifier");
const TRACKING_UID: Code = ("112040", "DCM", "Tracking Unique Identifier");
const FINDING: Code = ("121071", "DCM", "Finding");
const LESION: Code = ("52988006", "SCT", "Lesion");
const FINDING_SITE: Code = ("363698007", "SCT", "Finding Site");
const REFERENCED_SEGMENT: Code = ("121191", "DCM", "Referenced Segment");
const SOURCE_SERIES_FOR_SEGMENTATION: Code = ("121232", "DCM", "Source series for segmentation");
const SUVBW: Code = ("126401", "DCM", "SUVbw");
const DERIVATION: Code = ("121401", "DCM", "Derivation");
const MAXIMUM: Code = ("56851009", "SCT", "Maximum");
const PEAK: Code = ("126031", "DCM", "Peak Value Within ROI");
const MEAN: Code = ("373098007", "SCT", "Mean");
const VOLUME: Code = ("118565006", "SCT", "Volume");
const TOTAL_LESION_GLYCOLYSIS: Code = ("126033", "DCM", "Total Lesion Glycolysis");
const ALGORITHM_NAME: Code = ("111001", "DCM", "Algorithm Name");
const ALGORITHM_VERSION: Code = ("111003", "DCM", "Algorithm Version");
const QUALITATIVE_EVALUATIONS: Code = ("C0034375", "UMLS", "Qualitative Evaluations");
const YES: Code = ("373066001", "SCT", "Yes");
const NO: Code = ("373067005", "SCT", "No");
// UCUM units.
const SUVBW_UNIT: Code = (
    "{SUVbw}g/ml",
    "UCUM",
    "Standardized Uptake Value body weight",
);
const SUVBW_MILLILITER: Code = ("{SUVbw}g", "UCUM", "SUVbw times milliliter");
const MILLILITER: Code = ("ml", "UCUM", "milliliter");
const PROBABILITY: Code = ("{probability}", "UCUM", "probability");
const SCORE: Code = ("{score}", "UCUM", "score");
const FINDINGS: Code = ("{findings}", "UCUM", "findings");

// Private concepts (99UPTAKE), for what DICOM has no code for.
const TOTAL_LESION_PSMA: Code = ("TLPSMA", PRIVATE_SCHEME, "Total lesion PSMA");
const P_SUSPICIOUS: Code = ("PSUSP", PRIVATE_SCHEME, "Probability of suspicious uptake");
const EXPRESSION_SCORE: Code = ("MIPSMA", PRIVATE_SCHEME, "miPSMA expression score");
const SUSPICIOUS: Code = ("SUSP", PRIVATE_SCHEME, "Suspicious uptake");
const STAGING_ROLE: Code = ("ROLE", PRIVATE_SCHEME, "miTNM staging role");
const LOCATION_CLASS: Code = ("LOC", PRIVATE_SCHEME, "uptake location class");
const TUMOUR_VOLUME: Code = ("TTV", PRIVATE_SCHEME, "Total suspicious volume");
const TOTAL_LESION_UPTAKE: Code = ("TLU", PRIVATE_SCHEME, "Total lesion uptake");
const SUSPICIOUS_COUNT: Code = ("NSUSP", PRIVATE_SCHEME, "Number of suspicious findings");
const T_COUNT: Code = ("NT", PRIVATE_SCHEME, "Number of miT findings");
const N_COUNT: Code = ("NN", PRIVATE_SCHEME, "Number of miN findings");
const M1A_COUNT: Code = ("NM1A", PRIVATE_SCHEME, "Number of miM1a findings");
const M1B_COUNT: Code = ("NM1B", PRIVATE_SCHEME, "Number of miM1b findings");
const M1C_COUNT: Code = ("NM1C", PRIVATE_SCHEME, "Number of miM1c findings");
const BONE_VOLUME: Code = ("BONEVOL", PRIVATE_SCHEME, "Suspicious bone volume");
const SKELETON_VOLUME: Code = ("SKELVOL", PRIVATE_SCHEME, "Skeleton volume");
const MITNM: Code = ("MITNM", PRIVATE_SCHEME, "miTNM stage");
const MIT: Code = ("MIT", PRIVATE_SCHEME, "miT category");
const MIN: Code = ("MIN", PRIVATE_SCHEME, "miN category");
const MIM: Code = ("MIM", PRIVATE_SCHEME, "miM category");
const PRESENT_M_CATEGORY: Code = ("MCAT", PRIVATE_SCHEME, "Present miM category");
const BONE_PATTERN: Code = ("BONEPAT", PRIVATE_SCHEME, "miM1b bone pattern");
const DIFFUSE_MARROW_INVOLVEMENT: Code = ("DMI", PRIVATE_SCHEME, "Diffuse marrow involvement");

fn t_code(t: TStage) -> Code {
    match t {
        TStage::T0 => ("miT0", PRIVATE_SCHEME, "miT0"),
        TStage::TPlus => ("miT+", PRIVATE_SCHEME, "miT+"),
    }
}

fn n_code(n: NStage) -> Code {
    match n {
        NStage::N0 => ("miN0", PRIVATE_SCHEME, "miN0"),
        NStage::N1 => ("miN1", PRIVATE_SCHEME, "miN1"),
        NStage::N2 => ("miN2", PRIVATE_SCHEME, "miN2"),
    }
}

fn m_code(m: MStage) -> Code {
    match m {
        MStage::M0 => ("miM0", PRIVATE_SCHEME, "miM0"),
        MStage::M1a => ("miM1a", PRIVATE_SCHEME, "miM1a"),
        MStage::M1b => ("miM1b", PRIVATE_SCHEME, "miM1b"),
        MStage::M1c => ("miM1c", PRIVATE_SCHEME, "miM1c"),
    }
}

fn bone_code(pattern: BonePattern) -> Code {
    match pattern {
        BonePattern::Unifocal => ("miM1b-u", PRIVATE_SCHEME, "unifocal"),
        BonePattern::Oligometastatic => ("miM1b-o", PRIVATE_SCHEME, "oligometastatic"),
        BonePattern::Disseminated => ("miM1b-d", PRIVATE_SCHEME, "disseminated"),
    }
}

fn role_code(role: Role) -> Code {
    match role {
        Role::T => ("T", PRIVATE_SCHEME, "Local tumour (miT)"),
        Role::N => ("N", PRIVATE_SCHEME, "Regional lymph node (miN)"),
        Role::M1a => ("M1a", PRIVATE_SCHEME, "Extrapelvic lymph node (miM1a)"),
        Role::M1b => ("M1b", PRIVATE_SCHEME, "Bone (miM1b)"),
        Role::M1c => ("M1c", PRIVATE_SCHEME, "Other organ (miM1c)"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f32_values_are_written_as_the_report_writes_them() {
        assert_eq!(decimal_string(from_f32(0.734_56)), "0.73456");
        assert_eq!(decimal_string(from_f32(18.0)), "18");
    }

    #[test]
    fn an_inexact_ds_carries_the_floating_point_value() {
        let algorithm = "v";
        let exact = num_item(VOLUME, None, 2.5, MILLILITER, algorithm).unwrap();
        let measured = |obj: &InMemDicomObject| {
            obj.element(tags::MEASURED_VALUE_SEQUENCE)
                .unwrap()
                .items()
                .unwrap()[0]
                .clone()
        };
        assert!(
            measured(&exact)
                .element_opt(tags::FLOATING_POINT_VALUE)
                .unwrap()
                .is_none()
        );
        let long = 1.0 / 3.0;
        let inexact = num_item(VOLUME, None, long, MILLILITER, algorithm).unwrap();
        let fd = measured(&inexact)
            .element(tags::FLOATING_POINT_VALUE)
            .unwrap()
            .to_float64()
            .unwrap();
        assert_eq!(fd, long);
        assert!(num_item(VOLUME, None, f64::NAN, MILLILITER, algorithm).is_none());
    }
}
