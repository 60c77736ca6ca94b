//! The SUVbw factor (DESIGN S2) for hosts that hold the DICOM attributes themselves.

use std::ffi::c_char;

use super::{guard, opt_str, read_sized};
use crate::suv::{SuvMetadata, suvbw_factor};

/// The DICOM attributes of a PET series that the SUVbw factor depends on. Caller-owned; the
/// library only reads it during the call. Strings are NUL-terminated DICOM values as stored
/// (trailing spaces allowed); NULL or "" means absent. Numbers ≤ 0 are rejected where the
/// factor needs them (never replaced by a default).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UptakeSuvMetadata {
    /// `sizeof(UptakeSuvMetadata)` as compiled by the caller.
    pub struct_size: u32,
    /// PatientWeight (0010,1030) in kg.
    pub patient_weight_kg: f64,
    /// RadionuclideTotalDose (0018,1074) in Bq.
    pub radionuclide_total_dose_bq: f64,
    /// RadionuclideHalfLife (0018,1075) in s.
    pub radionuclide_half_life_s: f64,
    /// Philips private SUV scale factor (7053,1000); 0 = absent.
    pub philips_suv_scale_factor: f64,
    /// Philips private activity concentration scale factor (7053,1009); 0 = absent.
    pub philips_activity_concentration_scale_factor: f64,
    /// Units (0054,1001): "BQML", "CNTS" or "GML".
    pub units: *const c_char,
    /// DecayCorrection (0054,1102): "START" or "ADMIN".
    pub decay_correction: *const c_char,
    /// CorrectedImage (0028,0051) as one string, values separated by '\\' (e.g. "ATTN\\DECY").
    pub corrected_image: *const c_char,
    /// RadiopharmaceuticalStartDateTime (0018,1078), DT; preferred over the start time.
    pub radiopharmaceutical_start_datetime: *const c_char,
    /// RadiopharmaceuticalStartTime (0018,1072), TM, taken on the series date.
    pub radiopharmaceutical_start_time: *const c_char,
    /// SeriesDate (0008,0021), DA.
    pub series_date: *const c_char,
    /// SeriesTime (0008,0031), TM.
    pub series_time: *const c_char,
    /// AcquisitionDate (0008,0022) of the earliest acquisition of the series, DA.
    pub acquisition_date: *const c_char,
    /// AcquisitionTime (0008,0032) of the earliest acquisition of the series, TM.
    pub acquisition_time: *const c_char,
}

impl Default for UptakeSuvMetadata {
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            patient_weight_kg: 0.0,
            radionuclide_total_dose_bq: 0.0,
            radionuclide_half_life_s: 0.0,
            philips_suv_scale_factor: 0.0,
            philips_activity_concentration_scale_factor: 0.0,
            units: std::ptr::null(),
            decay_correction: std::ptr::null(),
            corrected_image: std::ptr::null(),
            radiopharmaceutical_start_datetime: std::ptr::null(),
            radiopharmaceutical_start_time: std::ptr::null(),
            series_date: std::ptr::null(),
            series_time: std::ptr::null(),
            acquisition_date: std::ptr::null(),
            acquisition_time: std::ptr::null(),
        }
    }
}

const SUV_METADATA_V1_SIZE: usize = std::mem::size_of::<UptakeSuvMetadata>();

impl UptakeSuvMetadata {
    /// Copies the caller's strings into the library's metadata.
    ///
    /// # Safety
    /// Every string pointer must be NULL or a valid NUL-terminated string.
    unsafe fn to_metadata(self) -> Result<SuvMetadata, crate::Error> {
        let text = |ptr: *const c_char, name: &str| -> Result<Option<String>, crate::Error> {
            // SAFETY: forwarded contract.
            let s = unsafe { opt_str(ptr, name)? };
            Ok(s.map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string))
        };
        let absent_if_zero = |v: f64| (v != 0.0).then_some(v);
        Ok(SuvMetadata {
            units: text(self.units, "metadata->units")?,
            decay_correction: text(self.decay_correction, "metadata->decay_correction")?,
            corrected_image: text(self.corrected_image, "metadata->corrected_image")?
                .map(|s| s.split('\\').map(|v| v.trim().to_string()).collect())
                .unwrap_or_default(),
            patient_weight_kg: Some(self.patient_weight_kg),
            radionuclide_total_dose_bq: Some(self.radionuclide_total_dose_bq),
            radionuclide_half_life_s: Some(self.radionuclide_half_life_s),
            radiopharmaceutical_start_datetime: text(
                self.radiopharmaceutical_start_datetime,
                "metadata->radiopharmaceutical_start_datetime",
            )?,
            radiopharmaceutical_start_time: text(
                self.radiopharmaceutical_start_time,
                "metadata->radiopharmaceutical_start_time",
            )?,
            series_date: text(self.series_date, "metadata->series_date")?,
            series_time: text(self.series_time, "metadata->series_time")?,
            acquisition_date: text(self.acquisition_date, "metadata->acquisition_date")?,
            acquisition_time: text(self.acquisition_time, "metadata->acquisition_time")?,
            philips_suv_scale_factor: absent_if_zero(self.philips_suv_scale_factor),
            philips_activity_concentration_scale_factor: absent_if_zero(
                self.philips_activity_concentration_scale_factor,
            ),
        })
    }
}

/// Fills `*metadata` with an empty struct: `struct_size` set, numbers 0, strings NULL.
///
/// # Safety
/// `metadata` must be NULL or point to a writable `UptakeSuvMetadata`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_suv_metadata_init(metadata: *mut UptakeSuvMetadata) -> u32 {
    guard(|| {
        if metadata.is_null() {
            return Err(super::null("metadata"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { metadata.write_unaligned(UptakeSuvMetadata::default()) };
        Ok(())
    })
}

/// Computes the body-weight SUV factor (g/mL per Bq/mL) by the QIBA vendor-neutral rules:
/// SUV = (stored value × RescaleSlope + RescaleIntercept) × `*out_factor`.
///
/// Returns `UPTAKE_ERR_INVALID_ARGUMENT` (message in `uptake_last_error`) for a missing,
/// non-finite or implausible weight, dose or half-life (limits in docs/design.md, S2), unknown
/// units or decay correction, an image not corrected for attenuation and decay, an injection
/// after the scan or more than ten half-lives before it, or a factor that is not finite and
/// plausible; `*out_factor` is then left unchanged.
///
/// # Safety
/// `metadata` must be NULL or point to at least `metadata->struct_size` readable bytes whose
/// string fields are NULL or NUL-terminated; `out_factor` must be NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_suv_factor(
    metadata: *const UptakeSuvMetadata,
    out_factor: *mut f64,
) -> u32 {
    guard(|| {
        if out_factor.is_null() {
            return Err(super::null("out_factor"));
        }
        // SAFETY: forwarded contract.
        let raw = unsafe { read_sized(metadata, SUV_METADATA_V1_SIZE, "metadata")? };
        // SAFETY: string fields are NULL or NUL-terminated by the caller's contract.
        let m = unsafe { raw.to_metadata()? };
        let factor = suvbw_factor(&m)?;
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out_factor.write_unaligned(factor) };
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::{UPTAKE_ERR_INVALID_ARGUMENT, UPTAKE_OK};

    fn siemens() -> UptakeSuvMetadata {
        UptakeSuvMetadata {
            patient_weight_kg: 67.0,
            radionuclide_total_dose_bq: 374e6,
            radionuclide_half_life_s: 6586.2,
            units: c"BQML".as_ptr(),
            decay_correction: c"START".as_ptr(),
            corrected_image: c"NORM\\DTIM\\ATTN\\SCAT\\DECY\\RAN".as_ptr(),
            radiopharmaceutical_start_datetime: c"20201217083045.000000 ".as_ptr(),
            series_date: c"20201217".as_ptr(),
            series_time: c"104829.000000".as_ptr(),
            acquisition_date: c"20201217".as_ptr(),
            acquisition_time: c"104830.351370".as_ptr(),
            ..Default::default()
        }
    }

    #[test]
    fn factor_through_the_abi() {
        let mut f = 0.0;
        // SAFETY: valid struct with static strings; f writable.
        let st = unsafe { uptake_suv_factor(&siemens(), &mut f) };
        assert_eq!(st, UPTAKE_OK);
        // expected.json of the shared SUV header set, case SIEMENS.
        assert!((f / 0.00042748316187 - 1.0).abs() < 1e-6, "{f}");
    }

    #[test]
    fn missing_weight_and_nulls_are_errors() {
        let mut m = siemens();
        m.patient_weight_kg = 0.0;
        let mut f = -1.0;
        // SAFETY: as above.
        let st = unsafe { uptake_suv_factor(&m, &mut f) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        assert_eq!(f, -1.0, "output untouched on error");
        // SAFETY: NULL pointers are reported, not dereferenced.
        let st = unsafe { uptake_suv_factor(std::ptr::null(), &mut f) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        // SAFETY: as above.
        let st = unsafe { uptake_suv_factor(&siemens(), std::ptr::null_mut()) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        let mut small = siemens();
        small.struct_size = 4;
        // SAFETY: as above; the size is rejected before anything past it is read.
        let st = unsafe { uptake_suv_factor(&small, &mut f) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
    }

    /// Issue #28: factors that overflowed to infinity (or were absurd) were returned as success.
    #[test]
    fn overflowing_or_implausible_factors_are_errors() {
        type Edit = fn(&mut UptakeSuvMetadata);
        let cases: [Edit; 6] = [
            |m| m.patient_weight_kg = 1e308,
            |m| m.patient_weight_kg = f64::NAN,
            |m| m.radionuclide_half_life_s = 1e-300,
            |m| m.radionuclide_total_dose_bq = 1e-300,
            |m| m.radiopharmaceutical_start_datetime = c"19000101083045".as_ptr(),
            |m| {
                m.units = c"CNTS".as_ptr();
                m.philips_suv_scale_factor = f64::INFINITY;
            },
        ];
        for (n, edit) in cases.iter().enumerate() {
            let mut m = siemens();
            edit(&mut m);
            let mut f = -1.0;
            // SAFETY: valid struct with static strings; f writable.
            let st = unsafe { uptake_suv_factor(&m, &mut f) };
            assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT, "case {n}: factor {f}");
            assert_eq!(f, -1.0, "case {n}: output untouched on error");
        }
    }

    #[test]
    fn init_sets_size() {
        let mut m = siemens();
        // SAFETY: writable struct.
        assert_eq!(unsafe { uptake_suv_metadata_init(&mut m) }, UPTAKE_OK);
        assert_eq!(
            m.struct_size as usize,
            std::mem::size_of::<UptakeSuvMetadata>()
        );
        assert!(m.units.is_null());
    }
}
