//! The analyzer's model: what it is (version, classes, input, provenance) and raw inference,
//! for hosts and for tests that compare the network with an independent runtime.

use std::ffi::c_char;

use super::analyzer::{UptakeAnalyzer, analyzer_ref};
use super::{UPTAKE_MAX_STRUCT_SIZE, guard, null, tracer_of};
use crate::error::Error;
use crate::model::ModelError;

/// Facts about an analyzer's model, filled by `uptake_analyzer_model_info`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct UptakeModelInfo {
    /// `sizeof(UptakeModelInfo)` as compiled by the caller; set it before the call.
    pub struct_size: u32,
    /// Model file version (`uptake.model_version`).
    pub model_version: u32,
    /// Network input channels per region (PET planes then CT planes).
    pub input_channels: u32,
    /// Pixels per plane side; one region's input is input_channels × plane_size² floats.
    pub plane_size: u32,
    /// Location classes; `uptake_model_infer` writes 1 + class_count floats per region.
    pub class_count: u32,
    /// 1 when the weights were trained, 0 for a randomly initialised placeholder model.
    pub trained: u32,
    /// Operating threshold on p_suspicious (of local and regional findings, and of all when the
    /// model has a single one) for a tracer without its own: `uptake_analyzer_operating_points`
    /// gives a tracer's.
    pub threshold: f32,
    /// Operating threshold of distant findings (locations staged M1a, M1b, M1c) for a tracer
    /// without its own; equal to `threshold` when the model has a single one. 0 from a library
    /// older than this field (it was reserved): `threshold` then holds for all findings.
    pub distant_threshold: f32,
    /// Pixel spacing of the input planes (mm).
    pub pixel_mm: f64,
    /// Floating-point operations of one region's forward pass.
    pub flops_per_region: f64,
}

const MODEL_INFO_V1_SIZE: usize = std::mem::size_of::<UptakeModelInfo>();

/// Fills `*info` with facts about the analyzer's model. The caller sets `info->struct_size`;
/// only that many bytes are written (fields a newer library adds are left untouched).
///
/// # Safety
/// `analyzer` must be NULL or a live handle; `info` NULL or pointing to `info->struct_size`
/// writable bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_model_info(
    analyzer: *const UptakeAnalyzer,
    info: *mut UptakeModelInfo,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let a = unsafe { analyzer_ref(analyzer)? };
        if info.is_null() {
            return Err(null("info"));
        }
        // SAFETY: non-NULL; at least the leading u32 is readable by the caller's contract.
        let size = unsafe { std::ptr::read_unaligned(info as *const u32) } as usize;
        if size < MODEL_INFO_V1_SIZE || size > UPTAKE_MAX_STRUCT_SIZE as usize {
            return Err(Error::InvalidArgument(format!(
                "info->struct_size is {size}; expected at least {MODEL_INFO_V1_SIZE} and at \
                 most {UPTAKE_MAX_STRUCT_SIZE} (set it to sizeof(UptakeModelInfo))"
            )));
        }
        let model = a.model();
        let spec = model.input_spec();
        let ours = UptakeModelInfo {
            struct_size: size as u32,
            model_version: model.metadata().model_version,
            input_channels: (2 * spec.planes()) as u32,
            plane_size: spec.plane_size as u32,
            class_count: model.classes().len() as u32,
            trained: u32::from(model.is_trained()),
            threshold: model.threshold(),
            distant_threshold: model.distant_threshold(),
            pixel_mm: spec.pixel_mm,
            flops_per_region: model.graph().flops,
        };
        // SAFETY: the caller's struct has `size` ≥ MODEL_INFO_V1_SIZE writable bytes; we write
        // exactly our struct's bytes, unaligned because C may pass any address.
        unsafe { info.write_unaligned(ours) };
        Ok(())
    })
}

/// Writes the model's operating points for studies of `tracer` (`UPTAKE_TRACER_*`), the ones
/// `uptake_analyze` uses when the options set none: `*threshold` of local and regional findings,
/// `*distant_threshold` of distant ones (M1a, M1b, M1c). Either output may be NULL when the
/// host wants only the other. Nothing is written on failure.
///
/// # Safety
/// `analyzer` must be NULL or a live handle; `threshold` and `distant_threshold` each NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_operating_points(
    analyzer: *const UptakeAnalyzer,
    tracer: u32,
    threshold: *mut f32,
    distant_threshold: *mut f32,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let a = unsafe { analyzer_ref(analyzer)? };
        let tracer = tracer_of(tracer)?;
        let points = a.model().operating_points(tracer);
        for (out, value) in [
            (threshold, points.threshold),
            (distant_threshold, points.distant_threshold),
        ] {
            if !out.is_null() {
                // SAFETY: non-NULL and writable by the caller's contract.
                unsafe { out.write_unaligned(value) };
            }
        }
        Ok(())
    })
}

/// Copies the analyzer's model metadata as JSON (model_version, model_id, architecture,
/// classes with names and staging roles, input, training, threshold, distant_threshold and
/// operating_points when the model has them), NUL-terminated, into
/// `buf` (`buf_len` bytes). `*out_len` (optional) receives the JSON length without the NUL, so
/// a first call with `buf` NULL and `buf_len` 0 asks for the size. Returns `UPTAKE_OK` when the
/// whole text fit, `UPTAKE_ERR_INVALID_ARGUMENT` when it did not (the buffer then holds a
/// NUL-terminated prefix) or when `buf` is NULL with `buf_len` > 0.
///
/// # Safety
/// `analyzer` must be NULL or a live handle; `buf` NULL or `buf_len` writable bytes; `out_len`
/// NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_model_metadata(
    analyzer: *const UptakeAnalyzer,
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let a = unsafe { analyzer_ref(analyzer)? };
        if buf.is_null() && buf_len > 0 {
            return Err(null("buf"));
        }
        let json = serde_json::to_string(a.model().metadata())
            .map_err(|e| Error::Internal(format!("model metadata as JSON: {e}")))?;
        if !out_len.is_null() {
            // SAFETY: non-NULL and writable by the caller's contract.
            unsafe { out_len.write_unaligned(json.len()) };
        }
        if buf_len == 0 {
            return if json.is_empty() {
                Ok(())
            } else {
                Err(Error::InvalidArgument(format!(
                    "buffer of 0 bytes; the metadata needs {}",
                    json.len() + 1
                )))
            };
        }
        // SAFETY: non-NULL with buf_len writable bytes by the caller's contract.
        let out = unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, buf_len) };
        let copied = json.len().min(buf_len - 1);
        out[..copied].copy_from_slice(&json.as_bytes()[..copied]);
        out[copied] = 0;
        if copied < json.len() {
            return Err(Error::InvalidArgument(format!(
                "buffer of {buf_len} bytes; the metadata needs {}",
                json.len() + 1
            )));
        }
        Ok(())
    })
}

/// Runs the analyzer's network on `n` regions and writes raw logits.
///
/// `inputs`: n × input_channels × plane_size × plane_size floats (region-major, then channel,
/// row, column; see `UptakeModelInfo`), values in [0, 1] as DESIGN S5 windows them.
/// `tracer_bits`: n floats, 0 = PSMA, 1 = FDG. `out_logits`: `out_len` = n × (1 + class_count)
/// floats, per region the suspicious logit then one logit per location class. Inputs are
/// read only; the caller owns every buffer. Safe to call from several threads at once.
///
/// # Safety
/// `analyzer` must be NULL or a live handle; `inputs`, `tracer_bits` and `out_logits` must
/// point to the stated number of floats (they may be NULL when n is 0).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_model_infer(
    analyzer: *const UptakeAnalyzer,
    inputs: *const f32,
    tracer_bits: *const f32,
    n: usize,
    out_logits: *mut f32,
    out_len: usize,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let a = unsafe { analyzer_ref(analyzer)? };
        let engine = a.engine();
        let per_region = engine.graph().input_len();
        let too_many = || Error::InvalidArgument(format!("n = {n} regions is too many"));
        let input_len = n.checked_mul(per_region).ok_or_else(too_many)?;
        let want_out = n.checked_mul(engine.output_len()).ok_or_else(too_many)?;
        if input_len > isize::MAX as usize / 4 {
            return Err(too_many());
        }
        if out_len != want_out {
            return Err(Error::InvalidArgument(format!(
                "out_len = {out_len}; {n} regions need {want_out} floats"
            )));
        }
        if n == 0 {
            return Ok(());
        }
        for (ptr, name) in [
            (inputs as *const u8, "inputs"),
            (tracer_bits as *const u8, "tracer_bits"),
            (out_logits as *const u8, "out_logits"),
        ] {
            if ptr.is_null() {
                return Err(null(name));
            }
        }
        // SAFETY: non-NULL, and the caller guarantees the stated lengths; the output does not
        // alias the inputs (the caller owns three distinct buffers).
        let (x, bits, out) = unsafe {
            (
                std::slice::from_raw_parts(inputs, input_len),
                std::slice::from_raw_parts(tracer_bits, n),
                std::slice::from_raw_parts_mut(out_logits, out_len),
            )
        };
        engine.infer_logits(x, bits, out).map_err(|e| match e {
            ModelError::Input(m) => Error::InvalidArgument(m),
            other => other.into(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::analyzer::{uptake_analyzer_create, uptake_analyzer_free};
    use crate::ffi::{UPTAKE_ERR_INVALID_ARGUMENT, UPTAKE_OK};

    fn analyzer() -> *mut UptakeAnalyzer {
        let mut a = std::ptr::null_mut();
        // SAFETY: NULL options mean defaults; `a` is writable.
        assert_eq!(
            unsafe { uptake_analyzer_create(std::ptr::null(), &mut a) },
            UPTAKE_OK
        );
        a
    }

    #[test]
    fn model_info_respects_struct_size() {
        let a = analyzer();
        let mut info = UptakeModelInfo {
            struct_size: MODEL_INFO_V1_SIZE as u32,
            ..Default::default()
        };
        // SAFETY: live handle, writable struct of the stated size.
        assert_eq!(
            unsafe { uptake_analyzer_model_info(a, &mut info) },
            UPTAKE_OK
        );
        assert_eq!(
            (info.input_channels, info.plane_size, info.class_count),
            (26, 64, 23)
        );
        assert_eq!((info.model_version, info.trained), (1, 1));
        let mut small = UptakeModelInfo {
            struct_size: 8,
            ..Default::default()
        };
        // SAFETY: as above; the call must refuse before writing.
        let st = unsafe { uptake_analyzer_model_info(a, &mut small) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        assert_eq!(small.class_count, 0);
        // SAFETY: a NULL analyzer is reported, not dereferenced.
        let st = unsafe { uptake_analyzer_model_info(std::ptr::null(), &mut info) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        // SAFETY: frees the handle created above.
        unsafe { uptake_analyzer_free(a) };
    }

    #[test]
    fn metadata_json_is_sized_then_copied_and_truncation_is_reported() {
        let a = analyzer();
        let mut len = 0usize;
        // SAFETY: size query with a NULL buffer of length 0.
        let st = unsafe { uptake_analyzer_model_metadata(a, std::ptr::null_mut(), 0, &mut len) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        let mut buf = vec![1 as c_char; len + 1];
        // SAFETY: buf has len + 1 writable bytes.
        let st =
            unsafe { uptake_analyzer_model_metadata(a, buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(st, UPTAKE_OK);
        // SAFETY: NUL-terminated by the call.
        let text = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
            .to_str()
            .unwrap();
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        assert_eq!(json["classes"][13]["name"], "bladder");
        assert_eq!(json["training"]["untrained"], false);
        let mut short = [1 as c_char; 16];
        // SAFETY: 16 writable bytes.
        let st = unsafe {
            uptake_analyzer_model_metadata(a, short.as_mut_ptr(), 16, std::ptr::null_mut())
        };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        assert_eq!(short[15], 0);
        // SAFETY: frees the handle.
        unsafe { uptake_analyzer_free(a) };
    }

    #[test]
    fn infer_checks_lengths_and_pointers() {
        let a = analyzer();
        let x = vec![0.5f32; 26 * 64 * 64];
        let bits = [1.0f32];
        let mut out = [0f32; 24];
        // SAFETY: buffers of the stated sizes.
        let st =
            unsafe { uptake_model_infer(a, x.as_ptr(), bits.as_ptr(), 1, out.as_mut_ptr(), 24) };
        assert_eq!(st, UPTAKE_OK);
        assert!(out.iter().all(|v| v.is_finite()));
        // SAFETY: a wrong out_len is refused before any access.
        let st =
            unsafe { uptake_model_infer(a, x.as_ptr(), bits.as_ptr(), 1, out.as_mut_ptr(), 23) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        // SAFETY: NULL inputs are refused.
        let st = unsafe {
            uptake_model_infer(a, std::ptr::null(), bits.as_ptr(), 1, out.as_mut_ptr(), 24)
        };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        // SAFETY: n = 0 touches nothing.
        let st = unsafe {
            uptake_model_infer(
                a,
                std::ptr::null(),
                std::ptr::null(),
                0,
                std::ptr::null_mut(),
                0,
            )
        };
        assert_eq!(st, UPTAKE_OK);
        // SAFETY: an n whose sizes overflow is refused before any access.
        let st = unsafe {
            uptake_model_infer(
                a,
                x.as_ptr(),
                bits.as_ptr(),
                usize::MAX / 8,
                out.as_mut_ptr(),
                24,
            )
        };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        // SAFETY: frees the handle.
        unsafe { uptake_analyzer_free(a) };
    }
}
