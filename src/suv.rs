//! SUV conversion (DESIGN S2): the body-weight SUV factor of a PET series.
//!
//! The factor follows the vendor-neutral pseudo-code of the QIBA SUV technical subcommittee:
//!
//! ```text
//! Units = BQML:  factor = weight_g / (dose_Bq · 2^(−Δt / T½))        (DecayCorrection START)
//!                factor = weight_g / dose_Bq                          (DecayCorrection ADMIN)
//!     Δt = scan time − radiopharmaceutical start time, where
//!     scan time = series (date)time, or the earliest acquisition (date)time when the series
//!                 (date)time lies after it (the series was re-created after the acquisition);
//!     start time = RadiopharmaceuticalStartDateTime, else RadiopharmaceuticalStartTime on the
//!                  series date.
//! Units = CNTS:  Philips private SUV scale factor (7053,1000) when present and non-zero, else
//!                Philips activity concentration scale factor (7053,1009) × the BQML factor.
//! Units = GML:   the image is already SUVbw: factor 1.
//! ```
//!
//! SUV = (stored value × RescaleSlope + RescaleIntercept) × factor, in g/mL. Missing or
//! non-positive weight, dose or half-life, unknown units, an image not corrected for attenuation
//! and decay, and an injection after the scan are errors, never silent defaults.
//!
//! Values outside what a nuclear-medicine department can produce are errors too, because a
//! factor computed from them is meaningless (and can overflow to infinity):
//!
//! ```text
//! PatientWeight          1 g … 1000 kg      a mouse (≈ 20 g) to the heaviest patients; a weight
//!                                           stored in grams (70000) is caught
//! RadionuclideTotalDose  1 kBq … 100 GBq    preclinical doses (≈ 0.1 MBq) to therapy doses
//!                                           (I-131 ≤ 11 GBq); a dose stored in MBq (370) is caught
//! RadionuclideHalfLife   1 s … 1e9 s        Rb-82 (76 s), O-15 (122 s) to Ge-68 (271 d)
//! decay time Δt          0 … 10 half-lives  less than 0.1 % of the dose is left after 10 half-lives,
//!                                           too little to image; a wrong injection date or year is
//!                                           caught. No fixed limit in days: Ge-68 phantom scans
//!                                           are calibrated months before.
//! ```
//!
//! The factor itself must then lie between 1e-12 and 1e7 g/Bq, a little wider than those limits
//! allow for BQML (1 g / 100 GBq = 1e-11 … 1000 kg / (1 kBq · 2⁻¹⁰) ≈ 1e6); this bounds a factor
//! taken from, or scaled by, a Philips private attribute too. [`try_to_suv`] also rejects a factor
//! that would overflow f32 for the voxels it scales.
//!
//! DICOM dates and times are taken as given in the scanner's local time. A UTC offset suffix on
//! a DT value (`&ZZXX`) is accepted and ignored, because series and acquisition times carry none.
//! An injection before midnight with a scan after it needs RadiopharmaceuticalStartDateTime:
//! with only a start time the series date is assumed, and the result is reported as an
//! injection after the scan.

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::volume::Volume;

/// Why this stage rejected its input.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum SuvError {
    #[error("{0} is missing; it is needed for the SUV factor")]
    Missing(&'static str),
    #[error("{field} is {value}; it must be finite and > 0")]
    NotPositive { field: &'static str, value: f64 },
    #[error(
        "{field} is {} {unit}; a plausible value lies between {} and {} {unit}{hint}",
        show(*value), show(*min), show(*max)
    )]
    Implausible {
        field: &'static str,
        value: f64,
        unit: &'static str,
        min: f64,
        max: f64,
        hint: &'static str,
    },
    #[error(
        "the radiopharmaceutical start ({start}) is {seconds:.0} s before the scan time ({scan}), \
         {half_lives:.1} half-lives of {half_life_s} s; more than {} half-lives leave too little \
         activity to image: check the injection date and time and RadionuclideHalfLife (0018,1075)",
        MAX_DECAY_HALF_LIVES
    )]
    DecayTooLong {
        start: String,
        scan: String,
        seconds: f64,
        half_lives: f64,
        half_life_s: f64,
    },
    #[error("{field} is {value}; a Philips scale factor must be finite and > 0 (or 0 when absent)")]
    BadPhilipsScaleFactor { field: &'static str, value: f64 },
    #[error(
        "voxel {index} is {value} Bq/mL: with the SUV factor {} it gives {product}, outside the \
         finite range of f32",
        show(*factor)
    )]
    NotFiniteSuv {
        index: usize,
        value: f32,
        factor: f64,
        product: f64,
    },
    #[error("Units (0054,1001) is {0:?}; supported are BQML, CNTS (Philips) and GML")]
    UnknownUnits(String),
    #[error(
        "DecayCorrection (0054,1102) is {0:?}; SUV needs an image decay-corrected to START or ADMIN"
    )]
    UnsupportedDecayCorrection(String),
    #[error(
        "CorrectedImage (0028,0051) is {corrected:?}: it lacks {missing}, so the image cannot be \
         converted to SUV"
    )]
    NotCorrected {
        missing: &'static str,
        corrected: Vec<String>,
    },
    #[error("{field} {value:?} is not a valid DICOM {kind}: {reason}")]
    BadDateTime {
        field: &'static str,
        value: String,
        kind: &'static str,
        reason: String,
    },
    #[error(
        "the radiopharmaceutical start ({start}) is {seconds:.1} s after the scan time ({scan}); \
         check the injection time (and date, when the scan crossed midnight)"
    )]
    InjectionAfterScan {
        start: String,
        scan: String,
        seconds: f64,
    },
    #[error(
        "Units are CNTS but neither the Philips SUV scale factor (7053,1000) nor the activity \
         concentration scale factor (7053,1009) is present and non-zero"
    )]
    NoPhilipsScaleFactor,
}

/// The DICOM attributes of a PET series that the SUVbw factor depends on.
///
/// Dates are DICOM DA strings (`YYYYMMDD`), times TM (`HHMMSS.FFFFFF`, shorter forms allowed),
/// date-times DT (`YYYYMMDDHHMMSS.FFFFFF`). Every field is optional here so that a missing one
/// becomes a clear [`SuvError::Missing`] from [`suvbw_factor`], naming the attribute.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SuvMetadata {
    /// Units (0054,1001): `BQML`, `CNTS` or `GML`.
    pub units: Option<String>,
    /// DecayCorrection (0054,1102): `START`, `ADMIN` (or `NONE`, rejected).
    pub decay_correction: Option<String>,
    /// CorrectedImage (0028,0051) values; must include `ATTN` and `DECY`.
    pub corrected_image: Vec<String>,
    /// PatientWeight (0010,1030) in kg.
    pub patient_weight_kg: Option<f64>,
    /// RadionuclideTotalDose (0018,1074) in Bq.
    pub radionuclide_total_dose_bq: Option<f64>,
    /// RadionuclideHalfLife (0018,1075) in s.
    pub radionuclide_half_life_s: Option<f64>,
    /// RadiopharmaceuticalStartDateTime (0018,1078), DT.
    pub radiopharmaceutical_start_datetime: Option<String>,
    /// RadiopharmaceuticalStartTime (0018,1072), TM; used on the series date when the DT is absent.
    pub radiopharmaceutical_start_time: Option<String>,
    /// SeriesDate (0008,0021), DA.
    pub series_date: Option<String>,
    /// SeriesTime (0008,0031), TM.
    pub series_time: Option<String>,
    /// AcquisitionDate (0008,0022) of the earliest acquisition in the series, DA.
    pub acquisition_date: Option<String>,
    /// AcquisitionTime (0008,0032) of the earliest acquisition in the series, TM.
    pub acquisition_time: Option<String>,
    /// Philips private SUV scale factor (7053,1000), for CNTS images.
    pub philips_suv_scale_factor: Option<f64>,
    /// Philips private activity concentration scale factor (7053,1009), for CNTS images.
    pub philips_activity_concentration_scale_factor: Option<f64>,
}

/// The SUVbw factor in g/mL per Bq/mL (equivalently g/Bq): SUV = value × factor.
pub fn suvbw_factor(m: &SuvMetadata) -> Result<f64, SuvError> {
    let units = m
        .units
        .as_deref()
        .map(str::trim)
        .ok_or(SuvError::Missing("Units (0054,1001)"))?;
    for required in ["ATTN", "DECY"] {
        if !m.corrected_image.iter().any(|c| c.trim() == required) {
            return Err(SuvError::NotCorrected {
                missing: required,
                corrected: m.corrected_image.clone(),
            });
        }
    }
    let factor = match units {
        "BQML" => bqml_factor(m)?,
        "CNTS" => {
            // 0 is how Philips writes an absent factor; anything else must be usable.
            let philips = |field, v: Option<f64>| match v.filter(|x| *x != 0.0) {
                Some(value) if !(value.is_finite() && value > 0.0) => {
                    Err(SuvError::BadPhilipsScaleFactor { field, value })
                }
                present => Ok(present),
            };
            let suv_scale = philips(
                "the Philips SUV scale factor (7053,1000)",
                m.philips_suv_scale_factor,
            )?;
            let activity_scale = philips(
                "the Philips activity concentration scale factor (7053,1009)",
                m.philips_activity_concentration_scale_factor,
            )?;
            match (suv_scale, activity_scale) {
                (Some(f), _) => f,
                // (7053,1009) scales counts to Bq/mL; from there the BQML rule applies.
                (None, Some(f)) => f * bqml_factor(m)?,
                (None, None) => return Err(SuvError::NoPhilipsScaleFactor),
            }
        }
        "GML" => 1.0,
        other => return Err(SuvError::UnknownUnits(other.to_string())),
    };
    plausible("the SUV factor", Some(factor), "g/Bq", FACTOR_G_PER_BQ, "")
}

/// Multiplies every voxel by the SUV factor (Bq/mL → g/mL), without checking the result: a
/// large factor or voxel overflows f32 to infinity. [`try_to_suv`] is the checked version.
fn to_suv(volume: &Volume<f32>, factor: f64) -> Volume<f32> {
    let mut out = volume.clone();
    for v in out.data_mut() {
        *v = (*v as f64 * factor) as f32;
    }
    out
}

/// Every voxel times the SUV factor (Bq/mL → g/mL), after [`check_suv_range`] accepted them: the SUV
/// volume, every finite voxel still finite, or an error.
pub fn try_to_suv(volume: &Volume<f32>, factor: f64) -> Result<Volume<f32>, SuvError> {
    check_suv_range(volume, factor)?;
    Ok(to_suv(volume, factor))
}

/// Checks that `factor` is finite and > 0 and that every finite voxel × `factor` is a finite
/// f32, naming the first voxel that is not. Voxels non-finite already are left as they are, for
/// the analysis' own check (which refuses them, or replaces them when the host asks).
pub fn check_suv_range(volume: &Volume<f32>, factor: f64) -> Result<(), SuvError> {
    positive("the SUV factor", Some(factor))?;
    // The same arithmetic as `to_suv`: a product in f64, rounded to f32 (to infinity beyond
    // f32::MAX).
    match volume
        .data()
        .iter()
        .position(|&v| v.is_finite() && !((v as f64 * factor) as f32).is_finite())
    {
        None => Ok(()),
        Some(index) => {
            let value = volume.data()[index];
            Err(SuvError::NotFiniteSuv {
                index,
                value,
                factor,
                product: value as f64 * factor,
            })
        }
    }
}

/// Limits of plausibility (see the module docs).
const WEIGHT_KG: (f64, f64) = (1e-3, 1000.0);
const DOSE_BQ: (f64, f64) = (1e3, 1e11);
const HALF_LIFE_S: (f64, f64) = (1.0, 1e9);
const MAX_DECAY_HALF_LIVES: f64 = 10.0;
const FACTOR_G_PER_BQ: (f64, f64) = (1e-12, 1e7);

/// A number as people write it: plain for everyday magnitudes, in exponent form otherwise
/// (a weight of 1e308 kg prints as `1e308`, not as 309 digits).
pub(crate) fn show(v: f64) -> String {
    if v == 0.0 || !v.is_finite() || (1e-3..1e7).contains(&v.abs()) {
        format!("{v}")
    } else {
        format!("{v:e}")
    }
}

/// A required attribute that must be finite, > 0 and within `[min, max]`.
fn plausible(
    field: &'static str,
    v: Option<f64>,
    unit: &'static str,
    (min, max): (f64, f64),
    hint: &'static str,
) -> Result<f64, SuvError> {
    let value = positive(field, v)?;
    if (min..=max).contains(&value) {
        Ok(value)
    } else {
        Err(SuvError::Implausible {
            field,
            value,
            unit,
            min,
            max,
            hint,
        })
    }
}

fn positive(field: &'static str, v: Option<f64>) -> Result<f64, SuvError> {
    let value = v.ok_or(SuvError::Missing(field))?;
    if value.is_finite() && value > 0.0 {
        Ok(value)
    } else {
        Err(SuvError::NotPositive { field, value })
    }
}

fn bqml_factor(m: &SuvMetadata) -> Result<f64, SuvError> {
    let weight_kg = plausible(
        "PatientWeight (0010,1030)",
        m.patient_weight_kg,
        "kg",
        WEIGHT_KG,
        " (stored in grams?)",
    )?;
    let dose_bq = plausible(
        "RadionuclideTotalDose (0018,1074)",
        m.radionuclide_total_dose_bq,
        "Bq",
        DOSE_BQ,
        " (stored in MBq or mCi?)",
    )?;
    let decay_correction = m
        .decay_correction
        .as_deref()
        .map(str::trim)
        .ok_or(SuvError::Missing("DecayCorrection (0054,1102)"))?;
    let decayed_dose = match decay_correction {
        // Decay-corrected to the administration time: the full dose is in the image.
        "ADMIN" => dose_bq,
        "START" => {
            let half_life = plausible(
                "RadionuclideHalfLife (0018,1075)",
                m.radionuclide_half_life_s,
                "s",
                HALF_LIFE_S,
                "",
            )?;
            let (scan, scan_text) = scan_time(m)?;
            let (start, start_text) = start_time(m)?;
            let dt = scan - start;
            if dt < 0.0 {
                return Err(SuvError::InjectionAfterScan {
                    start: start_text,
                    scan: scan_text,
                    seconds: -dt,
                });
            }
            let half_lives = dt / half_life;
            if half_lives > MAX_DECAY_HALF_LIVES {
                return Err(SuvError::DecayTooLong {
                    start: start_text,
                    scan: scan_text,
                    seconds: dt,
                    half_lives,
                    half_life_s: half_life,
                });
            }
            dose_bq * (-half_lives).exp2()
        }
        other => return Err(SuvError::UnsupportedDecayCorrection(other.to_string())),
    };
    Ok(weight_kg * 1000.0 / decayed_dose)
}

fn required<'a>(field: &'static str, v: &'a Option<String>) -> Result<&'a str, SuvError> {
    v.as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or(SuvError::Missing(field))
}

/// Scan time in seconds since 1970-01-01 (local), with the text it came from.
fn scan_time(m: &SuvMetadata) -> Result<(f64, String), SuvError> {
    let series_date = required("SeriesDate (0008,0021)", &m.series_date)?;
    let series_time = required("SeriesTime (0008,0031)", &m.series_time)?;
    let acq_date = required("AcquisitionDate (0008,0022)", &m.acquisition_date)?;
    let acq_time = required("AcquisitionTime (0008,0032)", &m.acquisition_time)?;
    let series = date_seconds("SeriesDate (0008,0021)", series_date)?
        + time_seconds("SeriesTime (0008,0031)", series_time)?;
    let acquisition = date_seconds("AcquisitionDate (0008,0022)", acq_date)?
        + time_seconds("AcquisitionTime (0008,0032)", acq_time)?;
    Ok(if series <= acquisition {
        (series, format!("series {series_date} {series_time}"))
    } else {
        (acquisition, format!("acquisition {acq_date} {acq_time}"))
    })
}

/// Radiopharmaceutical start in seconds since 1970-01-01 (local), with its text.
fn start_time(m: &SuvMetadata) -> Result<(f64, String), SuvError> {
    const DT: &str = "RadiopharmaceuticalStartDateTime (0018,1078)";
    const TM: &str = "RadiopharmaceuticalStartTime (0018,1072)";
    if let Ok(dt) = required(DT, &m.radiopharmaceutical_start_datetime) {
        return Ok((datetime_seconds(DT, dt)?, dt.to_string()));
    }
    let time = required(TM, &m.radiopharmaceutical_start_time)?;
    let date = required("SeriesDate (0008,0021)", &m.series_date)?;
    Ok((
        date_seconds("SeriesDate (0008,0021)", date)? + time_seconds(TM, time)?,
        format!("{date} {time}"),
    ))
}

fn bad(field: &'static str, value: &str, kind: &'static str, reason: &str) -> SuvError {
    SuvError::BadDateTime {
        field,
        value: value.to_string(),
        kind,
        reason: reason.to_string(),
    }
}

/// Seconds from 1970-01-01 to the start of a DA date (`YYYYMMDD`, or the ACR-NEMA `YYYY.MM.DD`).
pub fn date_seconds(field: &'static str, da: &str) -> Result<f64, SuvError> {
    let digits: String = da.trim().chars().filter(|&c| c != '.').collect();
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(field, da, "date", "expected YYYYMMDD"));
    }
    let num = |r: std::ops::Range<usize>| digits[r].parse::<i64>().unwrap_or(0);
    let (y, mo, d) = (num(0..4), num(4..6), num(6..8));
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) {
        return Err(bad(field, da, "date", "no such calendar day"));
    }
    Ok(days_from_civil(y, mo, d) as f64 * 86_400.0)
}

/// Seconds since midnight of a TM time: `HH`, `HHMM`, `HHMMSS` or `HHMMSS.F…` (up to six
/// fraction digits), with the ACR-NEMA colons (`HH:MM:SS`) also accepted.
pub fn time_seconds(field: &'static str, tm: &str) -> Result<f64, SuvError> {
    let s: String = tm.trim().chars().filter(|&c| c != ':').collect();
    let (whole, fraction) = match s.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (s.as_str(), None),
    };
    if !matches!(whole.len(), 2 | 4 | 6) || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(field, tm, "time", "expected HHMMSS.FFFFFF"));
    }
    let num = |r: std::ops::Range<usize>| whole.get(r).map_or(0, |t| t.parse::<u32>().unwrap_or(0));
    let (h, mi, sec) = (num(0..2), num(2..4), num(4..6));
    // 60 is a leap second, allowed by DICOM.
    if h > 23 || mi > 59 || sec > 60 {
        return Err(bad(
            field,
            tm,
            "time",
            "hour, minute or second out of range",
        ));
    }
    let frac = match fraction {
        None => 0.0,
        Some(f)
            if whole.len() == 6
                && !f.is_empty()
                && f.len() <= 6
                && f.bytes().all(|b| b.is_ascii_digit()) =>
        {
            format!("0.{f}").parse::<f64>().unwrap_or(0.0)
        }
        Some(_) => return Err(bad(field, tm, "time", "bad fraction of a second")),
    };
    Ok(h as f64 * 3600.0 + mi as f64 * 60.0 + sec as f64 + frac)
}

/// Seconds since 1970-01-01 of a DT value `YYYYMMDDHH[MM[SS[.F…]]]`, optional `&ZZXX` suffix.
pub fn datetime_seconds(field: &'static str, dt: &str) -> Result<f64, SuvError> {
    let s = dt.trim();
    // The UTC offset, if any, starts at the first '+' or '-' (ignored; see the module docs).
    let s = s.find(['+', '-']).map_or(s, |i| &s[..i]);
    if s.len() < 10 || !s.is_char_boundary(8) {
        return Err(bad(
            field,
            dt,
            "date-time",
            "expected YYYYMMDDHHMMSS.FFFFFF",
        ));
    }
    let (date, time) = s.split_at(8);
    let date_s = date_seconds(field, date).map_err(|_| bad(field, dt, "date-time", "bad date"))?;
    let time_s = time_seconds(field, time).map_err(|_| bad(field, dt, "date-time", "bad time"))?;
    Ok(date_s + time_s)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days from 1970-01-01 in the proleptic Gregorian calendar (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    fn siemens() -> SuvMetadata {
        SuvMetadata {
            units: Some("BQML".into()),
            decay_correction: Some("START".into()),
            corrected_image: vec!["NORM".into(), "ATTN".into(), "DECY".into()],
            patient_weight_kg: Some(67.0),
            radionuclide_total_dose_bq: Some(374e6),
            radionuclide_half_life_s: Some(6586.2),
            radiopharmaceutical_start_datetime: None,
            radiopharmaceutical_start_time: Some("083045.000000".into()),
            series_date: Some("20201217".into()),
            series_time: Some("104829.000000".into()),
            acquisition_date: Some("20201217".into()),
            acquisition_time: Some("104830.351370".into()),
            ..Default::default()
        }
    }

    /// The decay formula written out independently: 67 kg, 374 MBq, Δt = 2 h 17 min 44 s.
    #[test]
    fn bqml_start_matches_hand_computation() {
        let dt = 2.0 * 3600.0 + 17.0 * 60.0 + 44.0;
        let expected = 67_000.0 / (374e6 * (-(2f64.ln()) * dt / 6586.2).exp());
        let got = suvbw_factor(&siemens()).unwrap();
        assert!((got / expected - 1.0).abs() < 1e-12, "{got} vs {expected}");
    }

    #[test]
    fn series_after_acquisition_uses_acquisition() {
        let mut m = siemens();
        m.series_time = Some("110000".into());
        let with_late_series = suvbw_factor(&m).unwrap();
        m.series_time = Some("104830.351370".into());
        assert_eq!(with_late_series, suvbw_factor(&m).unwrap());
    }

    #[test]
    fn admin_ignores_decay() {
        let mut m = siemens();
        m.decay_correction = Some("ADMIN".into());
        m.series_time = None;
        assert!((suvbw_factor(&m).unwrap() - 67_000.0 / 374e6).abs() < 1e-18);
    }

    #[test]
    fn errors_are_specific() {
        type Edit = Box<dyn Fn(&mut SuvMetadata)>;
        let cases: Vec<(Edit, &str)> = vec![
            (Box::new(|m| m.patient_weight_kg = None), "PatientWeight"),
            (
                Box::new(|m| m.patient_weight_kg = Some(0.0)),
                "PatientWeight",
            ),
            (
                Box::new(|m| m.radionuclide_total_dose_bq = None),
                "RadionuclideTotalDose",
            ),
            (
                Box::new(|m| m.radionuclide_total_dose_bq = Some(f64::NAN)),
                "RadionuclideTotalDose",
            ),
            (
                Box::new(|m| m.radionuclide_half_life_s = Some(-1.0)),
                "RadionuclideHalfLife",
            ),
            (Box::new(|m| m.units = Some("PROPCNTS".into())), "PROPCNTS"),
            (Box::new(|m| m.units = None), "Units"),
            (
                Box::new(|m| m.decay_correction = Some("NONE".into())),
                "NONE",
            ),
            (
                Box::new(|m| m.corrected_image.retain(|c| c != "ATTN")),
                "ATTN",
            ),
            (
                Box::new(|m| m.radiopharmaceutical_start_time = Some("110000".into())),
                "after",
            ),
            (
                Box::new(|m| m.radiopharmaceutical_start_time = None),
                "RadiopharmaceuticalStartTime",
            ),
            (
                Box::new(|m| m.series_time = Some("25".into())),
                "SeriesTime",
            ),
            (
                Box::new(|m| m.acquisition_date = Some("20200230".into())),
                "AcquisitionDate",
            ),
            (Box::new(|m| m.units = Some("CNTS".into())), "7053,1000"),
        ];
        for (edit, needle) in cases {
            let mut m = siemens();
            edit(&mut m);
            let err = suvbw_factor(&m).unwrap_err().to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle}");
        }
    }

    #[test]
    fn date_time_parsing() {
        assert_eq!(date_seconds("d", "19700101").unwrap(), 0.0);
        assert_eq!(date_seconds("d", "19700102").unwrap(), 86_400.0);
        assert_eq!(
            date_seconds("d", "2000.03.01").unwrap(),
            11_017.0 * 86_400.0
        );
        assert!(date_seconds("d", "20210229").is_err());
        assert!(date_seconds("d", "20200229").is_ok());
        assert_eq!(time_seconds("t", "01").unwrap(), 3600.0);
        assert_eq!(time_seconds("t", "0102").unwrap(), 3720.0);
        assert_eq!(time_seconds("t", "01:02:03.5").unwrap(), 3723.5);
        assert_eq!(time_seconds("t", " 010203.25 ").unwrap(), 3723.25);
        assert!(time_seconds("t", "010203.1234567").is_err());
        assert!(time_seconds("t", "0160").is_err());
        assert!(time_seconds("t", "").is_err());
        assert_eq!(
            datetime_seconds("x", "19700102000001.5+0100").unwrap(),
            86_401.5
        );
        assert!(datetime_seconds("x", "19700102").is_err());
        assert!(datetime_seconds("x", "1970010é0000").is_err());
    }

    /// The plausibility limits of the module docs, at and just beyond each edge (issue #28).
    #[test]
    fn implausible_values_are_errors_and_the_limits_are_inclusive() {
        type Edit = fn(&mut SuvMetadata, f64);
        let cases: [(Edit, &str, f64, f64); 3] = [
            (
                |m, v| m.patient_weight_kg = Some(v),
                "PatientWeight",
                1e-3,
                1000.0,
            ),
            (
                |m, v| m.radionuclide_total_dose_bq = Some(v),
                "RadionuclideTotalDose",
                1e3,
                1e11,
            ),
            (
                |m, v| m.radionuclide_half_life_s = Some(v),
                "RadionuclideHalfLife",
                1.0,
                1e9,
            ),
        ];
        for (edit, needle, min, max) in cases {
            for ok in [min, max] {
                let mut m = siemens();
                edit(&mut m, ok);
                // A dose of 1 kBq with a half-life of 1 s is more than 10 half-lives old.
                m.decay_correction = Some("ADMIN".into());
                assert!(suvbw_factor(&m).is_ok(), "{needle} = {ok}");
            }
            for bad in [
                min * 0.999,
                max * 1.001,
                1e308,
                1e-300,
                f64::INFINITY,
                f64::NAN,
            ] {
                let mut m = siemens();
                edit(&mut m, bad);
                let err = suvbw_factor(&m).unwrap_err().to_string();
                assert!(err.contains(needle), "{needle} = {bad}: {err}");
            }
        }
    }

    #[test]
    fn decay_beyond_ten_half_lives_is_an_error() {
        let mut m = siemens();
        m.radionuclide_half_life_s = Some(600.0);
        // Δt = 2 h 17 min 44 s = 13.8 half-lives of 600 s.
        let err = suvbw_factor(&m).unwrap_err();
        assert!(matches!(err, SuvError::DecayTooLong { .. }), "{err}");
        m.radiopharmaceutical_start_time = None;
        m.radiopharmaceutical_start_datetime = Some("19000101083045".into());
        m.radionuclide_half_life_s = Some(6586.2);
        assert!(err_text(&m).contains("half-lives"));
        // Exactly 10 half-lives (6000 s before the series time 10:48:29) is accepted.
        m.radionuclide_half_life_s = Some(600.0);
        m.radiopharmaceutical_start_datetime = Some("20201217090829".into());
        let f = suvbw_factor(&m).unwrap();
        assert!((f / (67_000.0 / 374e6 * 1024.0) - 1.0).abs() < 1e-12, "{f}");
    }

    fn err_text(m: &SuvMetadata) -> String {
        suvbw_factor(m).unwrap_err().to_string()
    }

    #[test]
    fn philips_scale_factors_must_be_usable() {
        let mut m = siemens();
        m.units = Some("CNTS".into());
        for bad in [f64::NAN, f64::INFINITY, -2.0] {
            m.philips_suv_scale_factor = Some(bad);
            assert!(err_text(&m).contains("7053,1000"), "{bad}");
        }
        m.philips_suv_scale_factor = Some(0.0);
        m.philips_activity_concentration_scale_factor = Some(1e308);
        assert!(err_text(&m).contains("the SUV factor"));
        m.philips_activity_concentration_scale_factor = Some(2.0);
        let bqml = suvbw_factor(&siemens()).unwrap();
        assert_eq!(suvbw_factor(&m).unwrap(), 2.0 * bqml);
    }

    #[test]
    fn messages_print_numbers_readably() {
        let mut m = siemens();
        m.patient_weight_kg = Some(1e308);
        let err = err_text(&m);
        assert!(
            err.contains("is 1e308 kg") && err.contains("0.001 and 1000 kg"),
            "{err}"
        );
    }

    #[test]
    fn try_to_suv_rejects_what_would_not_be_finite() {
        let g = crate::Geometry::axis_aligned([3, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
        let v = Volume::new(g, vec![1.0, 3e38, -2.0]).unwrap();
        assert_eq!(try_to_suv(&v, 1.0).unwrap().data(), v.data());
        let err = try_to_suv(&v, 2.0).unwrap_err();
        assert!(
            matches!(err, SuvError::NotFiniteSuv { index: 1, .. }),
            "{err}"
        );
        for factor in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(try_to_suv(&v, factor).is_err(), "{factor}");
        }
        // A voxel non-finite already is the analysis' to refuse or replace, not an overflow.
        let nan = Volume::new(g, vec![1.0, f32::NAN, 0.0]).unwrap();
        assert!(try_to_suv(&nan, 1e-4).unwrap().data()[1].is_nan());
    }

    #[test]
    fn to_suv_scales() {
        let g = crate::Geometry::axis_aligned([2, 1, 1], [1.0; 3], [0.0; 3]).unwrap();
        let v = Volume::new(g, vec![1000.0, -2.0]).unwrap();
        assert_eq!(to_suv(&v, 0.5).data(), &[500.0, -1.0]);
    }
}
