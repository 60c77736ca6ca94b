//! The PET part of a series (DESIGN S2): the SUV attributes of each slice, which must agree
//! across the series, and the SUVbw factor.

use std::path::Path;

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, Tag};

use super::{DicomError, float, floats, text};
use crate::suv::{
    SuvError, SuvMetadata, check_suv_range, date_seconds, suvbw_factor, time_seconds, try_to_suv,
};
use crate::volume::Volume;

/// A PET series read from DICOM.
#[derive(Debug, Clone)]
pub struct PetSeries {
    /// Rescaled pixel values: Bq/mL for Units BQML (counts for CNTS, SUV for GML).
    pub volume: Volume<f32>,
    /// The attributes of the SUVbw factor; acquisition date/time are the series' earliest.
    pub metadata: SuvMetadata,
    pub series_instance_uid: String,
    /// FrameOfReferenceUID (0020,0052), when the files carry it.
    pub frame_of_reference_uid: Option<String>,
    /// The instances in slice order (slice z of `volume` is `instances[z]`): what an object
    /// derived from the series references (a DICOM SEG, module `seg`).
    pub instances: Vec<PetInstance>,
    /// Patient and study attributes of the series' first slice, copied into derived objects.
    pub patient_study: PatientStudy,
}

/// What identifies and places one slice of a PET series.
#[derive(Debug, Clone, PartialEq)]
pub struct PetInstance {
    /// SOPClassUID (0008,0016), when present.
    pub sop_class_uid: Option<String>,
    /// SOPInstanceUID (0008,0018), when present.
    pub sop_instance_uid: Option<String>,
    /// ImagePositionPatient (0020,0032) as the file gives it (mm, LPS).
    pub image_position_patient: [f64; 3],
    /// SliceThickness (0018,0050), when present.
    pub slice_thickness_mm: Option<f64>,
}

/// The Patient and General Study attributes of a series, as text (absent or empty: `None`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PatientStudy {
    pub patient_name: Option<String>,
    pub patient_id: Option<String>,
    pub patient_birth_date: Option<String>,
    pub patient_sex: Option<String>,
    pub study_instance_uid: Option<String>,
    pub study_date: Option<String>,
    pub study_time: Option<String>,
    pub study_id: Option<String>,
    pub accession_number: Option<String>,
    pub referring_physician_name: Option<String>,
    pub study_description: Option<String>,
}

impl PatientStudy {
    fn read(obj: &InMemDicomObject) -> Self {
        Self {
            patient_name: text(obj, tags::PATIENT_NAME),
            patient_id: text(obj, tags::PATIENT_ID),
            patient_birth_date: text(obj, tags::PATIENT_BIRTH_DATE),
            patient_sex: text(obj, tags::PATIENT_SEX),
            study_instance_uid: text(obj, tags::STUDY_INSTANCE_UID),
            study_date: text(obj, tags::STUDY_DATE),
            study_time: text(obj, tags::STUDY_TIME),
            study_id: text(obj, tags::STUDY_ID),
            accession_number: text(obj, tags::ACCESSION_NUMBER),
            referring_physician_name: text(obj, tags::REFERRING_PHYSICIAN_NAME),
            study_description: text(obj, tags::STUDY_DESCRIPTION),
        }
    }
}

/// What the PET reader keeps of each slice besides its pixels.
struct PetSlice {
    suv: SuvMetadata,
    instance: PetInstance,
    patient_study: PatientStudy,
}

impl PetSeries {
    /// The SUVbw factor (S2) of this series; an error also when the factor would take a voxel
    /// of this series beyond the f32 range (so `suv::to_suv` with it gives finite voxels).
    pub fn suv_factor(&self) -> Result<f64, SuvError> {
        let factor = suvbw_factor(&self.metadata)?;
        check_suv_range(&self.volume, factor)?;
        Ok(factor)
    }

    /// The volume in SUV (g/mL), every voxel finite.
    pub fn to_suv(&self) -> Result<Volume<f32>, SuvError> {
        try_to_suv(&self.volume, suvbw_factor(&self.metadata)?)
    }
}

/// Reads the PET series with SeriesInstanceUID `uid` from `dir`, or the only PET series there
/// when `None`.
pub fn read_pet_series_uid(
    dir: impl AsRef<Path>,
    uid: Option<&str>,
) -> Result<PetSeries, DicomError> {
    let stack = super::read_stack(dir.as_ref(), super::Modality::Pet, uid, read_pet_slice)?;
    let (first_file, first) = &stack.slices[0];
    for (file, m) in &stack.slices[1..] {
        if !same_series_attributes(&m.suv, &first.suv) {
            return Err(DicomError::Inconsistent(format!(
                "a series-level SUV attribute of {} differs from {}",
                file.display(),
                first_file.display()
            )));
        }
    }
    let mut metadata = first.suv.clone();
    let patient_study = first.patient_study.clone();
    // QIBA compares the series time with the earliest acquisition of the series.
    if let Some(earliest) = stack
        .slices
        .iter()
        .filter_map(|(_, m)| acquisition_seconds(&m.suv).map(|t| (t, &m.suv)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
    {
        metadata.acquisition_date = earliest.1.acquisition_date.clone();
        metadata.acquisition_time = earliest.1.acquisition_time.clone();
    }
    Ok(PetSeries {
        volume: stack.volume,
        metadata,
        series_instance_uid: stack.series_instance_uid,
        frame_of_reference_uid: stack.frame_of_reference_uid,
        instances: stack.slices.into_iter().map(|(_, m)| m.instance).collect(),
        patient_study,
    })
}

/// The SUV attributes, the identity and position, and the patient and study of one slice.
fn read_pet_slice(file: &Path, obj: &InMemDicomObject) -> Result<PetSlice, DicomError> {
    let image_position_patient = floats(obj, tags::IMAGE_POSITION_PATIENT)
        .and_then(|v| v.try_into().ok())
        .ok_or_else(|| DicomError::Missing {
            file: file.to_path_buf(),
            attribute: "ImagePositionPatient (0020,0032)",
        })?;
    Ok(PetSlice {
        suv: read_metadata(file, obj)?,
        instance: PetInstance {
            sop_class_uid: text(obj, tags::SOP_CLASS_UID),
            sop_instance_uid: text(obj, tags::SOP_INSTANCE_UID),
            image_position_patient,
            slice_thickness_mm: float(obj, tags::SLICE_THICKNESS).filter(|t| t.is_finite()),
        },
        patient_study: PatientStudy::read(obj),
    })
}

/// The attributes every slice of a series must share (acquisition date and time may differ).
fn same_series_attributes(m: &SuvMetadata, f: &SuvMetadata) -> bool {
    (
        &m.units,
        &m.decay_correction,
        &m.corrected_image,
        m.patient_weight_kg,
        m.radionuclide_total_dose_bq,
        m.radionuclide_half_life_s,
    ) == (
        &f.units,
        &f.decay_correction,
        &f.corrected_image,
        f.patient_weight_kg,
        f.radionuclide_total_dose_bq,
        f.radionuclide_half_life_s,
    ) && (
        &m.radiopharmaceutical_start_datetime,
        &m.radiopharmaceutical_start_time,
    ) == (
        &f.radiopharmaceutical_start_datetime,
        &f.radiopharmaceutical_start_time,
    ) && (&m.series_date, &m.series_time) == (&f.series_date, &f.series_time)
}

/// Seconds since 1970 of a slice's acquisition, when both attributes parse.
fn acquisition_seconds(m: &SuvMetadata) -> Option<f64> {
    Some(
        date_seconds("AcquisitionDate", m.acquisition_date.as_deref()?).ok()?
            + time_seconds("AcquisitionTime", m.acquisition_time.as_deref()?).ok()?,
    )
}

/// Philips private SUV scale factor and activity concentration scale factor.
const PHILIPS_SUV_SCALE_FACTOR: Tag = Tag(0x7053, 0x1000);
const PHILIPS_ACTIVITY_CONCENTRATION_SCALE_FACTOR: Tag = Tag(0x7053, 0x1009);

/// A numeric SUV attribute: `None` when absent or empty (type 2), an error naming the attribute
/// and the file when present but not a finite number (a NaN would otherwise surface later as
/// "differs between slices", since NaN ≠ NaN).
fn suv_number(
    obj: &InMemDicomObject,
    tag: Tag,
    file: &Path,
    attribute: &'static str,
) -> Result<Option<f64>, DicomError> {
    let Some(present) = text(obj, tag) else {
        return Ok(None);
    };
    match float(obj, tag) {
        Some(v) if v.is_finite() => Ok(Some(v)),
        Some(v) => Err(DicomError::NotFinite {
            file: file.to_path_buf(),
            attribute,
            value: v.to_string(),
        }),
        None => Err(DicomError::NotFinite {
            file: file.to_path_buf(),
            attribute,
            value: format!("{present:?}"),
        }),
    }
}

/// The SUV attributes of one slice.
fn read_metadata(file: &Path, obj: &InMemDicomObject) -> Result<SuvMetadata, DicomError> {
    let radiopharmaceutical = obj
        .element_opt(tags::RADIOPHARMACEUTICAL_INFORMATION_SEQUENCE)
        .ok()
        .flatten()
        .and_then(|e| e.items())
        .and_then(|items| items.first());
    let rp_text = |tag| radiopharmaceutical.and_then(|item| text(item, tag));
    let rp_number = |tag, attribute| match radiopharmaceutical {
        Some(item) => suv_number(item, tag, file, attribute),
        None => Ok(None),
    };
    let corrected_image = obj
        .element_opt(tags::CORRECTED_IMAGE)
        .ok()
        .flatten()
        .and_then(|e| e.to_multi_str().ok())
        .map(|v| v.iter().map(|s| s.trim().to_string()).collect())
        .unwrap_or_default();
    Ok(SuvMetadata {
        units: text(obj, tags::UNITS),
        decay_correction: text(obj, tags::DECAY_CORRECTION),
        corrected_image,
        patient_weight_kg: suv_number(
            obj,
            tags::PATIENT_WEIGHT,
            file,
            "PatientWeight (0010,1030)",
        )?,
        radionuclide_total_dose_bq: rp_number(
            tags::RADIONUCLIDE_TOTAL_DOSE,
            "RadionuclideTotalDose (0018,1074)",
        )?,
        radionuclide_half_life_s: rp_number(
            tags::RADIONUCLIDE_HALF_LIFE,
            "RadionuclideHalfLife (0018,1075)",
        )?,
        radiopharmaceutical_start_datetime: rp_text(tags::RADIOPHARMACEUTICAL_START_DATE_TIME),
        radiopharmaceutical_start_time: rp_text(tags::RADIOPHARMACEUTICAL_START_TIME),
        series_date: text(obj, tags::SERIES_DATE),
        series_time: text(obj, tags::SERIES_TIME),
        acquisition_date: text(obj, tags::ACQUISITION_DATE),
        acquisition_time: text(obj, tags::ACQUISITION_TIME),
        philips_suv_scale_factor: suv_number(
            obj,
            PHILIPS_SUV_SCALE_FACTOR,
            file,
            "the Philips SUV scale factor (7053,1000)",
        )?,
        philips_activity_concentration_scale_factor: suv_number(
            obj,
            PHILIPS_ACTIVITY_CONCENTRATION_SCALE_FACTOR,
            file,
            "the Philips activity concentration scale factor (7053,1009)",
        )?,
    })
}
