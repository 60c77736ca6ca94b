//! Analyzer handle: create from options, free.

use std::ffi::c_char;
use std::path::PathBuf;

use super::{guard, guard_void, null, opt_str, read_sized};
use crate::analyzer::{Analyzer, AnalyzerConfig, Device};
use crate::error::Error;

/// `UptakeAnalyzerOptions.device` values.
pub const UPTAKE_DEVICE_AUTO: u32 = 0;
pub const UPTAKE_DEVICE_CPU: u32 = 1;
pub const UPTAKE_DEVICE_CUDA: u32 = 2;

/// Opaque analyzer: holds the model and device, reused across studies. Create with
/// `uptake_analyzer_create`, free with `uptake_analyzer_free`.
pub struct UptakeAnalyzer {
    _private: [u8; 0],
}

/// Options for `uptake_analyzer_create`. Initialise with `uptake_analyzer_options_init`, which
/// sets `struct_size` and every default; then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UptakeAnalyzerOptions {
    /// `sizeof(UptakeAnalyzerOptions)` as compiled by the caller.
    pub struct_size: u32,
    /// `UPTAKE_DEVICE_AUTO` (default), `UPTAKE_DEVICE_CPU` or `UPTAKE_DEVICE_CUDA`.
    pub device: u32,
    /// CPU worker threads; 0 (default) = one per core.
    pub threads: u32,
    /// Reserved, must be 0.
    pub reserved: u32,
    /// Model file path (UTF-8, NUL-terminated), or NULL (default) for the embedded model.
    /// Only read during `uptake_analyzer_create`.
    pub model_path: *const c_char,
}

impl Default for UptakeAnalyzerOptions {
    fn default() -> Self {
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            device: UPTAKE_DEVICE_AUTO,
            threads: 0,
            reserved: 0,
            model_path: std::ptr::null(),
        }
    }
}

/// Size of the first published version of `UptakeAnalyzerOptions`.
const OPTIONS_V1_SIZE: usize = std::mem::size_of::<UptakeAnalyzerOptions>();

/// Fills `*options` with the defaults and the right `struct_size`.
///
/// # Safety
/// `options` must be NULL or point to a writable `UptakeAnalyzerOptions`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_options_init(options: *mut UptakeAnalyzerOptions) -> u32 {
    guard(|| {
        if options.is_null() {
            return Err(null("options"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { options.write_unaligned(UptakeAnalyzerOptions::default()) };
        Ok(())
    })
}

/// Validates `options` and creates an analyzer in `*out` (set to NULL on failure). `options`
/// may be NULL for all defaults. The caller owns `*out` and frees it with `uptake_analyzer_free`.
///
/// # Safety
/// `options` must be NULL or point to at least `options->struct_size` readable bytes;
/// `out` must point to a writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_create(
    options: *const UptakeAnalyzerOptions,
    out: *mut *mut UptakeAnalyzer,
) -> u32 {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out.write_unaligned(std::ptr::null_mut()) };
        let opts = if options.is_null() {
            UptakeAnalyzerOptions::default()
        } else {
            // SAFETY: non-NULL; the caller guarantees struct_size readable bytes.
            unsafe { read_sized(options, OPTIONS_V1_SIZE, "options")? }
        };
        let config = config_from(&opts)?;
        let analyzer = Box::new(Analyzer::new(config)?);
        // SAFETY: as above.
        unsafe { out.write_unaligned(Box::into_raw(analyzer) as *mut UptakeAnalyzer) };
        Ok(())
    })
}

fn config_from(opts: &UptakeAnalyzerOptions) -> Result<AnalyzerConfig, Error> {
    let device = match opts.device {
        UPTAKE_DEVICE_AUTO => Device::Auto,
        UPTAKE_DEVICE_CPU => Device::Cpu,
        UPTAKE_DEVICE_CUDA => Device::Cuda,
        other => {
            return Err(Error::InvalidArgument(format!(
                "options.device = {other} is not an UPTAKE_DEVICE_* value"
            )));
        }
    };
    if opts.reserved != 0 {
        return Err(Error::InvalidArgument("options.reserved must be 0".into()));
    }
    // SAFETY: the caller guarantees model_path is NULL or a NUL-terminated string.
    let model_path = unsafe { opt_str(opts.model_path, "options.model_path")? };
    Ok(AnalyzerConfig {
        device,
        threads: opts.threads as usize,
        model_path: model_path.map(PathBuf::from),
        batch_size: 0,
    })
}

/// Borrows the analyzer behind a handle.
///
/// # Safety
/// `ptr` must be NULL or a live handle from `uptake_analyzer_create`.
pub(crate) unsafe fn analyzer_ref<'a>(ptr: *const UptakeAnalyzer) -> Result<&'a Analyzer, Error> {
    if ptr.is_null() {
        return Err(null("analyzer"));
    }
    // SAFETY: a live handle is a Box<Analyzer> turned into a raw pointer.
    Ok(unsafe { &*(ptr as *const Analyzer) })
}

/// Frees an analyzer. NULL is a no-op. The handle must not be in use by another thread.
///
/// # Safety
/// `analyzer` must be NULL or a handle from `uptake_analyzer_create` not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_free(analyzer: *mut UptakeAnalyzer) {
    guard_void(|| {
        if !analyzer.is_null() {
            // SAFETY: the handle came from Box::into_raw in uptake_analyzer_create.
            drop(unsafe { Box::from_raw(analyzer as *mut Analyzer) });
        }
    })
}

/// The device an analyzer resolved to: `UPTAKE_DEVICE_CPU` or `UPTAKE_DEVICE_CUDA`.
///
/// # Safety
/// `analyzer` must be NULL or a live handle; `out_device` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyzer_device(
    analyzer: *const UptakeAnalyzer,
    out_device: *mut u32,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let a = unsafe { analyzer_ref(analyzer)? };
        if out_device.is_null() {
            return Err(null("out_device"));
        }
        let code = match a.device() {
            Device::Cuda => UPTAKE_DEVICE_CUDA,
            Device::Cpu | Device::Auto => UPTAKE_DEVICE_CPU,
        };
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out_device.write_unaligned(code) };
        Ok(())
    })
}
