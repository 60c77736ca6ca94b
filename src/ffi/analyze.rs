//! `uptake_analyze`: one study through the whole pipeline, from a host's volumes to a report.

use std::ffi::c_void;

use super::analyzer::{UptakeAnalyzer, analyzer_ref};
use super::report::{UptakeReport, into_handle};
use super::volume::{UptakeVolume, read_volume};
use super::{guard, null, read_sized, tracer_of};
use crate::analyzer::{AnalyzeOptions, DEFAULT_MIN_CT_COVERAGE, Stage};
use crate::error::Error;
use crate::regions::{Connectivity, RegionParams, SubregionParams};
use crate::staging::StagingConfig;

/// Tracer codes for `uptake_analyze`.
pub const UPTAKE_TRACER_PSMA: u32 = 0;
pub const UPTAKE_TRACER_FDG: u32 = 1;

/// `UptakeAnalyzeOptions.pet_units`: the PET voxels are SUV (body weight) already …
pub const UPTAKE_PET_UNITS_SUV: u32 = 0;
/// … or Bq/mL, converted with `suv_factor` (g/mL per Bq/mL, e.g. from `uptake_suv_factor`).
pub const UPTAKE_PET_UNITS_BQML: u32 = 1;

/// Stage codes passed to the progress callback, in pipeline order; `UPTAKE_STAGE_REFORMAT` and
/// `UPTAKE_STAGE_CLASSIFY` alternate, once per batch of regions.
pub const UPTAKE_STAGE_CHECK: u32 = 0;
pub const UPTAKE_STAGE_GRID: u32 = 1;
pub const UPTAKE_STAGE_REGIONS: u32 = 2;
pub const UPTAKE_STAGE_REFORMAT: u32 = 3;
pub const UPTAKE_STAGE_CLASSIFY: u32 = 4;
pub const UPTAKE_STAGE_STAGING: u32 = 5;

/// Progress of `uptake_analyze`: `stage` is `UPTAKE_STAGE_*`, `fraction` in [0, 1] within it.
/// Return 0 to continue, anything else to cancel (the call then returns
/// `UPTAKE_ERR_CANCELLED` and allocates nothing). Called on the thread that called
/// `uptake_analyze`.
pub type UptakeProgressCallback =
    Option<unsafe extern "C" fn(stage: u32, fraction: f32, user_data: *mut c_void) -> u32>;

/// Options of `uptake_analyze`. Initialise with `uptake_analyze_options_init`, which sets
/// `struct_size` and every default; then change what you need.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UptakeAnalyzeOptions {
    /// `sizeof(UptakeAnalyzeOptions)` as compiled by the caller.
    pub struct_size: u32,
    /// `UPTAKE_PET_UNITS_SUV` (default) or `UPTAKE_PET_UNITS_BQML`.
    pub pet_units: u32,
    /// SUV per Bq/mL; required (finite, > 0) with `UPTAKE_PET_UNITS_BQML`, else ignored.
    pub suv_factor: f64,
    /// Suspicious threshold in [0, 1] (0 calls every region suspicious); a negative value
    /// (default −1) uses the model's operating point for the study's tracer
    /// (`uptake_analyzer_operating_points`). Set without `distant_threshold`, it holds for every
    /// finding.
    pub threshold: f64,
    /// Uptake-region connectivity: 6, 18 or 26 (default 26).
    pub connectivity: u32,
    /// Non-zero: common iliac nodes count as regional (miN) instead of M1a. Default 0.
    pub common_iliac_as_regional: u32,
    /// Blood-pool reference SUVmean for the miPSMA score (default 1.5).
    pub blood_pool_suv: f64,
    /// Suspicious bone volume above this fraction of the skeleton (CT > 200 HU) adds "dmi"
    /// (default 0.2).
    pub dmi_fraction: f64,
    /// Non-zero: NaN/Inf voxels become 0 SUV / −1000 HU with a logged warning instead of an
    /// error. Default 0.
    pub replace_non_finite: u32,
    /// Suspicious threshold in (0, 1] of distant findings (locations staged M1a, M1b, M1c);
    /// 0 (the default) or negative uses `threshold` when that is set, else the model's distant
    /// operating point for the study's tracer. This was a reserved field that callers set to 0,
    /// so a host compiled before it gets the default.
    pub distant_threshold: f32,
    /// Optional progress callback and the pointer passed back to it.
    pub progress: UptakeProgressCallback,
    pub progress_user_data: *mut c_void,
    /// Most MiB the study's stages may allocate beyond the input volumes; a study over it fails
    /// with `UPTAKE_ERR_MEMORY` before anything is allocated, with a message naming the sizes.
    /// 0 (the default) = 4 GiB, or half the machine's physical memory where that is smaller.
    /// Added after the first version: a host whose `struct_size` ends before it gets 0.
    pub memory_budget_mb: u64,
    /// Least share in [0, 1] of the PET's axial extent the CT must cover (default 0.9); below
    /// it the study fails with `UPTAKE_ERR_INVALID_ARGUMENT`. The report's `ct_coverage` states
    /// the coverage. Added after the first version: a host whose `struct_size` ends before it
    /// gets the default.
    pub min_ct_coverage: f64,
    /// Non-zero: classify S4's uptake regions alone, as the paper does. 0 (the default) also
    /// classifies the sub-regions, the foci that the second candidate stage finds inside S4
    /// regions (a lesion merged into brighter uptake); the report's findings say which stage
    /// proposed each region. Added after the first version: a host whose `struct_size` ends
    /// before it gets 0.
    pub paper_regions: u32,
}

impl Default for UptakeAnalyzeOptions {
    fn default() -> Self {
        let staging = StagingConfig::default();
        Self {
            struct_size: std::mem::size_of::<Self>() as u32,
            pet_units: UPTAKE_PET_UNITS_SUV,
            suv_factor: 0.0,
            threshold: -1.0,
            connectivity: 26,
            common_iliac_as_regional: 0,
            blood_pool_suv: staging.blood_pool_suv,
            dmi_fraction: staging.dmi_fraction,
            replace_non_finite: 0,
            distant_threshold: 0.0,
            progress: None,
            progress_user_data: std::ptr::null_mut(),
            memory_budget_mb: 0,
            min_ct_coverage: DEFAULT_MIN_CT_COVERAGE,
            paper_regions: 0,
        }
    }
}

/// `struct_size` of the first version of the options, which ended after `progress_user_data`.
const ANALYZE_OPTIONS_V1_SIZE: usize = std::mem::offset_of!(UptakeAnalyzeOptions, memory_budget_mb);

/// Fills `*options` with the defaults and the right `struct_size`.
///
/// # Safety
/// `options` must be NULL or point to a writable `UptakeAnalyzeOptions`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyze_options_init(options: *mut UptakeAnalyzeOptions) -> u32 {
    guard(|| {
        if options.is_null() {
            return Err(null("options"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { options.write_unaligned(UptakeAnalyzeOptions::default()) };
        Ok(())
    })
}

/// Analyzes one study: PET (SUV, or Bq/mL with a factor) and CT (HU), each on its own grid in
/// patient LPS space; `tracer` is `UPTAKE_TRACER_PSMA` or `UPTAKE_TRACER_FDG`; `options` may be
/// NULL for the defaults. On success `*out` holds a report the caller frees with
/// `uptake_report_free`; on failure `*out` is NULL and nothing was allocated. The volumes are
/// only read. Safe to call concurrently on one analyzer from several threads.
///
/// # Safety
/// `analyzer` must be NULL or a live handle; `pet` and `ct` NULL or valid descriptors whose data
/// stay readable for the call; `options` NULL or `options->struct_size` readable bytes; `out` a
/// writable pointer.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_analyze(
    analyzer: *const UptakeAnalyzer,
    pet: *const UptakeVolume,
    ct: *const UptakeVolume,
    tracer: u32,
    options: *const UptakeAnalyzeOptions,
    out: *mut *mut UptakeReport,
) -> u32 {
    guard(|| {
        if out.is_null() {
            return Err(null("out"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out.write_unaligned(std::ptr::null_mut()) };
        // SAFETY: per this function's contract.
        let analyzer = unsafe { analyzer_ref(analyzer)? };
        let opts = if options.is_null() {
            UptakeAnalyzeOptions::default()
        } else {
            // SAFETY: non-NULL; struct_size readable bytes by contract.
            unsafe { read_sized(options, ANALYZE_OPTIONS_V1_SIZE, "options")? }
        };
        let tracer = tracer_of(tracer)?;
        // SAFETY: descriptors readable by contract; their data is checked before it is read.
        let (pet, ct) = unsafe {
            (
                read_volume(pet, "pet")?.to_volume()?,
                read_volume(ct, "ct")?.to_volume()?,
            )
        };
        let pet = match opts.pet_units {
            UPTAKE_PET_UNITS_SUV => pet,
            UPTAKE_PET_UNITS_BQML if opts.suv_factor.is_finite() && opts.suv_factor > 0.0 => {
                crate::suv::try_to_suv(&pet, opts.suv_factor)?
            }
            UPTAKE_PET_UNITS_BQML => {
                return Err(Error::InvalidArgument(format!(
                    "options.suv_factor = {} must be finite and > 0 for Bq/mL PET",
                    opts.suv_factor
                )));
            }
            other => {
                return Err(Error::InvalidArgument(format!(
                    "options.pet_units = {other} is not an UPTAKE_PET_UNITS_* value"
                )));
            }
        };
        let progress = |stage: Stage, fraction: f32| match opts.progress {
            // SAFETY: the host registered this callback with this signature for this call.
            Some(callback) => unsafe {
                callback(stage_code(stage), fraction, opts.progress_user_data) == 0
            },
            None => true,
        };
        let analyze_options = analyze_options(&opts, &progress)?;
        let report = analyzer.analyze(&pet, &ct, tracer, &analyze_options)?;
        let handle = into_handle(report)?;
        // SAFETY: as above.
        unsafe { out.write_unaligned(handle) };
        Ok(())
    })
}

fn analyze_options<'a>(
    opts: &UptakeAnalyzeOptions,
    progress: &'a dyn Fn(Stage, f32) -> bool,
) -> Result<AnalyzeOptions<'a>, Error> {
    let connectivity = Connectivity::from_neighbours(opts.connectivity).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "options.connectivity = {}; expected 6, 18 or 26",
            opts.connectivity
        ))
    })?;
    // The sentinels of the C struct (negative threshold, 0 distant threshold: the model's); the
    // values themselves are checked by `AnalyzeOptions::validate` in `analyze`, as for every
    // host.
    let threshold = match opts.threshold {
        t if t < 0.0 => None,
        t => Some(t as f32),
    };
    let distant_threshold = match opts.distant_threshold {
        t if t <= 0.0 => None,
        t => Some(t),
    };
    Ok(AnalyzeOptions {
        regions: RegionParams {
            connectivity,
            ..RegionParams::default()
        },
        subregions: (opts.paper_regions == 0).then(SubregionParams::default),
        threshold,
        distant_threshold,
        staging: StagingConfig {
            common_iliac_as_regional: opts.common_iliac_as_regional != 0,
            blood_pool_suv: opts.blood_pool_suv,
            dmi_fraction: opts.dmi_fraction,
            ..StagingConfig::default()
        },
        replace_non_finite: opts.replace_non_finite != 0,
        memory_budget: (opts.memory_budget_mb > 0)
            .then(|| opts.memory_budget_mb.saturating_mul(1 << 20)),
        min_ct_coverage: Some(opts.min_ct_coverage),
        progress: Some(progress),
    })
}

fn stage_code(stage: Stage) -> u32 {
    match stage {
        Stage::Check => UPTAKE_STAGE_CHECK,
        Stage::Grid => UPTAKE_STAGE_GRID,
        Stage::Regions => UPTAKE_STAGE_REGIONS,
        Stage::Reformat => UPTAKE_STAGE_REFORMAT,
        Stage::Classify => UPTAKE_STAGE_CLASSIFY,
        Stage::Staging => UPTAKE_STAGE_STAGING,
    }
}
