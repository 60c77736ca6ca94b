//! Reading PET DICOM series: pixel data to Bq/mL, geometry, SUV metadata (DESIGN S2).
//!
//! One folder holds one series. Pixel values are `stored × RescaleSlope + RescaleIntercept` per
//! slice, so for Units BQML the volume is in Bq/mL; a value beyond the f32 range is an error.
//!
//! Which files are read: a file that looks like DICOM, by the `DICM` magic of a Part 10 file (at
//! byte 128 after the preamble, or at byte 0 when the preamble was stripped) or by a `.dcm`,
//! `.dicom` or `.ima` name, must parse, or the series is rejected naming the file: a slice cut
//! short by an interrupted copy is never dropped silently (which would shorten the series by one
//! slice when it was the first or the last). Skipped are files without the magic and without such
//! a name (a README, a checksum list, a lock file), which are not DICOM Part 10 and could not be
//! read as such anyway, and the DICOMDIR (Media Storage Directory Storage), an index rather than an
//! image. A PixelData element shorter than Rows × Columns × BitsAllocated / 8 is a truncated file;
//! the image buffers are allocated only after that check, and fallibly.
//!
//! Geometry: array x runs along the ImageOrientationPatient row direction (`PixelSpacing[1]`),
//! y along its column direction (`PixelSpacing[0]`), z along their cross product, the slice
//! normal; slices are sorted by the projection of ImagePositionPatient on that normal. A series
//! whose slices differ in orientation, pixel spacing or size, do not stack along the normal
//! (a tilted gantry), repeat a position, or have inconsistent slice spacing is rejected.
//! Only uncompressed transfer syntaxes are decoded.

use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::file::ReadPreamble;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use thiserror::Error;

use crate::suv::{
    SuvError, SuvMetadata, check_suv_range, date_seconds, show, suvbw_factor, time_seconds,
    try_to_suv,
};
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
    #[error("{file}: the file is truncated or corrupt: {reason}")]
    Corrupt { file: PathBuf, reason: String },
    #[error("{file}: {attribute} is {value}, not a finite number")]
    NotFinite {
        file: PathBuf,
        attribute: &'static str,
        value: String,
    },
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
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
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    let mut slices = Vec::new();
    for path in paths {
        let Some((bytes, magic)) = dicom_bytes(&path)? else {
            continue;
        };
        let obj = parse(&path, &bytes, magic)?;
        if obj.meta().media_storage_sop_class_uid() == MEDIA_STORAGE_DIRECTORY_STORAGE {
            continue;
        }
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

/// The SOP class of a DICOMDIR.
const MEDIA_STORAGE_DIRECTORY_STORAGE: &str = "1.2.840.10008.1.3.10";

/// The bytes of `path` and where its `DICM` magic starts, or `None` for a file that is skipped:
/// one without the magic at byte 128 or 0 and without a DICOM file name (see the module docs).
fn dicom_bytes(path: &Path) -> Result<Option<(Vec<u8>, usize)>, DicomError> {
    use std::io::Read;
    const MAGIC: &[u8] = b"DICM";
    let io = |source| DicomError::Io {
        path: path.to_path_buf(),
        source,
    };
    let magic_at = |head: &[u8]| {
        if head.get(128..132) == Some(MAGIC) {
            Some(128)
        } else if head.starts_with(MAGIC) {
            Some(0)
        } else {
            None
        }
    };
    let named = path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        ["dcm", "dicom", "ima"]
            .iter()
            .any(|d| e.eq_ignore_ascii_case(d))
    });
    if !named {
        let mut head = Vec::with_capacity(132);
        std::fs::File::open(path)
            .map_err(io)?
            .take(132)
            .read_to_end(&mut head)
            .map_err(io)?;
        if magic_at(&head).is_none() {
            return Ok(None);
        }
    }
    let bytes = std::fs::read(path).map_err(io)?;
    let magic = magic_at(&bytes).ok_or_else(|| DicomError::Corrupt {
        file: path.to_path_buf(),
        reason: format!(
            "{} bytes without the DICM magic of a DICOM Part 10 file at byte 128",
            bytes.len()
        ),
    })?;
    Ok(Some((bytes, magic)))
}

/// Parses a Part 10 file whose `DICM` magic starts at byte `magic`, after
/// [`check_declared_lengths`].
fn parse(file: &Path, bytes: &[u8], magic: usize) -> Result<DefaultDicomObject, DicomError> {
    let corrupt = |reason: String| DicomError::Corrupt {
        file: file.to_path_buf(),
        reason,
    };
    check_declared_lengths(bytes, magic).map_err(corrupt)?;
    OpenFileOptions::new()
        .read_preamble(ReadPreamble::Never)
        .from_reader(&bytes[magic..])
        .map_err(|e| corrupt(e.to_string()))
}

const UNDEFINED_LENGTH: u32 = 0xFFFF_FFFF;

/// Explicit VRs with a reserved 16-bit field and a 32-bit length (PS3.5 §7.1.2).
const LONG_VRS: [&[u8; 2]; 13] = [
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
];

/// The VR of an explicit-VR header as dicom-rs reads it: one it does not know is UN, which has
/// the long form; otherwise the walk and the parser would disagree on where the length is.
fn explicit_vr(raw: [u8; 2]) -> [u8; 2] {
    if dicom_core::VR::from_binary(raw).is_some() {
        raw
    } else {
        *b"UN"
    }
}

/// Checks that every value length a Part 10 file (`bytes`, its `DICM` magic at byte `magic`)
/// declares fits in the bytes after it. dicom-rs allocates, and for text fills, a buffer of the declared
/// length before it reads the value, so a 200-byte file declaring a 4 GiB value would cost
/// 4 GiB of memory; here it costs one pass over the bytes.
///
/// The walk is linear: the file meta group in explicit VR little endian, then the data set in
/// its transfer syntax. It steps into sequences and items (their elements follow their headers)
/// and over every other value; fragments of encapsulated pixel data are stepped over. A
/// sequence in implicit VR is recognised by the item tag its value starts with. Not checked,
/// because the bytes cannot be walked: a deflated data set, and the contents of an explicit VR
/// UN value of undefined length (encoded in implicit VR).
fn check_declared_lengths(bytes: &[u8], magic: usize) -> Result<(), String> {
    let u16_at = |p: usize, big: bool| {
        let b = [bytes[p], bytes[p + 1]];
        if big {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        }
    };
    let u32_at = |p: usize, big: bool| {
        let b = [bytes[p], bytes[p + 1], bytes[p + 2], bytes[p + 3]];
        if big {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }
    };
    let mut pos = magic + 4;
    let mut transfer_syntax = String::new();
    // The file meta group: explicit VR little endian, group 0002.
    while bytes.len() >= pos + 8 && u16_at(pos, false) == 0x0002 {
        let element = u16_at(pos + 2, false);
        let vr = explicit_vr([bytes[pos + 4], bytes[pos + 5]]);
        let (header, len) = if LONG_VRS.contains(&&vr) {
            if bytes.len() < pos + 12 {
                break;
            }
            (12, u32_at(pos + 8, false))
        } else {
            (8, u32::from(u16_at(pos + 6, false)))
        };
        pos += header;
        let len = fits(bytes, pos, len, 0x0002, element)?;
        if element == 0x0010 {
            transfer_syntax = String::from_utf8_lossy(&bytes[pos..pos + len])
                .trim_matches(|c: char| c.is_whitespace() || c == '\0')
                .to_string();
        }
        pos += len;
    }
    let (implicit, big) = match transfer_syntax.as_str() {
        "1.2.840.10008.1.2" => (true, false),
        "1.2.840.10008.1.2.2" => (false, true),
        "1.2.840.10008.1.2.1.99" => return Ok(()),
        // Explicit VR little endian, and every encapsulated (compressed) syntax.
        _ => (false, false),
    };
    let mut in_fragments = false;
    while pos < bytes.len() {
        if bytes.len() < pos + 8 {
            return Err(format!(
                "the file ends {} bytes into an element header at byte {pos}",
                bytes.len() - pos
            ));
        }
        let (group, element) = (u16_at(pos, big), u16_at(pos + 2, big));
        if group == 0xFFFE {
            // Item, item delimitation or sequence delimitation: a 32-bit length, no VR.
            let len = u32_at(pos + 4, big);
            pos += 8;
            match element {
                0xE000 if len != UNDEFINED_LENGTH => {
                    let len = fits(bytes, pos, len, group, element)?;
                    if in_fragments {
                        pos += len;
                    }
                }
                0xE0DD => in_fragments = false,
                _ => {}
            }
            continue;
        }
        let (vr, header, len) = if implicit {
            (None, 8, u32_at(pos + 4, big))
        } else {
            let vr = explicit_vr([bytes[pos + 4], bytes[pos + 5]]);
            if LONG_VRS.contains(&&vr) {
                if bytes.len() < pos + 12 {
                    return Err(format!(
                        "the file ends inside the header of ({group:04X},{element:04X})"
                    ));
                }
                (Some(vr), 12, u32_at(pos + 8, big))
            } else {
                (Some(vr), 8, u32::from(u16_at(pos + 6, big)))
            }
        };
        pos += header;
        if len == UNDEFINED_LENGTH {
            match vr {
                Some(vr) if &vr == b"UN" => return Ok(()),
                _ if (group, element) == (0x7FE0, 0x0010) => in_fragments = true,
                _ => {}
            }
            continue;
        }
        let len = fits(bytes, pos, len, group, element)?;
        let sequence = match vr {
            Some(vr) => &vr == b"SQ",
            None => len >= 8 && bytes[pos..pos + 4] == [0xFE, 0xFF, 0x00, 0xE0],
        };
        if !sequence {
            pos += len;
        }
    }
    Ok(())
}

/// `len` as a usize when the value it declares at `pos` ends within `bytes`.
fn fits(bytes: &[u8], pos: usize, len: u32, group: u16, element: u16) -> Result<usize, String> {
    let left = bytes.len().saturating_sub(pos);
    usize::try_from(len)
        .ok()
        .filter(|&n| n <= left)
        .ok_or_else(|| {
            format!(
                "({group:04X},{element:04X}) declares a value of {len} bytes at byte {pos}, but \
                 only {left} follow"
            )
        })
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
    // Private attributes of an implicit VR file arrive as raw bytes (UN) holding a DS string;
    // `to_float64` would read their first byte as the number.
    if matches!(e.vr().to_string(), "UN" | "OB") {
        let bytes = e.to_bytes().ok()?;
        return std::str::from_utf8(&bytes)
            .ok()?
            .trim_matches(|c: char| c.is_whitespace() || c == '\0')
            .parse()
            .ok();
    }
    e.to_float64().ok()
}

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
        let values = decode_pixels(file, obj, rows * columns, slope, intercept)?;

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
        let metadata = SuvMetadata {
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

/// The rescaled pixel values (`stored × slope + intercept`) of a native, single-frame,
/// single-sample image of `count` pixels. The PixelData element must hold `count` pixels (else the
/// file is truncated) before the output is allocated, and every value must be a finite f32.
fn decode_pixels(
    file: &Path,
    obj: &InMemDicomObject,
    count: usize,
    slope: f64,
    intercept: f64,
) -> Result<Vec<f32>, DicomError> {
    let unsupported = |message: String| DicomError::Unsupported {
        file: file.to_path_buf(),
        message,
    };
    let corrupt = |reason: String| DicomError::Corrupt {
        file: file.to_path_buf(),
        reason,
    };
    let bits_allocated = int(obj, tags::BITS_ALLOCATED).ok_or(DicomError::Missing {
        file: file.to_path_buf(),
        attribute: "BitsAllocated (0028,0100)",
    })?;
    let bits_stored = int(obj, tags::BITS_STORED).unwrap_or(bits_allocated);
    let signed = match int(obj, tags::PIXEL_REPRESENTATION) {
        Some(0) => false,
        Some(1) => true,
        other => {
            return Err(unsupported(format!(
                "PixelRepresentation {other:?} must be 0 or 1"
            )));
        }
    };
    let bytes_per = match bits_allocated {
        8 => 1,
        16 => 2,
        32 => 4,
        b => {
            return Err(unsupported(format!(
                "BitsAllocated {b} is not supported (8, 16 or 32)"
            )));
        }
    };
    if !(1..=bits_allocated).contains(&bits_stored) {
        return Err(unsupported(format!(
            "BitsStored {bits_stored} with BitsAllocated {bits_allocated}"
        )));
    }
    let element = obj
        .element_opt(tags::PIXEL_DATA)
        .ok()
        .flatten()
        // dicom-rs drops an element cut off by the end of the file, so a PET image without
        // PixelData is one whose file ends early.
        .ok_or_else(|| corrupt("PixelData (7FE0,0010) is missing".into()))?;
    if element.fragments().is_some() {
        return Err(unsupported("PixelData is encapsulated (compressed)".into()));
    }
    let bytes = element
        .to_bytes()
        .map_err(|e| corrupt(format!("PixelData: {e}")))?;
    let needed = count.saturating_mul(bytes_per);
    if bytes.len() < needed {
        return Err(corrupt(format!(
            "PixelData (7FE0,0010) holds {} bytes; Rows × Columns × BitsAllocated / 8 = \
             {count} × {bytes_per} = {needed} bytes are needed",
            bytes.len(),
        )));
    }
    let mut values = Vec::new();
    values
        .try_reserve_exact(count)
        .map_err(|_| crate::memory::MemoryError::Allocation {
            what: "the pixels of a slice",
            bytes: (count * std::mem::size_of::<f32>()) as u64,
        })?;
    // dicom-rs holds decoded values in native byte order.
    let mask: u64 = (1u64 << bits_stored) - 1;
    let sign_bit = 1u64 << (bits_stored - 1);
    for c in bytes[..needed].chunks_exact(bytes_per) {
        let raw = match bytes_per {
            1 => c[0] as u64,
            2 => u16::from_ne_bytes([c[0], c[1]]) as u64,
            _ => u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) as u64,
        } & mask;
        let stored = if signed && raw & sign_bit != 0 {
            raw as i64 - (mask as i64 + 1)
        } else {
            raw as i64
        };
        let value = (stored as f64 * slope + intercept) as f32;
        if !value.is_finite() {
            return Err(unsupported(format!(
                "stored value {stored} × RescaleSlope {} + RescaleIntercept {} is beyond the \
                 range of f32",
                show(slope),
                show(intercept)
            )));
        }
        values.push(value);
    }
    Ok(values)
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
    let mut data = Vec::new();
    data.try_reserve_exact(geometry.len())
        .map_err(|_| crate::memory::MemoryError::Allocation {
            what: "the PET volume",
            bytes: geometry.len().saturating_mul(std::mem::size_of::<f32>()) as u64,
        })?;
    for s in &slices {
        data.extend_from_slice(&s.values);
    }
    Ok(PetSeries {
        volume: Volume::new(geometry, data)?,
        metadata,
        series_instance_uid: series_uid,
    })
}
