//! Writing the findings picture as a DICOM Secondary Capture (issue #30, "DICOM out"), so that a
//! PACS viewer shows what `findings.png` shows: the coronal and sagittal PET MIPs with the
//! suspicious findings outlined and named, and the staging line (the paper's Fig. 3 layout).
//!
//! One Secondary Capture Image Storage object (SOP Class 1.2.840.10008.5.1.4.1.1.7), 8-bit RGB,
//! pixels interleaved (PlanarConfiguration 0), ConversionType WSD (a workstation drew it), in a
//! new series of the PET's study (module `instance`). The plugin does not draw: the host hands
//! it the picture's pixels. The picture carries no patient identification, so
//! BurnedInAnnotation is NO.

use std::path::Path;

use dicom_core::value::PrimitiveValue;
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use thiserror::Error;

use super::PatientStudy;
use super::instance::{Kind, NewInstance, WriteError, strs};

/// Secondary Capture Image Storage.
pub const SECONDARY_CAPTURE_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.7";
/// SeriesNumber of every secondary capture written here (the SEG's is 1000, the SR's 1001).
pub const SERIES_NUMBER: u32 = 1002;

/// An 8-bit RGB picture, row by row from the top left, three bytes per pixel.
#[derive(Debug, Clone, Copy)]
pub struct Picture<'a> {
    pub width: usize,
    pub height: usize,
    pub rgb: &'a [u8],
}

/// Why a secondary capture could not be written.
#[derive(Debug, Error)]
pub enum CaptureError {
    #[error("the PET series lacks {0}, which the secondary capture must copy")]
    MissingAttribute(&'static str),
    #[error(
        "the picture is {width} × {height} pixels with {bytes} bytes; a secondary capture \
         needs 1 to 65535 pixels a side and 3 bytes per pixel"
    )]
    BadPicture {
        width: usize,
        height: usize,
        bytes: usize,
    },
    #[error(transparent)]
    Write(#[from] WriteError),
}

/// The identity of a written secondary capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenCapture {
    pub series_instance_uid: String,
    pub sop_instance_uid: String,
}

/// Writes `picture` to `path` as a secondary capture in the study of `patient_study` (the
/// PET's), with `description` as its SeriesDescription.
pub fn write_secondary_capture(
    path: &Path,
    patient_study: &PatientStudy,
    picture: Picture,
    description: &str,
) -> Result<WrittenCapture, CaptureError> {
    let obj = build(patient_study, picture, description)?;
    let written = WrittenCapture {
        series_instance_uid: obj.series_instance_uid.clone(),
        sop_instance_uid: obj.sop_instance_uid.clone(),
    };
    obj.write(path)?;
    Ok(written)
}

fn build(
    patient_study: &PatientStudy,
    picture: Picture,
    description: &str,
) -> Result<NewInstance, CaptureError> {
    let Picture { width, height, rgb } = picture;
    let side = 1..=usize::from(u16::MAX);
    if !side.contains(&width)
        || !side.contains(&height)
        || Some(rgb.len()) != width.checked_mul(height).and_then(|n| n.checked_mul(3))
    {
        return Err(CaptureError::BadPicture {
            width,
            height,
            bytes: rgb.len(),
        });
    }
    let study_uid =
        patient_study
            .study_instance_uid
            .as_deref()
            .ok_or(CaptureError::MissingAttribute(
                "StudyInstanceUID (0020,000D)",
            ))?;
    let mut obj = NewInstance::new(
        &Kind {
            sop_class_uid: SECONDARY_CAPTURE_IMAGE_STORAGE,
            modality: "OT",
            series_number: SERIES_NUMBER,
            series_description: description,
        },
        patient_study,
        study_uid,
    );
    let us = |v: u16| PrimitiveValue::from(v).into();
    obj.put(tags::IMAGE_TYPE, VR::CS, strs(["DERIVED", "SECONDARY"]));
    obj.put(tags::CONVERSION_TYPE, VR::CS, "WSD".into());
    // Type 2C attributes a whole-body picture has no value for: empty.
    for tag in [tags::PATIENT_ORIENTATION, tags::LATERALITY] {
        obj.put(tag, VR::CS, PrimitiveValue::Empty.into());
    }
    obj.put(tags::BURNED_IN_ANNOTATION, VR::CS, "NO".into());
    obj.put(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00".into());
    obj.put(tags::SAMPLES_PER_PIXEL, VR::US, us(3));
    obj.put(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, "RGB".into());
    obj.put(tags::PLANAR_CONFIGURATION, VR::US, us(0));
    obj.put(tags::ROWS, VR::US, us(height as u16));
    obj.put(tags::COLUMNS, VR::US, us(width as u16));
    let eight: [(Tag, u16); 4] = [
        (tags::BITS_ALLOCATED, 8),
        (tags::BITS_STORED, 8),
        (tags::HIGH_BIT, 7),
        (tags::PIXEL_REPRESENTATION, 0),
    ];
    for (tag, value) in eight {
        obj.put(tag, VR::US, us(value));
    }
    let mut pixels = rgb.to_vec();
    if pixels.len() % 2 == 1 {
        pixels.push(0); // OB values have even length
    }
    obj.put(
        tags::PIXEL_DATA,
        VR::OB,
        PrimitiveValue::from(pixels).into(),
    );
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn study() -> PatientStudy {
        PatientStudy {
            study_instance_uid: Some("1.2.3".into()),
            ..PatientStudy::default()
        }
    }

    #[test]
    fn a_picture_whose_bytes_do_not_match_its_size_is_refused() {
        let rgb = [0u8; 12];
        for (width, height) in [(2, 3), (0, 4), (4, 0), (65_536, 1)] {
            let picture = Picture {
                width,
                height,
                rgb: &rgb,
            };
            let err = build(&study(), picture, "x").err().expect("refused");
            assert!(matches!(err, CaptureError::BadPicture { .. }), "{err}");
        }
        let picture = Picture {
            width: 2,
            height: 2,
            rgb: &rgb,
        };
        assert!(build(&study(), picture, "x").is_ok());
    }

    #[test]
    fn a_pet_without_a_study_uid_is_named() {
        let rgb = [0u8; 3];
        let picture = Picture {
            width: 1,
            height: 1,
            rgb: &rgb,
        };
        let err = build(&PatientStudy::default(), picture, "x")
            .err()
            .expect("refused");
        assert!(err.to_string().contains("StudyInstanceUID"), "{err}");
    }
}
