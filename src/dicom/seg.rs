//! Writing the suspicious findings of a report as a DICOM Segmentation (issue #30, "DICOM out").
//!
//! One Segmentation Storage object (SOP Class 1.2.840.10008.5.1.4.1.1.66.4, SegmentationType
//! BINARY) on the grid of the PET series the analysis read, one segment per suspicious finding
//! in report order (segment 1 is the most suspicious finding). A segment is the voxels of the
//! finding's region: those carrying its `region.id` in the report's label map, or, for a
//! sub-region finding, in its sub-region map.
//!
//! Frames: one per PET slice that holds voxels of a segment, ordered by segment number and
//! then along the slice normal, the layout highdicom writes by default (empty frames omitted)
//! and OHIF reads, through the per-frame references. Each frame names its segment
//! (SegmentIdentificationSequence), its position (PlanePositionSequence, the slice's
//! ImagePositionPatient as the PET file gives it) and the PET instance it was derived from
//! (DerivationImageSequence > SourceImageSequence); orientation and pixel measures are shared.
//! Pixels are packed 1 bit each, the first pixel in the least significant bit, frames
//! concatenated without padding (PS3.5 8.1.1), the whole padded to an even length.
//!
//! Patient, study, series and instance attributes as for every object written here (module
//! `instance`).
//!
//! Codes: every segment is SCT 49755003 "Morphologically abnormal structure" / SCT 52988006
//! "Lesion" (a finding the model calls suspicious is not known to be a neoplasm); the anatomic
//! region comes from the finding's location class where the class is one structure with a
//! SNOMED CT code in DICOM PS3.16 ([`anatomic_region`]), and is omitted otherwise.

use std::path::Path;

use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use thiserror::Error;

use super::instance::{
    Code, Kind, NewInstance, WriteError, code, decimals, item, limit, random_uid, sequence,
    source_references, strs,
};
use super::{PatientStudy, PetInstance, PetSeries};
use crate::findings::{Finding, Source};
use crate::report::Report;
use crate::volume::{Geometry, Volume};

/// Segmentation Storage.
pub const SEGMENTATION_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.66.4";
/// SeriesNumber (type 1 in the Segmentation Series module) of every SEG written here.
pub const SERIES_NUMBER: u32 = 1000;

/// Why a DICOM SEG could not be written.
#[derive(Debug, Error)]
pub enum SegError {
    #[error("the PET series lacks {0}, which a DICOM SEG must reference or copy")]
    MissingAttribute(&'static str),
    #[error("the report has no suspicious finding: a DICOM SEG needs at least one segment")]
    NoSuspiciousFindings,
    #[error(
        "the report's label map ({labels:?} voxels) is not on the grid of the PET series \
         ({pet:?} voxels, {slices} slices)"
    )]
    GridMismatch {
        labels: [usize; 3],
        pet: [usize; 3],
        slices: usize,
    },
    #[error("the report has no {0}")]
    NoLabels(&'static str),
    #[error("too many segments ({0}); a SEG holds at most 65535")]
    TooManySegments(usize),
    #[error("the PET slice is {0} pixels, beyond what a DICOM SEG can hold")]
    TooLarge(usize),
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// What a SEG needs of the PET series it was derived from; the series without its voxels.
#[derive(Debug, Clone)]
pub struct SourceSeries {
    pub series_instance_uid: String,
    pub frame_of_reference_uid: Option<String>,
    pub geometry: Geometry,
    /// In slice order: slice z of `geometry` is `instances[z]`.
    pub instances: Vec<PetInstance>,
    pub patient_study: PatientStudy,
}

impl From<PetSeries> for SourceSeries {
    fn from(series: PetSeries) -> Self {
        Self {
            series_instance_uid: series.series_instance_uid,
            frame_of_reference_uid: series.frame_of_reference_uid,
            geometry: *series.volume.geometry(),
            instances: series.instances,
            patient_study: series.patient_study,
        }
    }
}

/// The identity of a written SEG.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSeg {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
    /// In segment number order.
    pub segments: Vec<WrittenSegment>,
    pub frames: usize,
}

/// One written segment, for documents that refer to it (the SR's measurement groups).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenSegment {
    pub number: u16,
    /// Index of its finding in the report's `findings`.
    pub finding: usize,
    pub tracking_id: String,
    pub tracking_uid: String,
}

/// One segment: its number, the suspicious finding it shows and its tracking identity.
struct Segment<'a> {
    number: u16,
    index: usize,
    finding: &'a Finding,
    tracking_uid: String,
}

/// Writes the suspicious findings of `report` as a DICOM SEG on the grid of `source` to `path`.
/// `algorithm_version` goes into AlgorithmVersion (the crate version and the model id, say).
pub fn write_seg(
    path: &Path,
    source: &SourceSeries,
    report: &Report,
    algorithm_version: &str,
) -> Result<WrittenSeg, SegError> {
    let (obj, written) = build(source, report, algorithm_version)?;
    obj.write(path)?;
    Ok(written)
}

/// The SEG data set (without its file meta group).
fn build(
    source: &SourceSeries,
    report: &Report,
    algorithm_version: &str,
) -> Result<(NewInstance, WrittenSeg), SegError> {
    let labels = report
        .label_map
        .as_ref()
        .ok_or(SegError::NoLabels("label map"))?;
    let [columns, rows, slices] = source.geometry.dims();
    if labels.dims() != source.geometry.dims() || source.instances.len() != slices {
        return Err(SegError::GridMismatch {
            labels: labels.dims(),
            pet: source.geometry.dims(),
            slices: source.instances.len(),
        });
    }
    if rows > 65_535 || columns > 65_535 {
        return Err(SegError::TooLarge(rows * columns));
    }
    let study_uid = source
        .patient_study
        .study_instance_uid
        .as_deref()
        .ok_or(SegError::MissingAttribute("StudyInstanceUID (0020,000D)"))?;
    let frame_uid = source
        .frame_of_reference_uid
        .as_deref()
        .ok_or(SegError::MissingAttribute(
            "FrameOfReferenceUID (0020,0052)",
        ))?;
    let references = source_references(source).map_err(SegError::MissingAttribute)?;
    let suspicious: Vec<(usize, &Finding)> = report
        .findings
        .iter()
        .enumerate()
        .filter(|(_, f)| f.suspicious)
        .collect();
    if suspicious.is_empty() {
        return Err(SegError::NoSuspiciousFindings);
    }
    if suspicious.len() > usize::from(u16::MAX) {
        return Err(SegError::TooManySegments(suspicious.len()));
    }
    let segments: Vec<Segment> = suspicious
        .iter()
        .enumerate()
        .map(|(i, &(index, finding))| Segment {
            number: i as u16 + 1,
            index,
            finding,
            tracking_uid: random_uid(),
        })
        .collect();
    let masks: Vec<&Volume<u32>> = segments
        .iter()
        .map(|s| match s.finding.source {
            Source::S4 => Ok(labels),
            Source::Subregion => report
                .subregion_map
                .as_ref()
                .ok_or(SegError::NoLabels("sub-region map")),
        })
        .collect::<Result<_, _>>()?;
    if let Some(sub) = &report.subregion_map
        && sub.dims() != labels.dims()
    {
        return Err(SegError::GridMismatch {
            labels: sub.dims(),
            pet: source.geometry.dims(),
            slices,
        });
    }
    let slice_len = rows * columns;
    // Which slices hold voxels of each segment, and whether any voxel is in two segments.
    let mut frames: Vec<(usize, usize)> = Vec::new();
    let mut taken = vec![false; labels.data().len()];
    let mut overlap = false;
    for (k, (segment, map)) in segments.iter().zip(&masks).enumerate() {
        let id = segment.finding.region.id;
        for z in 0..slices {
            let plane = &map.data()[z * slice_len..(z + 1) * slice_len];
            if plane.contains(&id) {
                frames.push((k, z));
            }
        }
        for (t, _) in taken.iter_mut().zip(map.data()).filter(|(_, l)| **l == id) {
            overlap |= *t;
            *t = true;
        }
    }
    drop(taken);
    // Position indices: 1-based ranks of the slices that hold a frame, along the normal.
    let mut used: Vec<usize> = frames.iter().map(|&(_, z)| z).collect();
    used.sort_unstable();
    used.dedup();
    let position_index = |z: usize| used.binary_search(&z).map_or(0, |i| i as u32 + 1);

    let dimension_uid = random_uid();
    let mut obj = NewInstance::new(
        &Kind {
            sop_class_uid: SEGMENTATION_STORAGE,
            modality: "SEG",
            series_number: SERIES_NUMBER,
            series_description: "uptake suspicious findings",
        },
        &source.patient_study,
        study_uid,
    );
    let mut put = |tag: Tag, vr: VR, value: Value<InMemDicomObject>| obj.put(tag, vr, value);
    put(tags::IMAGE_TYPE, VR::CS, strs(["DERIVED", "PRIMARY"]));
    put(tags::FRAME_OF_REFERENCE_UID, VR::UI, frame_uid.into());
    put(
        tags::POSITION_REFERENCE_INDICATOR,
        VR::LO,
        PrimitiveValue::Empty.into(),
    );
    put(
        tags::REFERENCED_SERIES_SEQUENCE,
        VR::SQ,
        sequence([item([
            (
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                source.series_instance_uid.as_str().into(),
            ),
            (
                tags::REFERENCED_INSTANCE_SEQUENCE,
                VR::SQ,
                sequence(references.iter().map(|(class, uid)| {
                    item([
                        (tags::REFERENCED_SOP_CLASS_UID, VR::UI, (*class).into()),
                        (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, (*uid).into()),
                    ])
                })),
            ),
        ])]),
    );
    put(
        tags::DIMENSION_ORGANIZATION_SEQUENCE,
        VR::SQ,
        sequence([item([(
            tags::DIMENSION_ORGANIZATION_UID,
            VR::UI,
            dimension_uid.as_str().into(),
        )])]),
    );
    let dimension = |pointer: Tag, group: Tag, label: &str| {
        item([
            (
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                dimension_uid.as_str().into(),
            ),
            (
                tags::DIMENSION_INDEX_POINTER,
                VR::AT,
                PrimitiveValue::from(pointer).into(),
            ),
            (
                tags::FUNCTIONAL_GROUP_POINTER,
                VR::AT,
                PrimitiveValue::from(group).into(),
            ),
            (tags::DIMENSION_DESCRIPTION_LABEL, VR::LO, label.into()),
        ])
    };
    put(
        tags::DIMENSION_INDEX_SEQUENCE,
        VR::SQ,
        sequence([
            dimension(
                tags::REFERENCED_SEGMENT_NUMBER,
                tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                "Referenced Segment Number",
            ),
            dimension(
                tags::IMAGE_POSITION_PATIENT,
                tags::PLANE_POSITION_SEQUENCE,
                "Image Position Patient",
            ),
        ]),
    );
    put(
        tags::SAMPLES_PER_PIXEL,
        VR::US,
        PrimitiveValue::from(1u16).into(),
    );
    put(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        "MONOCHROME2".into(),
    );
    put(
        tags::NUMBER_OF_FRAMES,
        VR::IS,
        frames.len().to_string().into(),
    );
    put(tags::ROWS, VR::US, PrimitiveValue::from(rows as u16).into());
    put(
        tags::COLUMNS,
        VR::US,
        PrimitiveValue::from(columns as u16).into(),
    );
    for tag in [tags::BITS_ALLOCATED, tags::BITS_STORED] {
        put(tag, VR::US, PrimitiveValue::from(1u16).into());
    }
    for tag in [tags::HIGH_BIT, tags::PIXEL_REPRESENTATION] {
        put(tag, VR::US, PrimitiveValue::from(0u16).into());
    }
    put(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00".into());
    put(tags::SEGMENTATION_TYPE, VR::CS, "BINARY".into());
    put(
        tags::SEGMENTS_OVERLAP,
        VR::CS,
        if overlap { "YES" } else { "NO" }.into(),
    );
    put(tags::CONTENT_LABEL, VR::CS, "UPTAKE".into());
    put(
        tags::CONTENT_DESCRIPTION,
        VR::LO,
        "Suspicious uptake findings".into(),
    );
    put(
        tags::CONTENT_CREATOR_NAME,
        VR::PN,
        PrimitiveValue::Empty.into(),
    );
    put(
        tags::SEGMENT_SEQUENCE,
        VR::SQ,
        sequence(segments.iter().map(|s| segment_item(s, algorithm_version))),
    );
    let g = &source.geometry;
    let [sx, sy, sz] = g.spacing_mm();
    let d = g.direction();
    let orientation = [d[0][0], d[1][0], d[2][0], d[0][1], d[1][1], d[2][1]];
    let thickness = source.instances[0].slice_thickness_mm.unwrap_or(sz);
    put(
        tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        sequence([item([
            (
                tags::PLANE_ORIENTATION_SEQUENCE,
                VR::SQ,
                sequence([item([(
                    tags::IMAGE_ORIENTATION_PATIENT,
                    VR::DS,
                    decimals(&orientation),
                )])]),
            ),
            (
                tags::PIXEL_MEASURES_SEQUENCE,
                VR::SQ,
                sequence([item([
                    (tags::SLICE_THICKNESS, VR::DS, decimals(&[thickness])),
                    (tags::SPACING_BETWEEN_SLICES, VR::DS, decimals(&[sz])),
                    // Row spacing (along y, the column direction) first.
                    (tags::PIXEL_SPACING, VR::DS, decimals(&[sy, sx])),
                ])]),
            ),
        ])]),
    );
    put(
        tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE,
        VR::SQ,
        sequence(frames.iter().map(|&(k, z)| {
            let (class, uid) = references[z];
            item([
                (
                    tags::DERIVATION_IMAGE_SEQUENCE,
                    VR::SQ,
                    sequence([item([
                        (
                            tags::SOURCE_IMAGE_SEQUENCE,
                            VR::SQ,
                            sequence([item([
                                (tags::REFERENCED_SOP_CLASS_UID, VR::UI, class.into()),
                                (tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, uid.into()),
                                (tags::SPATIAL_LOCATIONS_PRESERVED, VR::CS, "YES".into()),
                                (
                                    tags::PURPOSE_OF_REFERENCE_CODE_SEQUENCE,
                                    VR::SQ,
                                    code(SOURCE_IMAGE_FOR_PROCESSING),
                                ),
                            ])]),
                        ),
                        (
                            tags::DERIVATION_CODE_SEQUENCE,
                            VR::SQ,
                            code(SEGMENTATION_DERIVATION),
                        ),
                    ])]),
                ),
                (
                    tags::FRAME_CONTENT_SEQUENCE,
                    VR::SQ,
                    sequence([item([(
                        tags::DIMENSION_INDEX_VALUES,
                        VR::UL,
                        PrimitiveValue::U32(
                            [u32::from(segments[k].number), position_index(z)]
                                .into_iter()
                                .collect(),
                        )
                        .into(),
                    )])]),
                ),
                (
                    tags::PLANE_POSITION_SEQUENCE,
                    VR::SQ,
                    sequence([item([(
                        tags::IMAGE_POSITION_PATIENT,
                        VR::DS,
                        decimals(&source.instances[z].image_position_patient),
                    )])]),
                ),
                (
                    tags::SEGMENT_IDENTIFICATION_SEQUENCE,
                    VR::SQ,
                    sequence([item([(
                        tags::REFERENCED_SEGMENT_NUMBER,
                        VR::US,
                        PrimitiveValue::from(segments[k].number).into(),
                    )])]),
                ),
            ])
        })),
    );
    let pixels = pack_frames(&frames, slice_len, |k, z| {
        let id = segments[k].finding.region.id;
        let plane = &masks[k].data()[z * slice_len..(z + 1) * slice_len];
        plane.iter().map(move |&l| l == id)
    });
    put(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels).into(),
    );
    let written = WrittenSeg {
        series_instance_uid: obj.series_instance_uid.clone(),
        sop_instance_uid: obj.sop_instance_uid.clone(),
        segments: segments
            .iter()
            .map(|s| WrittenSegment {
                number: s.number,
                finding: s.index,
                tracking_id: tracking_id(s.finding),
                tracking_uid: s.tracking_uid.clone(),
            })
            .collect(),
        frames: frames.len(),
    };
    Ok((obj, written))
}

/// The bits of `frames` (segment, slice), each `slice_len` pixels in row-major order, packed
/// 1 bit per pixel, least significant bit first, with no padding between frames; the result
/// padded with zero bytes to an even length.
fn pack_frames<I: Iterator<Item = bool>>(
    frames: &[(usize, usize)],
    slice_len: usize,
    pixels: impl Fn(usize, usize) -> I,
) -> Vec<u8> {
    let bits = frames.len() * slice_len;
    let mut out = vec![0u8; bits.div_ceil(8).next_multiple_of(2)];
    let mut i = 0usize;
    for &(k, z) in frames {
        for on in pixels(k, z) {
            if on {
                out[i / 8] |= 1 << (i % 8);
            }
            i += 1;
        }
    }
    out
}

const SOURCE_IMAGE_FOR_PROCESSING: Code = (
    "121322",
    "DCM",
    "Source image for image processing operation",
);
const SEGMENTATION_DERIVATION: Code = ("113076", "DCM", "Segmentation");
const MORPHOLOGICALLY_ABNORMAL_STRUCTURE: Code =
    ("49755003", "SCT", "Morphologically abnormal structure");
const LESION: Code = ("52988006", "SCT", "Lesion");
const ARTIFICIAL_INTELLIGENCE: Code = ("123110", "DCM", "Artificial Intelligence");

/// The SNOMED CT body structure of a model v1 location class (`classes::v1_classes`), where
/// the class is one structure with a code in DICOM PS3.16 (CID 4 "Anatomic Region" and the
/// lymph node CID 7600). `None` for the classes that gather several structures or whose
/// structure has no such code: ganglion, ln_common_iliac, ln_supradiaphragmatic,
/// adrenal_other_organ, bowel (small and large intestine).
pub fn anatomic_region(location: &str) -> Option<(&'static str, &'static str)> {
    Some(match location {
        "soft_tissue" => ("87784001", "Soft tissue"),
        "brain" => ("12738006", "Brain"),
        "lacrimal_gland" => ("13561001", "Lacrimal gland"),
        "salivary_gland" => ("385294005", "Salivary gland"),
        "pharynx" => ("54066008", "Pharynx"),
        "thyroid" => ("69748006", "Thyroid"),
        "heart" => ("80891009", "Heart"),
        "lung" => ("39607008", "Lung"),
        "liver" => ("10200004", "Liver"),
        "spleen" => ("78961009", "Spleen"),
        "kidney" => ("64033007", "Kidney"),
        "ureter" => ("87953007", "Ureter"),
        "bladder" => ("89837001", "Bladder"),
        "prostate" => ("41216001", "Prostate"),
        "ln_pelvic" => ("54268001", "Pelvic lymph node"),
        "ln_retroperitoneal" => ("91394001", "Retroperitoneal lymph node"),
        "ln_inguinal" => ("8928004", "Inguinal lymph node"),
        "bone" => ("272673000", "Bone"),
        _ => return None,
    })
}

/// The TrackingID of a finding's segment and SR measurement group.
fn tracking_id(finding: &Finding) -> String {
    format!("uptake region {}", finding.region.id)
}

/// The Segment Sequence item of one segment.
fn segment_item(segment: &Segment, algorithm_version: &str) -> InMemDicomObject {
    let f = segment.finding;
    let mut elements: Vec<(Tag, VR, Value<InMemDicomObject>)> = vec![
        (
            tags::SEGMENT_NUMBER,
            VR::US,
            PrimitiveValue::from(segment.number).into(),
        ),
        (
            tags::SEGMENT_LABEL,
            VR::LO,
            limit(&format!("{} (region {})", f.location.name, f.region.id), 64).into(),
        ),
        (
            tags::SEGMENT_DESCRIPTION,
            VR::ST,
            format!(
                "p_suspicious {:.3}, SUVmax {:.2}, SUVpeak {:.2}, SUVmean {:.2}, volume {:.2} mL",
                f.p_suspicious,
                f.region.suv_max,
                f.region.suv_peak,
                f.region.suv_mean,
                f.region.volume_ml
            )
            .into(),
        ),
        (
            tags::SEGMENTED_PROPERTY_CATEGORY_CODE_SEQUENCE,
            VR::SQ,
            code(MORPHOLOGICALLY_ABNORMAL_STRUCTURE),
        ),
        (
            tags::SEGMENTED_PROPERTY_TYPE_CODE_SEQUENCE,
            VR::SQ,
            code(LESION),
        ),
        (tags::SEGMENT_ALGORITHM_TYPE, VR::CS, "AUTOMATIC".into()),
        (tags::SEGMENT_ALGORITHM_NAME, VR::LO, "uptake".into()),
        (
            tags::SEGMENTATION_ALGORITHM_IDENTIFICATION_SEQUENCE,
            VR::SQ,
            sequence([item([
                (
                    tags::ALGORITHM_FAMILY_CODE_SEQUENCE,
                    VR::SQ,
                    code(ARTIFICIAL_INTELLIGENCE),
                ),
                (tags::ALGORITHM_NAME, VR::LO, "uptake".into()),
                (
                    tags::ALGORITHM_VERSION,
                    VR::LO,
                    limit(algorithm_version, 64).into(),
                ),
            ])]),
        ),
        (tags::TRACKING_ID, VR::UT, tracking_id(f).into()),
        (
            tags::TRACKING_UID,
            VR::UI,
            segment.tracking_uid.as_str().into(),
        ),
    ];
    if let Some((value, meaning)) = anatomic_region(&f.location.name) {
        elements.push((
            tags::ANATOMIC_REGION_SEQUENCE,
            VR::SQ,
            code((value, "SCT", meaning)),
        ));
    }
    item(elements)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_pack_across_frames_without_padding() {
        // Two frames of 5 pixels: 10 bits, 2 bytes (already even).
        let frames = [(0, 0), (0, 1)];
        let on = [
            [true, false, false, false, true],
            [false, true, true, false, false],
        ];
        let packed = pack_frames(&frames, 5, |_, z| on[z].iter().copied());
        // Bits 0, 4 | 6, 7 → 0b1101_0001, then nothing in the second byte.
        assert_eq!(packed, vec![0b1101_0001, 0]);
        // Three frames of 3 pixels: 9 bits → 2 bytes.
        let frames = [(0, 0), (0, 1), (0, 2)];
        let packed = pack_frames(&frames, 3, |_, z| [z == 2, false, z == 2].into_iter());
        assert_eq!(packed, vec![0b0100_0000, 0b1]);
    }
}
