//! Reading DICOM image series: PET to Bq/mL with its SUV attributes (DESIGN S2), CT to HU;
//! writing the suspicious findings as a DICOM SEG on the PET's grid (module [`seg`]), the
//! report as a DICOM SR measuring its segments (module [`sr`]) and the findings picture as a
//! secondary capture (module [`capture`]).
//!
//! One mechanism reads both: the files of a folder are scanned (headers only), one series is
//! chosen by Modality (PT, CT) and SeriesInstanceUID, and its slices are decoded and stacked.
//! What a modality adds is separate: the SUV attributes of PET ([`PetSeries`]), nothing for CT.
//! Pixel values are `stored × RescaleSlope + RescaleIntercept` per slice: Bq/mL for PET Units
//! BQML, HU for CT; a value beyond the f32 range is an error.
//!
//! Which files are read: a file that looks like DICOM, by the `DICM` magic of a Part 10 file (at
//! byte 128 after the preamble, or at byte 0 when the preamble was stripped) or by a `.dcm`,
//! `.dicom` or `.ima` name, must parse, or the series is rejected naming the file: a slice cut
//! short by an interrupted copy is never dropped silently (which would shorten the series by one
//! slice when it was the first or the last). Skipped are files without the magic and without such
//! a name (a README, a checksum list, a lock file), which are not DICOM Part 10 and could not be
//! read as such anyway, and the DICOMDIR (Media Storage Directory Storage), an index rather than an
//! image. Every declared value length is checked against the file before the DICOM library
//! parses it (module `part10`); a PixelData element shorter than Rows × Columns × BitsAllocated / 8
//! is a truncated file; the image buffers are allocated only after that check, and fallibly.
//!
//! Choosing the series: with a SeriesInstanceUID, that series (an error when it is absent or of
//! another modality); without, the only series of the modality, else an error listing every
//! series found (UID, modality, number of files, SeriesDescription).
//!
//! Geometry: array x runs along the ImageOrientationPatient row direction (`PixelSpacing[1]`),
//! y along its column direction (`PixelSpacing[0]`), z along their cross product, the slice
//! normal; slices are sorted by the projection of ImagePositionPatient on that normal. A series
//! whose slices differ in orientation, pixel spacing or size, do not stack along the normal
//! (a tilted gantry), repeat a position, or have inconsistent slice spacing (a missing slice) is
//! rejected.
//!
//! Transfer syntaxes read: implicit and explicit VR little endian, deflated explicit VR little
//! endian (inflated here, at most 128 MiB per file) and RLE Lossless (decoded here). Refused with
//! an error naming the syntax: explicit VR big endian, JPEG (baseline, extended, lossless),
//! JPEG-LS, JPEG 2000, HTJ2K and JPEG XL; decompress those first (`gdcmconv --raw`).

pub mod capture;
mod instance;
mod part10;
mod pet;
mod pixels;
pub mod seg;
pub mod sr;

use std::fmt;
use std::path::{Path, PathBuf};

use dicom_dictionary_std::tags;
use dicom_object::{InMemDicomObject, Tag};
use thiserror::Error;

use crate::volume::{Geometry, Volume, VolumeError};

pub use pet::{PatientStudy, PetInstance, PetSeries, read_pet_series_uid};

/// Why a DICOM series could not be read.
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
    #[error("no DICOM file of a {} series in {}{}", wanted.name(), dir.display(), found_list(found))]
    NoSeries {
        dir: PathBuf,
        wanted: Modality,
        found: Vec<SeriesSummary>,
    },
    #[error(
        "{} holds {} {} series; choose one by its SeriesInstanceUID{}",
        dir.display(), found.iter().filter(|s| s.modality == wanted.code()).count(), wanted.name(),
        found_list(found)
    )]
    MultipleSeries {
        dir: PathBuf,
        wanted: Modality,
        found: Vec<SeriesSummary>,
    },
    #[error("series {uid} is not in {}{}", dir.display(), found_list(found))]
    SeriesNotFound {
        uid: String,
        dir: PathBuf,
        found: Vec<SeriesSummary>,
    },
    #[error("series {uid} has Modality {modality:?}; a {} ({}) series was expected", wanted.name(), wanted.code())]
    WrongModality {
        uid: String,
        modality: String,
        wanted: Modality,
    },
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
        "slice spacing is inconsistent: gaps range from {min_mm:.4} to {max_mm:.4} mm; the gap \
         of {max_mm:.4} mm lies between {} and {} (a missing or extra slice?)",
        gap_between.0.display(), gap_between.1.display()
    )]
    SliceSpacing {
        min_mm: f64,
        max_mm: f64,
        gap_between: (PathBuf, PathBuf),
    },
    #[error(
        "gantry tilt: slice {} lies {offset_mm:.3} mm off the line through the first slice \
         along the normal of ImageOrientationPatient (ImagePositionPatient does not follow the \
         slice normal); resample the series to untilted slices first",
        file.display()
    )]
    GantryTilt { file: PathBuf, offset_mm: f64 },
    #[error("series geometry rejected: {0}")]
    Geometry(#[from] VolumeError),
}

/// "; found: …" for an error, or nothing when the folder held no series.
fn found_list(found: &[SeriesSummary]) -> String {
    if found.is_empty() {
        return String::new();
    }
    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
    format!("; found: {}", list.join("; "))
}

/// The image modalities read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Modality {
    Pet,
    Ct,
}

impl Modality {
    /// The DICOM Modality (0008,0060) code.
    pub fn code(self) -> &'static str {
        match self {
            Modality::Pet => "PT",
            Modality::Ct => "CT",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Modality::Pet => "PET",
            Modality::Ct => "CT",
        }
    }
}

/// One series found in a folder.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SeriesSummary {
    pub series_instance_uid: String,
    /// Modality (0008,0060) of its first file; empty when absent.
    pub modality: String,
    /// Number of its files.
    pub files: usize,
    /// SeriesDescription (0008,103E).
    pub description: Option<String>,
}

impl fmt::Display for SeriesSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let modality = if self.modality.is_empty() {
            "no Modality"
        } else {
            &self.modality
        };
        write!(
            f,
            "{} ({modality}, {} files",
            self.series_instance_uid, self.files
        )?;
        match &self.description {
            Some(d) => write!(f, ", {d:?})"),
            None => write!(f, ")"),
        }
    }
}

/// A CT series read from DICOM.
#[derive(Debug, Clone)]
pub struct CtSeries {
    /// Rescaled pixel values in HU.
    pub volume: Volume<f32>,
    pub series_instance_uid: String,
    /// FrameOfReferenceUID (0020,0052), when the files carry it.
    pub frame_of_reference_uid: Option<String>,
}

/// Reads the PET series in `dir` (it must be the only PET series there).
pub fn read_pet_series(dir: impl AsRef<Path>) -> Result<PetSeries, DicomError> {
    read_pet_series_uid(dir, None)
}

/// Reads the CT series with SeriesInstanceUID `uid` from `dir`, or the only CT series there
/// when `None`; voxels in HU.
pub fn read_ct_series(dir: impl AsRef<Path>, uid: Option<&str>) -> Result<CtSeries, DicomError> {
    let stack = read_stack(dir.as_ref(), Modality::Ct, uid, |_, _| Ok(()))?;
    Ok(CtSeries {
        volume: stack.volume,
        series_instance_uid: stack.series_instance_uid,
        frame_of_reference_uid: stack.frame_of_reference_uid,
    })
}

/// Every series in `dir`, by SeriesInstanceUID (headers only; pixel data is not decoded).
pub fn list_series(dir: impl AsRef<Path>) -> Result<Vec<SeriesSummary>, DicomError> {
    Ok(summarise(&scan(dir.as_ref())?))
}

/// What the header of one file says about its series.
struct Header {
    file: PathBuf,
    modality: String,
    series_uid: String,
    description: Option<String>,
}

/// The headers of the DICOM files in `dir`, sorted by file name.
fn scan(dir: &Path) -> Result<Vec<Header>, DicomError> {
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
    let mut headers = Vec::new();
    for path in paths {
        let Some(file) = part10::read(&path)? else {
            continue;
        };
        let obj = part10::parse(&path, &file, true)?;
        if obj.meta().media_storage_sop_class_uid() == part10::MEDIA_STORAGE_DIRECTORY_STORAGE {
            continue;
        }
        let series_uid =
            text(&obj, tags::SERIES_INSTANCE_UID).ok_or_else(|| DicomError::Missing {
                file: path.clone(),
                attribute: "SeriesInstanceUID (0020,000E)",
            })?;
        headers.push(Header {
            modality: text(&obj, tags::MODALITY).unwrap_or_default(),
            description: text(&obj, tags::SERIES_DESCRIPTION),
            series_uid,
            file: path,
        });
    }
    Ok(headers)
}

fn summarise(headers: &[Header]) -> Vec<SeriesSummary> {
    let mut found: Vec<SeriesSummary> = Vec::new();
    for h in headers {
        match found
            .iter_mut()
            .find(|s| s.series_instance_uid == h.series_uid)
        {
            Some(s) => s.files += 1,
            None => found.push(SeriesSummary {
                series_instance_uid: h.series_uid.clone(),
                modality: h.modality.clone(),
                files: 1,
                description: h.description.clone(),
            }),
        }
    }
    found.sort_by(|a, b| {
        (&a.modality, &a.series_instance_uid).cmp(&(&b.modality, &b.series_instance_uid))
    });
    found
}

/// The UID and the files of the series chosen from `headers` (see the module docs).
fn choose(
    dir: &Path,
    headers: &[Header],
    wanted: Modality,
    uid: Option<&str>,
) -> Result<(String, Vec<PathBuf>), DicomError> {
    let found = summarise(headers);
    let chosen = match uid {
        Some(uid) => {
            let Some(series) = found.iter().find(|s| s.series_instance_uid == uid) else {
                return Err(DicomError::SeriesNotFound {
                    uid: uid.to_string(),
                    dir: dir.to_path_buf(),
                    found,
                });
            };
            if series.modality != wanted.code() {
                return Err(DicomError::WrongModality {
                    uid: uid.to_string(),
                    modality: series.modality.clone(),
                    wanted,
                });
            }
            uid.to_string()
        }
        None => {
            let mut of_modality = found.iter().filter(|s| s.modality == wanted.code());
            match (of_modality.next(), of_modality.next()) {
                (Some(only), None) => only.series_instance_uid.clone(),
                (None, _) => {
                    return Err(DicomError::NoSeries {
                        dir: dir.to_path_buf(),
                        wanted,
                        found,
                    });
                }
                (Some(_), Some(_)) => {
                    return Err(DicomError::MultipleSeries {
                        dir: dir.to_path_buf(),
                        wanted,
                        found,
                    });
                }
            }
        }
    };
    let files = headers
        .iter()
        .filter(|h| h.series_uid == chosen)
        .map(|h| h.file.clone())
        .collect();
    Ok((chosen, files))
}

/// A series stacked along its slice normal, with what the modality read from each slice
/// (in slice order).
struct Stack<E> {
    volume: Volume<f32>,
    slices: Vec<(PathBuf, E)>,
    series_instance_uid: String,
    frame_of_reference_uid: Option<String>,
}

/// What one file contributes to the stack.
struct Slice {
    file: PathBuf,
    modality: String,
    frame_of_reference_uid: Option<String>,
    rows: usize,
    columns: usize,
    position: [f64; 3],
    orientation: [f64; 6],
    pixel_spacing: [f64; 2],
    slice_thickness: Option<f64>,
    values: Vec<f32>,
}

/// Reads the series of `wanted` modality (and `uid`, when given) from `dir`: the one general
/// reader, `read_extra` the modality's part of each slice.
fn read_stack<E>(
    dir: &Path,
    wanted: Modality,
    uid: Option<&str>,
    read_extra: impl Fn(&Path, &InMemDicomObject) -> Result<E, DicomError>,
) -> Result<Stack<E>, DicomError> {
    let headers = scan(dir)?;
    let (series_uid, files) = choose(dir, &headers, wanted, uid)?;
    drop(headers);
    let mut slices = Vec::with_capacity(files.len());
    for path in files {
        // The file was DICOM a moment ago; one that no longer is, is an error too.
        let file = part10::read(&path)?.ok_or_else(|| DicomError::Corrupt {
            file: path.clone(),
            reason: "the file changed while the folder was read".into(),
        })?;
        let obj = part10::parse(&path, &file, false)?;
        drop(file.bytes);
        let slice = read_slice(&path, &obj, &file.transfer_syntax)?;
        if slice.modality != wanted.code() {
            return Err(DicomError::Inconsistent(format!(
                "{} of series {series_uid} has Modality {:?}, not {}",
                path.display(),
                slice.modality,
                wanted.code()
            )));
        }
        let extra = read_extra(&path, &obj)?;
        slices.push((slice, extra));
    }
    assemble(slices, series_uid, wanted)
}

/// Transfer-syntax, geometry and pixel attributes of one image, its pixels rescaled.
fn read_slice(
    file: &Path,
    obj: &InMemDicomObject,
    transfer_syntax: &str,
) -> Result<Slice, DicomError> {
    let missing = |attribute| DicomError::Missing {
        file: file.to_path_buf(),
        attribute,
    };
    let unsupported = |message: String| DicomError::Unsupported {
        file: file.to_path_buf(),
        message,
    };
    pixels::check_transfer_syntax(file, transfer_syntax)?;
    let rows = int(obj, tags::ROWS).ok_or_else(|| missing("Rows (0028,0010)"))?;
    let columns = int(obj, tags::COLUMNS).ok_or_else(|| missing("Columns (0028,0011)"))?;
    if !(1..=65_535).contains(&rows) || !(1..=65_535).contains(&columns) {
        return Err(unsupported(format!("image size {rows} × {columns}")));
    }
    let (rows, columns) = (rows as usize, columns as usize);
    if int(obj, tags::NUMBER_OF_FRAMES).is_some_and(|n| n != 1) {
        return Err(unsupported(
            "multi-frame images are not supported; one slice per file is".into(),
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
    if position
        .iter()
        .chain(&orientation)
        .chain(&pixel_spacing)
        .any(|v| !v.is_finite())
    {
        return Err(unsupported(
            "ImagePositionPatient, ImageOrientationPatient or PixelSpacing is not finite".into(),
        ));
    }
    let slope =
        float(obj, tags::RESCALE_SLOPE).ok_or_else(|| missing("RescaleSlope (0028,1053)"))?;
    let intercept = float(obj, tags::RESCALE_INTERCEPT)
        .ok_or_else(|| missing("RescaleIntercept (0028,1052)"))?;
    if !(slope.is_finite() && intercept.is_finite()) {
        return Err(unsupported(format!(
            "rescale {slope} · v + {intercept} is not finite"
        )));
    }
    let values =
        pixels::decode_pixels(file, obj, transfer_syntax, rows * columns, slope, intercept)?;
    Ok(Slice {
        file: file.to_path_buf(),
        modality: text(obj, tags::MODALITY).unwrap_or_default(),
        frame_of_reference_uid: text(obj, tags::FRAME_OF_REFERENCE_UID),
        rows,
        columns,
        position,
        orientation,
        pixel_spacing,
        slice_thickness: float(obj, tags::SLICE_THICKNESS),
        values,
    })
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

fn floats(obj: &InMemDicomObject, tag: Tag) -> Option<Vec<f64>> {
    obj.element_opt(tag).ok()??.to_multi_float64().ok()
}

fn int(obj: &InMemDicomObject, tag: Tag) -> Option<i64> {
    obj.element_opt(tag).ok()??.to_int::<i64>().ok()
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

/// Stacks the slices of one series along the normal of their orientation, after checking that
/// they form one regular grid (see the module docs).
fn assemble<E>(
    mut slices: Vec<(Slice, E)>,
    series_instance_uid: String,
    wanted: Modality,
) -> Result<Stack<E>, DicomError> {
    let first = &slices[0].0;
    let inconsistent = |what: &str, s: &Slice| {
        DicomError::Inconsistent(format!(
            "{what} of {} differs from {}",
            s.file.display(),
            first.file.display()
        ))
    };
    for (s, _) in &slices[1..] {
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
        if s.frame_of_reference_uid != first.frame_of_reference_uid {
            return Err(inconsistent("FrameOfReferenceUID", s));
        }
    }
    let o = first.orientation;
    let row_dir = [o[0], o[1], o[2]];
    let col_dir = [o[3], o[4], o[5]];
    let normal = cross(row_dir, col_dir);
    // Ties (a repeated position) are refused below; the file name makes the order total.
    slices.sort_by(|(a, _), (b, _)| {
        dot(a.position, normal)
            .total_cmp(&dot(b.position, normal))
            .then_with(|| a.file.cmp(&b.file))
    });
    let first = &slices[0].0;
    let s0 = dot(first.position, normal);
    // Every slice must sit on the line through the first along the normal (no gantry tilt).
    for (s, _) in &slices[1..] {
        let along = dot(s.position, normal) - s0;
        let off: [f64; 3] =
            std::array::from_fn(|i| s.position[i] - first.position[i] - along * normal[i]);
        let offset_mm = dot(off, off).sqrt();
        if offset_mm > POSITION_TOLERANCE_MM {
            return Err(DicomError::GantryTilt {
                file: s.file.clone(),
                offset_mm,
            });
        }
    }
    let gaps: Vec<f64> = slices
        .windows(2)
        .map(|w| dot(w[1].0.position, normal) - dot(w[0].0.position, normal))
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
        if min_mm < POSITION_TOLERANCE_MM {
            let at = gaps.iter().position(|&g| g == min_mm).unwrap_or(0);
            return Err(DicomError::Inconsistent(format!(
                "{} and {} lie at the same position along the slice normal",
                slices[at].0.file.display(),
                slices[at + 1].0.file.display()
            )));
        }
        if max_mm - min_mm > SPACING_RELATIVE_TOLERANCE * mean + POSITION_TOLERANCE_MM {
            let at = gaps.iter().position(|&g| g == max_mm).unwrap_or(0);
            return Err(DicomError::SliceSpacing {
                min_mm,
                max_mm,
                gap_between: (slices[at].0.file.clone(), slices[at + 1].0.file.clone()),
            });
        }
        mean
    };
    let geometry = Geometry::new(
        [first.columns, first.rows, slices.len()],
        [first.pixel_spacing[1], first.pixel_spacing[0], z_spacing],
        first.position,
        std::array::from_fn(|i| [row_dir[i], col_dir[i], normal[i]]),
    )?;
    let frame_of_reference_uid = first.frame_of_reference_uid.clone();
    let mut data = Vec::new();
    data.try_reserve_exact(geometry.len())
        .map_err(|_| crate::memory::MemoryError::Allocation {
            what: match wanted {
                Modality::Pet => "the PET volume",
                Modality::Ct => "the CT volume",
            },
            bytes: geometry.len().saturating_mul(std::mem::size_of::<f32>()) as u64,
        })?;
    let mut extras = Vec::with_capacity(slices.len());
    for (s, extra) in slices {
        data.extend_from_slice(&s.values);
        extras.push((s.file, extra));
    }
    Ok(Stack {
        volume: Volume::new(geometry, data)?,
        slices: extras,
        series_instance_uid,
        frame_of_reference_uid,
    })
}
