//! The well-known entry point for hosts that dlopen the library as a post-reconstruction hook.

use std::ffi::{c_char, c_void};

use super::UPTAKE_ABI_VERSION;
use super::analyze::UptakeAnalyzeOptions;
use super::analyzer::{UptakeAnalyzer, UptakeAnalyzerOptions};
use super::logging::UptakeLogCallback;
use super::model::UptakeModelInfo;
use super::report::{UptakeFinding, UptakeReport, UptakeStaging};
use super::suv::UptakeSuvMetadata;
use super::volume::UptakeVolume;

/// Function table returned by `uptake_plugin_v1()`. Fields are only ever appended; a host reads
/// `struct_size` to know which exist. Every pointer is non-NULL and valid for the life of the
/// process.
#[repr(C)]
pub struct UptakePluginV1 {
    /// `sizeof(UptakePluginV1)` in this library.
    pub struct_size: u32,
    /// `UPTAKE_ABI_VERSION` of this library.
    pub abi_version: u32,
    /// Plugin name, "uptake".
    pub name: *const c_char,
    /// Library version, as `uptake_version()`.
    pub version: *const c_char,
    pub last_error: extern "C" fn() -> *const c_char,
    pub last_error_copy: unsafe extern "C" fn(*mut c_char, usize, *mut usize) -> u32,
    pub status_name: extern "C" fn(u32) -> *const c_char,
    pub set_log_callback: extern "C" fn(UptakeLogCallback, *mut c_void, u32) -> u32,
    pub analyzer_options_init: unsafe extern "C" fn(*mut UptakeAnalyzerOptions) -> u32,
    pub analyzer_create:
        unsafe extern "C" fn(*const UptakeAnalyzerOptions, *mut *mut UptakeAnalyzer) -> u32,
    pub analyzer_free: unsafe extern "C" fn(*mut UptakeAnalyzer),
    pub analyzer_device: unsafe extern "C" fn(*const UptakeAnalyzer, *mut u32) -> u32,
    pub volume_init: unsafe extern "C" fn(*mut UptakeVolume) -> u32,
    pub volume_check: unsafe extern "C" fn(*const UptakeVolume) -> u32,
    pub analyze_options_init: unsafe extern "C" fn(*mut UptakeAnalyzeOptions) -> u32,
    pub analyze: unsafe extern "C" fn(
        *const UptakeAnalyzer,
        *const UptakeVolume,
        *const UptakeVolume,
        u32,
        *const UptakeAnalyzeOptions,
        *mut *mut UptakeReport,
    ) -> u32,
    pub report_finding_count: unsafe extern "C" fn(*const UptakeReport, *mut usize) -> u32,
    pub report_findings:
        unsafe extern "C" fn(*const UptakeReport, *mut *const UptakeFinding, *mut usize) -> u32,
    pub report_staging: unsafe extern "C" fn(*const UptakeReport, *mut *const UptakeStaging) -> u32,
    pub report_json: unsafe extern "C" fn(*const UptakeReport, *mut *const c_char) -> u32,
    pub report_label_map:
        unsafe extern "C" fn(*const UptakeReport, *mut *const u32, *mut u32) -> u32,
    pub report_free: unsafe extern "C" fn(*mut UptakeReport),
    pub suv_metadata_init: unsafe extern "C" fn(*mut UptakeSuvMetadata) -> u32,
    pub suv_factor: unsafe extern "C" fn(*const UptakeSuvMetadata, *mut f64) -> u32,
    pub analyzer_model_info:
        unsafe extern "C" fn(*const UptakeAnalyzer, *mut UptakeModelInfo) -> u32,
    pub analyzer_model_metadata:
        unsafe extern "C" fn(*const UptakeAnalyzer, *mut c_char, usize, *mut usize) -> u32,
    pub analyzer_operating_points:
        unsafe extern "C" fn(*const UptakeAnalyzer, u32, *mut f32, *mut f32) -> u32,
}

struct Table(UptakePluginV1);
// SAFETY: the table holds only pointers to static strings and functions, never mutated.
unsafe impl Sync for Table {}

static PLUGIN: Table = Table(UptakePluginV1 {
    struct_size: std::mem::size_of::<UptakePluginV1>() as u32,
    abi_version: UPTAKE_ABI_VERSION,
    name: c"uptake".as_ptr(),
    version: super::VERSION_C.as_ptr() as *const c_char,
    last_error: super::uptake_last_error,
    last_error_copy: super::uptake_last_error_copy,
    status_name: super::uptake_status_name,
    set_log_callback: super::logging::uptake_set_log_callback,
    analyzer_options_init: super::analyzer::uptake_analyzer_options_init,
    analyzer_create: super::analyzer::uptake_analyzer_create,
    analyzer_free: super::analyzer::uptake_analyzer_free,
    analyzer_device: super::analyzer::uptake_analyzer_device,
    volume_init: super::volume::uptake_volume_init,
    volume_check: super::volume::uptake_volume_check,
    analyze_options_init: super::analyze::uptake_analyze_options_init,
    analyze: super::analyze::uptake_analyze,
    report_finding_count: super::report::uptake_report_finding_count,
    report_findings: super::report::uptake_report_findings,
    report_staging: super::report::uptake_report_staging,
    report_json: super::report::uptake_report_json,
    report_label_map: super::report::uptake_report_label_map,
    report_free: super::report::uptake_report_free,
    suv_metadata_init: super::suv::uptake_suv_metadata_init,
    suv_factor: super::suv::uptake_suv_factor,
    analyzer_model_info: super::model::uptake_analyzer_model_info,
    analyzer_model_metadata: super::model::uptake_analyzer_model_metadata,
    analyzer_operating_points: super::model::uptake_analyzer_operating_points,
});

/// The plugin's function table; never NULL, static, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn uptake_plugin_v1() -> *const UptakePluginV1 {
    &PLUGIN.0
}
