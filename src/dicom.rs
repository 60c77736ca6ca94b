//! Reading PET DICOM series: pixel data to Bq/mL, geometry, SUV metadata (DESIGN S2).
//!
//! One folder holds one series (files that are not DICOM Part 10 are skipped). Pixel values are
//! `stored × RescaleSlope + RescaleIntercept` per slice, so for Units BQML the volume is in Bq/mL.
//! Geometry: array x runs along the ImageOrientationPatient row direction (`PixelSpacing[1]`),
//! y along its column direction (`PixelSpacing[0]`), z along their cross product, the slice
//! normal; slices are sorted by the projection of ImagePositionPatient on that normal. A series
//! whose slices differ in orientation, pixel spacing or size, do not stack along the normal
//! (a tilted gantry), repeat a position, or have inconsistent slice spacing is rejected.
//! Only uncompressed transfer syntaxes are decoded.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, open_file};
use thiserror::Error;

use crate::suv::{SuvError, SuvMetadata, date_seconds, suvbw_factor, time_seconds, to_suv};
use crate::volume::{Geometry, Volume, VolumeError};

use dicom_object::Tag;

/// Why a PET series could not be read.
#[derive(Debug, Error)]
pub enum DicomError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no DICOM file of a PET series in {0}")]
    NoSeries(PathBuf),
    #[error("{dir} holds {} series ({}); choose one by its SeriesInstanceUID", uids.len(), uids.join(", "))]
    MultipleSeries { dir: PathBuf, uids: Vec<String> },
    #[error("series {0} is not in the folder")]
    SeriesNotFound(String),
    #[error("{file}: Modality is {modality:?}; a PET (PT) series was expected")]
    NotPet { file: PathBuf, modality: String },
    #[error("{file}: {attribute} is missing or unreadable")]
    Missing {
        file: PathBuf,
        attribute: &'static str,
    },
    #[error("{file}: {message}")]
    Unsupported { file: PathBuf, message: String },
    #[error("the series is inconsistent: {0}")]
    Inconsistent(String),
    #[error(
        "slice spacing is inconsistent: gaps range from {min_mm:.4} to {max_mm:.4} mm \
         (a missing or extra slice?)"
    )]
    SliceSpacing { min_mm: f64, max_mm: f64 },
    #[error("series geometry rejected: {0}")]
    Geometry(#[from] VolumeError),
}

/// A PET series read from DICOM.
#[derive(Debug, Clone)]
pub struct PetSeries {
    /// Rescaled pixel values: Bq/mL for Units BQML (counts for CNTS, SUV for GML).
    pub volume: Volume<f32>,
    /// The attributes of the SUVbw factor; acquisition date/time are the series' earliest.
    pub metadata: SuvMetadata,
    pub series_instance_uid: String,
}

impl PetSeries {
    /// The SUVbw factor (S2) of this series.
    pub fn suv_factor(&self) -> Result<f64, SuvError> {
        suvbw_factor(&self.metadata)
    }

    /// The volume in SUV (g/mL).
    pub fn to_suv(&self) -> Result<Volume<f32>, SuvError> {
        Ok(to_suv(&self.volume, self.suv_factor()?))
    }
}

/// Reads the PET series in `dir` (exactly one series must be there).
pub fn read_pet_series(dir: impl AsRef<Path>) -> Result<PetSeries, DicomError> {
    read_pet_series_uid(dir, None)
}

/// Reads the PET series with SeriesInstanceUID `uid` from `dir`, or the only one when `None`.
pub fn read_pet_series_uid(
    dir: impl AsRef<Path>,
    uid: Option<&str>,
) -> Result<PetSeries, DicomError> {
    let dir = dir.as_ref();
    let io = |source| DicomError::Io {
        path: dir.to_path_buf(),
        source,
    };
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    let mut slices = Vec::new();
    for path in paths {
        // Anything that is not a DICOM Part 10 file (a README, a DICOMDIR's companions) is skipped.
        let Ok(obj) = open_file(&path) else { continue };
        let ts = obj.meta().transfer_syntax().to_string();
        slices.push(Slice::read(&path, &obj, &ts)?);
    }
    let mut uids: Vec<String> = slices.iter().map(|s| s.series_uid.clone()).collect();
    uids.sort();
    uids.dedup();
    let chosen = match (uid, uids.as_slice()) {
        (_, []) => return Err(DicomError::NoSeries(dir.to_path_buf())),
        (Some(u), _) if !uids.iter().any(|x| x == u) => {
            return Err(DicomError::SeriesNotFound(u.to_string()));
        }
        (Some(u), _) => u.to_string(),
        (None, [only]) => only.clone(),
        (None, _) => {
            return Err(DicomError::MultipleSeries {
                dir: dir.to_path_buf(),
                uids,
            });
        }
    };
    slices.retain(|s| s.series_uid == chosen);
    assemble(slices, chosen)
}

/// What one file contributes.
#[derive(Debug)]
struct Slice {
    file: PathBuf,
    series_uid: String,
    rows: usize,
    columns: usize,
    position: [f64; 3],
    orientation: [f64; 6],
    pixel_spacing: [f64; 2],
    slice_thickness: Option<f64>,
    values: Vec<f32>,
    metadata: SuvMetadata,
}

fn text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let e = obj.element_opt(tag).ok()??;
    let s = e.to_str().ok()?;
    let s = s.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    (!s.is_empty()).then(|| s.to_string())
}

fn float(obj: &InMemDicomObject, tag: Tag) -> Option<f64> {
    let e = obj.element_opt(tag).ok()??;
    if let Ok(v) = e.to_float64() {
        return Some(v);
    }
    // Private attributes read without a dictionary arrive as raw bytes holding a DS string.
    let bytes = e.to_bytes().ok()?;
    std::str::from_utf8(&bytes)
        .ok()?
        .trim_matches(|c: char| c.is_whitespace() || c == '\0')
        .parse()
        .ok()
}

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok()??.to_multi_float64().ok()
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok()??.to_int::<i64>().ok()
}

const NATIVE_TRANSFER_SYNTAXES: [&str; 3] = [
    "1.2.840.10008.1.2",      // implicit VR little endian
    "1.2.840.10008.1.2.1",    // explicit VR little endian
    "1.2.840.10008.1.2.1.99", // deflated explicit VR little endian
];

/// Philips private SUV scale factor and activity concentration scale factor.
const PHILIPS_SUV_SCALE_FACTOR: Tag = Tag(0x7053, 0x1000);
const PHILIPS_ACTIVITY_CONCENTRATION_SCALE_FACTOR: Tag = Tag(0x7053, 0x1009);

impl Slice {
    fn read(
        file: &Path,
        obj: &InMemDicomObject,
        transfer_syntax: &str,
    ) -> Result<Self, DicomError> {
        let missing = |attribute| DicomError::Missing {
            file: file.to_path_buf(),
            attribute,
        };
        let unsupported = |message: String| DicomError::Unsupported {
            file: file.to_path_buf(),
            message,
        };
        let modality = text(obj, tags::MODALITY).unwrap_or_default();
        if modality != "PT" {
            return Err(DicomError::NotPet {
                file: file.to_path_buf(),
                modality,
            });
        }
        if !NATIVE_TRANSFER_SYNTAXES.contains(&transfer_syntax) {
            return Err(unsupported(format!(
                "transfer syntax {transfer_syntax} is compressed or big endian; decompress the \
                 series first (e.g. `gdcmconv --raw`)"
            )));
        }
        let series_uid = text(obj, tags::SERIES_INSTANCE_UID)
            .ok_or_else(|| missing("SeriesInstanceUID (0020,000E)"))?;
        let rows = int(obj, tags::ROWS).ok_or_else(|| missing("Rows (0028,0010)"))?;
        let columns = int(obj, tags::COLUMNS).ok_or_else(|| missing("Columns (0028,0011)"))?;
        if !(1..=65_535).contains(&rows) || !(1..=65_535).contains(&columns) {
            return Err(unsupported(format!("image size {rows} × {columns}")));
        }
        let (rows, columns) = (rows as usize, columns as usize);
        if int(obj, tags::NUMBER_OF_FRAMES).is_some_and(|n| n != 1) {
            return Err(unsupported(
                "multi-frame PET images are not supported; one slice per file is".into(),
            ));
        }
        if int(obj, tags::SAMPLES_PER_PIXEL).is_some_and(|n| n != 1) {
            return Err(unsupported("SamplesPerPixel must be 1".into()));
        }
        let position: [f64; 3] = floats(obj, tags::IMAGE_POSITION_PATIENT)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| missing("ImagePositionPatient (0020,0032)"))?;
        let orientation: [f64; 6] = floats(obj, tags::IMAGE_ORIENTATION_PATIENT)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| missing("ImageOrientationPatient (0020,0037)"))?;
        let pixel_spacing: [f64; 2] = floats(obj, tags::PIXEL_SPACING)
            .and_then(|v| v.try_into().ok())
            .ok_or_else(|| missing("PixelSpacing (0028,0030)"))?;
        let slope =
            float(obj, tags::RESCALE_SLOPE).ok_or_else(|| missing("RescaleSlope (0028,1053)"))?;
        let intercept = float(obj, tags::RESCALE_INTERCEPT)
            .ok_or_else(|| missing("RescaleIntercept (0028,1052)"))?;
        if !(slope.is_finite() && intercept.is_finite()) {
            return Err(unsupported(format!(
                "rescale {slope} · v + {intercept} is not finite"
            )));
        }
        let stored = decode_pixels(obj, rows * columns).map_err(unsupported)?;
        let values = stored
            .into_iter()
            .map(|v| (v as f64 * slope + intercept) as f32)
            .collect();

        let radiopharmaceutical = obj
            .element_opt(tags::RADIOPHARMACEUTICAL_INFORMATION_SEQUENCE)
            .ok()
            .flatten()
            .and_then(|e| e.items())
            .and_then(|items| items.first());
        let rp_text = |tag| radiopharmaceutical.and_then(|item| text(item, tag));
        let rp_float = |tag| radiopharmaceutical.and_then(|item| float(item, tag));
        let corrected_image = obj
            .element_opt(tags::CORRECTED_IMAGE)
            .ok()
            .flatten()
            .and_then(|e| e.to_multi_str().ok())
            .map(|v| v.iter().map(|s| s.trim().to_string()).collect())
            .unwrap_or_default();
        let metadata = SuvMetadata {
            units: text(obj, tags::UNITS),
            decay_correction: text(obj, tags::DECAY_CORRECTION),
            corrected_image,
            patient_weight_kg: float(obj, tags::PATIENT_WEIGHT),
            radionuclide_total_dose_bq: rp_float(tags::RADIONUCLIDE_TOTAL_DOSE),
            radionuclide_half_life_s: rp_float(tags::RADIONUCLIDE_HALF_LIFE),
            radiopharmaceutical_start_datetime: rp_text(tags::RADIOPHARMACEUTICAL_START_DATE_TIME),
            radiopharmaceutical_start_time: rp_text(tags::RADIOPHARMACEUTICAL_START_TIME),
            series_date: text(obj, tags::SERIES_DATE),
            series_time: text(obj, tags::SERIES_TIME),
            acquisition_date: text(obj, tags::ACQUISITION_DATE),
            acquisition_time: text(obj, tags::ACQUISITION_TIME),
            philips_suv_scale_factor: float(obj, PHILIPS_SUV_SCALE_FACTOR),
            philips_activity_concentration_scale_factor: float(
                obj,
                PHILIPS_ACTIVITY_CONCENTRATION_SCALE_FACTOR,
            ),
        };
        Ok(Self {
            file: file.to_path_buf(),
            series_uid,
            rows,
            columns,
            position,
            orientation,
            pixel_spacing,
            slice_thickness: float(obj, tags::SLICE_THICKNESS),
            values,
            metadata,
        })
    }

    /// Seconds since 1970 of this slice's acquisition, when both attributes parse.
    fn acquisition_seconds(&self) -> Option<f64> {
        let m = &self.metadata;
        Some(
            date_seconds("AcquisitionDate", m.acquisition_date.as_deref()?).ok()?
                + time_seconds("AcquisitionTime", m.acquisition_time.as_deref()?).ok()?,
        )
    }
}

/// The stored pixel values (before rescale) of a native, single-frame, single-sample image.
fn decode_pixels(obj: &InMemDicomObject, count: usize) -> Result<Vec<i64>, String> {
    let bits_allocated = int(obj, tags::BITS_ALLOCATED).ok_or("BitsAllocated is missing")?;
    let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = match int(obj, tags::PIXEL_REPRESENTATION) {
        Some(0) => false,
        Some(1) => true,
        other => return Err(format!("PixelRepresentation {other:?} must be 0 or 1")),
    };
    let bytes_per = match bits_allocated {
        8 => 1,
        16 => 2,
        32 => 4,
        b => return Err(format!("BitsAllocated {b} is not supported (8, 16 or 32)")),
    };
    if !(1..=bits_allocated).contains(&bits_stored) {
        return Err(format!(
            "BitsStored {bits_stored} with BitsAllocated {bits_allocated}"
        ));
    }
    let element = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        .ok_or("PixelData is missing")?;
    if element.fragments().is_some() {
        return Err("PixelData is encapsulated (compressed)".into());
    }
    let bytes = element.to_bytes().map_err(|e| format!("PixelData: {e}"))?;
    if bytes.len() < count * bytes_per {
        return Err(format!(
            "PixelData holds {} bytes; {count} pixels of {bits_allocated} bits need {}",
            bytes.len(),
            count * bytes_per
        ));
    }
    // dicom-rs holds decoded values in native byte order.
    let mask: u64 = if bits_stored == 64 {
        u64::MAX
    } else {
        (1u64 << bits_stored) - 1
    };
    let sign_bit = 1u64 << (bits_stored - 1);
    Ok(bytes[..count * bytes_per]
        .chunks_exact(bytes_per)
        .map(|c| {
            let raw = match bytes_per {
                1 => c[0] as u64,
                2 => u16::from_ne_bytes([c[0], c[1]]) as u64,
                _ => u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64,
            } & mask;
            if signed && raw & sign_bit != 0 {
                raw as i64 - (mask as i64 + 1)
            } else {
                raw as i64
            }
        })
        .collect())
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [
        a[1] * b[2] - a[2] * b[1],
        a[2] * b[0] - a[0] * b[2],
        a[0] * b[1] - a[1] * b[0],
    ]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Tolerances for comparing slices: orientation cosines, and positions/spacings in mm (DS
/// values carry at most 16 characters, so exact equality cannot be asked for).
const ORIENTATION_TOLERANCE: f64 = 1e-4;
const POSITION_TOLERANCE_MM: f64 = 1e-2;
const SPACING_RELATIVE_TOLERANCE: f64 = 1e-3;

fn assemble(mut slices: Vec<Slice>, series_uid: String) -> Result<PetSeries, DicomError> {
    let first = &slices[0];
    let inconsistent = |what: &str, s: &Slice| {
        DicomError::Inconsistent(format!(
            "{what} of {} differs from {}",
            s.file.display(),
            first.file.display()
        ))
    };
    for s in &slices[1..] {
        if (s.rows, s.columns) != (first.rows, first.columns) {
            return Err(inconsistent("the image size", s));
        }
        if s.orientation
            .iter()
            .zip(&first.orientation)
            .any(|(a, b)| (a - b).abs() > ORIENTATION_TOLERANCE)
        {
            return Err(inconsistent("ImageOrientationPatient", s));
        }
        if s.pixel_spacing
            .iter()
            .zip(&first.pixel_spacing)
            .any(|(a, b)| (a - b).abs() > SPACING_RELATIVE_TOLERANCE * b.abs())
        {
            return Err(inconsistent("PixelSpacing", s));
        }
        let m = &s.metadata;
        let f = &first.metadata;
        if (
            &m.units,
            &m.decay_correction,
            &m.corrected_image,
            m.patient_weight_kg,
            m.radionuclide_total_dose_bq,
            m.radionuclide_half_life_s,
        ) != (
            &f.units,
            &f.decay_correction,
            &f.corrected_image,
            f.patient_weight_kg,
            f.radionuclide_total_dose_bq,
            f.radionuclide_half_life_s,
        ) || (
            &m.radiopharmaceutical_start_datetime,
            &m.radiopharmaceutical_start_time,
        ) != (
            &f.radiopharmaceutical_start_datetime,
            &f.radiopharmaceutical_start_time,
        ) || (&m.series_date, &m.series_time) != (&f.series_date, &f.series_time)
        {
            return Err(inconsistent("a series-level SUV attribute", s));
        }
    }
    let o = first.orientation;
    let row_dir = [o[0], o[1], o[2]];
    let col_dir = [o[3], o[4], o[5]];
    let normal = cross(row_dir, col_dir);
    slices.sort_by(|a, b| dot(a.position, normal).total_cmp(&dot(b.position, normal)));
    let first = &slices[0];
    let s0 = dot(first.position, normal);
    // Every slice must sit on the line through the first along the normal (no gantry tilt).
    for s in &slices[1..] {
        let along = dot(s.position, normal) - s0;
        let off: [f64; 3] =
            std::array::from_fn(|i| s.position[i] - first.position[i] - along * normal[i]);
        if dot(off, off).sqrt() > POSITION_TOLERANCE_MM {
            return Err(DicomError::Inconsistent(format!(
                "slice {} is shifted {:.3} mm within its plane from the stack (tilted gantry?)",
                s.file.display(),
                dot(off, off).sqrt()
            )));
        }
    }
    let gaps: Vec<f64> = slices
        .windows(2)
        .map(|w| dot(w[1].position, normal) - dot(w[0].position, normal))
        .collect();
    let z_spacing = if gaps.is_empty() {
        first.slice_thickness.ok_or(DicomError::Missing {
            file: first.file.clone(),
            attribute: "SliceThickness (0018,0050) of a single-slice series",
        })?
    } else {
        let mean = gaps.iter().sum::<f64>() / gaps.len() as f64;
        let (min_mm, max_mm) = gaps
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &g| {
                (lo.min(g), hi.max(g))
            });
        if min_mm < POSITION_TOLERANCE_MM
            || max_mm - min_mm > SPACING_RELATIVE_TOLERANCE * mean + POSITION_TOLERANCE_MM
        {
            return Err(DicomError::SliceSpacing { min_mm, max_mm });
        }
        mean
    };
    let geometry = Geometry::new(
        [first.columns, first.rows, slices.len()],
        [first.pixel_spacing[1], first.pixel_spacing[0], z_spacing],
        first.position,
        std::array::from_fn(|i| [row_dir[i], col_dir[i], normal[i]]),
    )?;

    let mut metadata = first.metadata.clone();
    // QIBA compares the series time with the earliest acquisition of the series.
    if let Some(earliest) = slices
        .iter()
        .filter_map(|s| s.acquisition_seconds().map(|t| (t, s)))
        .min_by(|a, b| a.0.total_cmp(&b.0))
    {
        metadata.acquisition_date = earliest.1.metadata.acquisition_date.clone();
        metadata.acquisition_time = earliest.1.metadata.acquisition_time.clone();
    }
    let mut data = Vec::with_capacity(geometry.len());
    for s in &slices {
        data.extend_from_slice(&s.values);
    }
    Ok(PetSeries {
        volume: Volume::new(geometry, data)?,
        metadata,
        series_instance_uid: series_uid,
    })
}
