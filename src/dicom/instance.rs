//! What every object written here shares (issue #30, "DICOM out"): the attributes of a new
//! instance in the PET's study (SOP Common, General Series, General Equipment, Patient and
//! General Study copied from the PET), UIDs, the current time, and the builders of elements,
//! items, sequences and codes.
//!
//! Patient and study attributes are copied from the PET's first slice; series and instance
//! are new, with UIDs of the form `2.25.<decimal value of a random version 4 UUID>`
//! (PS3.5 B.2), written with SpecificCharacterSet ISO_IR 192 (UTF-8, which is what the reader
//! decoded the PET's text to), explicit VR little endian.

use std::path::Path;

use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;

use super::PatientStudy;
use super::seg::SourceSeries;

pub(super) const EXPLICIT_VR_LITTLE_ENDIAN: &str = "1.2.840.10008.1.2.1";

/// A code: value, coding scheme designator, meaning.
pub(super) type Code = (&'static str, &'static str, &'static str);

/// Data elements in the order they are built.
pub(super) type Elements = Vec<(Tag, VR, Value<InMemDicomObject>)>;

/// What kind of object a new instance is.
pub(super) struct Kind<'a> {
    pub(super) sop_class_uid: &'a str,
    pub(super) modality: &'a str,
    pub(super) series_number: u32,
    pub(super) series_description: &'a str,
}

/// A new instance: its UIDs and the elements every object written here carries.
pub(super) struct NewInstance {
    pub(super) series_instance_uid: String,
    pub(super) sop_instance_uid: String,
    pub(super) object: InMemDicomObject,
}

impl NewInstance {
    /// A new series of one instance of `kind` in the study of the PET; `study_uid` is the
    /// PET's StudyInstanceUID (its absence is the caller's error to name).
    pub(super) fn new(kind: &Kind, patient_study: &PatientStudy, study_uid: &str) -> Self {
        let now = Timestamp::now();
        let series_instance_uid = random_uid();
        let sop_instance_uid = random_uid();
        let mut elements: Elements = vec![
            (tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192".into()),
            (tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000".into()),
            (tags::SOP_CLASS_UID, VR::UI, kind.sop_class_uid.into()),
            (
                tags::SOP_INSTANCE_UID,
                VR::UI,
                sop_instance_uid.as_str().into(),
            ),
            (tags::MODALITY, VR::CS, kind.modality.into()),
            (tags::MANUFACTURER, VR::LO, "uptake".into()),
            (tags::MANUFACTURER_MODEL_NAME, VR::LO, "uptake".into()),
            (tags::DEVICE_SERIAL_NUMBER, VR::LO, "1".into()),
            (
                tags::SOFTWARE_VERSIONS,
                VR::LO,
                env!("CARGO_PKG_VERSION").into(),
            ),
            (
                tags::SERIES_DESCRIPTION,
                VR::LO,
                kind.series_description.into(),
            ),
            (
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                series_instance_uid.as_str().into(),
            ),
            (
                tags::SERIES_NUMBER,
                VR::IS,
                kind.series_number.to_string().into(),
            ),
            (tags::INSTANCE_NUMBER, VR::IS, "1".into()),
        ];
        for tag in [
            tags::INSTANCE_CREATION_DATE,
            tags::SERIES_DATE,
            tags::CONTENT_DATE,
        ] {
            elements.push((tag, VR::DA, now.date.as_str().into()));
        }
        for tag in [
            tags::INSTANCE_CREATION_TIME,
            tags::SERIES_TIME,
            tags::CONTENT_TIME,
        ] {
            elements.push((tag, VR::TM, now.time.as_str().into()));
        }
        elements.extend(patient_study_elements(patient_study, study_uid));
        Self {
            series_instance_uid,
            sop_instance_uid,
            object: item(elements),
        }
    }

    pub(super) fn put(&mut self, tag: Tag, vr: VR, value: Value<InMemDicomObject>) {
        self.object.put(DataElement::new(tag, vr, value));
    }

    /// Writes the object as a Part 10 file, explicit VR little endian; the error names `path`.
    pub(super) fn write(self, path: &Path) -> Result<(), WriteError> {
        let file = self
            .object
            .with_meta(FileMetaTableBuilder::new().transfer_syntax(EXPLICIT_VR_LITTLE_ENDIAN))
            .map_err(|e| WriteError::Meta(e.to_string()))?;
        file.write_to_file(path).map_err(|e| WriteError::Write {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }
}

/// Why a built object could not be written.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("cannot build the file meta group: {0}")]
    Meta(String),
    #[error("cannot write {path}: {message}")]
    Write {
        path: std::path::PathBuf,
        message: String,
    },
}

/// SOPClassUID and SOPInstanceUID of every instance of the source series, in slice order;
/// the error names the attribute an instance lacks.
pub(super) fn source_references(source: &SourceSeries) -> Result<Vec<(&str, &str)>, &'static str> {
    source
        .instances
        .iter()
        .map(|instance| {
            let class = instance
                .sop_class_uid
                .as_deref()
                .ok_or("SOPClassUID (0008,0016)")?;
            let uid = instance
                .sop_instance_uid
                .as_deref()
                .ok_or("SOPInstanceUID (0008,0018)")?;
            Ok((class, uid))
        })
        .collect()
}

/// The Patient and General Study attributes copied from the PET, StudyInstanceUID included.
fn patient_study_elements(
    ps: &PatientStudy,
    study_uid: &str,
) -> Vec<(Tag, VR, Value<InMemDicomObject>)> {
    let mut elements: Vec<(Tag, VR, Value<InMemDicomObject>)> = [
        (tags::PATIENT_NAME, VR::PN, &ps.patient_name),
        (tags::PATIENT_ID, VR::LO, &ps.patient_id),
        (tags::PATIENT_BIRTH_DATE, VR::DA, &ps.patient_birth_date),
        (tags::PATIENT_SEX, VR::CS, &ps.patient_sex),
        (tags::STUDY_DATE, VR::DA, &ps.study_date),
        (tags::STUDY_TIME, VR::TM, &ps.study_time),
        (tags::STUDY_ID, VR::SH, &ps.study_id),
        (tags::ACCESSION_NUMBER, VR::SH, &ps.accession_number),
        (
            tags::REFERRING_PHYSICIAN_NAME,
            VR::PN,
            &ps.referring_physician_name,
        ),
    ]
    .into_iter()
    .map(|(tag, vr, value)| (tag, vr, optional(value)))
    .collect();
    if let Some(d) = &ps.study_description {
        elements.push((tags::STUDY_DESCRIPTION, VR::LO, d.as_str().into()));
    }
    elements.push((tags::STUDY_INSTANCE_UID, VR::UI, study_uid.into()));
    elements
}

pub(super) fn item(
    elements: impl IntoIterator<Item = (Tag, VR, Value<InMemDicomObject>)>,
) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(
        elements
            .into_iter()
            .map(|(tag, vr, value)| DataElement::new(tag, vr, value)),
    )
}

pub(super) fn sequence(
    items: impl IntoIterator<Item = InMemDicomObject>,
) -> Value<InMemDicomObject> {
    DataSetSequence::from(items.into_iter().collect::<Vec<_>>()).into()
}

/// A code sequence of one item.
pub(super) fn code((value, scheme, meaning): Code) -> Value<InMemDicomObject> {
    sequence([item([
        (tags::CODE_VALUE, VR::SH, value.into()),
        (tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme.into()),
        (tags::CODE_MEANING, VR::LO, meaning.into()),
    ])])
}

pub(super) fn strs<const N: usize>(values: [&str; N]) -> Value<InMemDicomObject> {
    PrimitiveValue::Strs(values.iter().map(|s| s.to_string()).collect()).into()
}

/// A type 2 attribute: its value, or empty.
pub(super) fn optional(value: &Option<String>) -> Value<InMemDicomObject> {
    match value {
        Some(v) => v.as_str().into(),
        None => PrimitiveValue::Empty.into(),
    }
}

/// DS values, each at most 16 characters (PS3.5 6.2).
pub(super) fn decimals(values: &[f64]) -> Value<InMemDicomObject> {
    PrimitiveValue::Strs(values.iter().map(|&v| decimal_string(v)).collect()).into()
}

/// The shortest text that reads back as `v` when it fits 16 characters (a DS holds at most
/// 16); otherwise the closer to `v` of the longest fixed and the longest exponential forms that
/// fit.
pub(super) fn decimal_string(v: f64) -> String {
    let v = if v == 0.0 { 0.0 } else { v }; // no "-0"
    let shortest = v.to_string();
    if shortest.len() <= 16 {
        return shortest;
    }
    let fits = |s: &String| s.len() <= 16;
    let fixed = (0..=15)
        .rev()
        .map(|p| {
            let s = format!("{v:.p$}");
            if s.contains('.') {
                s.trim_end_matches('0').trim_end_matches('.').to_string()
            } else {
                s
            }
        })
        .find(fits);
    let exponential = (0..=15).rev().map(|p| format!("{v:.p$e}")).find(fits);
    let error = |s: &Option<String>| {
        s.as_deref()
            .and_then(|s| s.parse::<f64>().ok())
            .map_or(f64::INFINITY, |b| (b - v).abs())
    };
    let best = if error(&fixed) <= error(&exponential) {
        fixed
    } else {
        exponential
    };
    best.unwrap_or_else(|| "0".to_string())
}

/// `text` cut to at most `max` bytes at a character boundary (the length limit of LO).
pub(super) fn limit(text: &str, max: usize) -> String {
    let mut end = text.len().min(max);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_string()
}

/// A UID of the form `2.25.<integer>` from a random version 4 UUID (PS3.5 B.2).
pub fn random_uid() -> String {
    let mut bits: u128 = rand::random();
    // Version 4 in bits 76–79, variant 0b10 in bits 62–63 (RFC 9562 §5.4).
    bits = (bits & !(0xF << 76)) | (0x4 << 76);
    bits = (bits & !(0x3 << 62)) | (0x2 << 62);
    format!("2.25.{bits}")
}

/// The current UTC date (YYYYMMDD) and time (HHMMSS) as DICOM DA and TM.
struct Timestamp {
    date: String,
    time: String,
}

impl Timestamp {
    fn now() -> Self {
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let (y, m, d) = civil_from_days((secs / 86_400) as i64);
        let s = secs % 86_400;
        Self {
            date: format!("{y:04}{m:02}{d:02}"),
            time: format!("{:02}{:02}{:02}", s / 3600, s / 60 % 60, s % 60),
        }
    }
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uids_are_2_25_uuids_within_64_characters() {
        for _ in 0..100 {
            let uid = random_uid();
            assert!(uid.len() <= 64, "{uid}");
            let n: u128 = uid.strip_prefix("2.25.").unwrap().parse().unwrap();
            assert_eq!((n >> 76) & 0xF, 4, "{uid}");
            assert_eq!((n >> 62) & 0x3, 2, "{uid}");
        }
    }

    #[test]
    fn decimal_strings_fit_16_characters() {
        for v in [
            0.0,
            -0.0,
            1.0,
            -100.0,
            3.27,
            0.1 + 0.2,
            -123.456_789_012_345,
            1e-20,
            2.5e300,
        ] {
            let s = decimal_string(v);
            assert!(s.len() <= 16, "{v}: {s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= 1e-12 * v.abs(), "{v}: {s}");
        }
        assert_eq!(decimal_string(-0.0), "0");
        assert_eq!(decimal_string(3.27), "3.27");
    }

    #[test]
    fn civil_dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
    }
}
