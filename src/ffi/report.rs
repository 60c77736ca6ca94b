//! Report handle: flat, fixed-width views of a [`Report`] for C (DESIGN S9, S10).
//!
//! Everything a report accessor hands out (structs, id arrays, strings, the label map) is owned
//! by the report and stays valid, unchanged, until `uptake_report_free`.

use std::ffi::{CString, c_char};

use super::{guard, guard_void, null};
use crate::classes::Role;
use crate::error::Error;
use crate::findings::Finding;
use crate::report::Report;
use crate::staging::{BonePattern, MStage, NStage, TStage};

/// `UptakeFinding.role`: the staging role of a suspicious finding.
pub const UPTAKE_ROLE_NONE: u32 = 0;
pub const UPTAKE_ROLE_T: u32 = 1;
pub const UPTAKE_ROLE_N: u32 = 2;
pub const UPTAKE_ROLE_M1A: u32 = 3;
pub const UPTAKE_ROLE_M1B: u32 = 4;
pub const UPTAKE_ROLE_M1C: u32 = 5;

/// `UptakeStaging.mi_t`.
pub const UPTAKE_MIT_T0: u32 = 0;
pub const UPTAKE_MIT_TPLUS: u32 = 1;

/// `UptakeStaging.mi_n`.
pub const UPTAKE_MIN_N0: u32 = 0;
pub const UPTAKE_MIN_N1: u32 = 1;
pub const UPTAKE_MIN_N2: u32 = 2;

/// `UptakeStaging.mi_m`.
pub const UPTAKE_MIM_M0: u32 = 0;
pub const UPTAKE_MIM_M1A: u32 = 1;
pub const UPTAKE_MIM_M1B: u32 = 2;
pub const UPTAKE_MIM_M1C: u32 = 3;

/// `UptakeStaging.bone_pattern`.
pub const UPTAKE_BONE_NONE: u32 = 0;
pub const UPTAKE_BONE_UNIFOCAL: u32 = 1;
pub const UPTAKE_BONE_OLIGOMETASTATIC: u32 = 2;
pub const UPTAKE_BONE_DISSEMINATED: u32 = 3;

/// `UptakeFinding.expression_score` of a finding that is not suspicious.
pub const UPTAKE_EXPRESSION_SCORE_NONE: u32 = 0xFFFF_FFFF;

/// Version of the report JSON schema (`schema_version` in `uptake_report_json`); a literal so
/// that cbindgen can write it, checked against the report module by a test.
pub const UPTAKE_REPORT_SCHEMA_VERSION: u32 = 2;

/// Opaque analysis report. Produced by the library, freed with `uptake_report_free`.
pub struct UptakeReport {
    _private: [u8; 0],
}

/// One finding (uptake region) of a report. SUV values are body-weight SUV (g/mL).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UptakeFinding {
    /// Label of the region in the label map (≥ 1).
    pub region_id: u32,
    /// 1 when `p_suspicious ≥` the operating point of its location's role (distant or not),
    /// else 0.
    pub suspicious: u32,
    pub voxel_count: u64,
    pub volume_ml: f64,
    pub suv_max: f64,
    pub suv_mean: f64,
    /// Mean SUV in a 1 mL sphere centred on the SUVmax voxel.
    pub suv_peak: f64,
    /// SUVmean × volume, SUV·mL.
    pub total_uptake: f64,
    /// Patient LPS position (mm) of the SUVmax voxel centre.
    pub max_lps: [f64; 3],
    pub p_suspicious: f32,
    /// Most probable location class id (model table).
    pub location_id: u32,
    pub location_prob: f32,
    /// The three most probable class ids, most probable first.
    pub top3_ids: [u32; 3],
    pub top3_probs: [f32; 3],
    /// `UPTAKE_ROLE_*`; `UPTAKE_ROLE_NONE` when not suspicious.
    pub role: u32,
    /// miPSMA expression score 0–3; `UPTAKE_EXPRESSION_SCORE_NONE` when not suspicious.
    pub expression_score: u32,
    /// Name of the location class, NUL-terminated UTF-8, owned by the report.
    pub location_name: *const c_char,
}

/// miTNM stage, burden and reference values of a report. Finding ids are region ids,
/// ascending; each array is owned by the report and NULL when its count is 0.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct UptakeStaging {
    /// `UPTAKE_MIT_*`.
    pub mi_t: u32,
    /// `UPTAKE_MIN_*`.
    pub mi_n: u32,
    /// `UPTAKE_MIM_*`: the highest present category; each present one has a non-zero count.
    pub mi_m: u32,
    /// `UPTAKE_BONE_*`: bone pattern, set exactly when M1b is present.
    pub bone_pattern: u32,
    /// 1 for diffuse marrow involvement, else 0.
    pub dmi: u32,
    /// Number of suspicious findings (= the sum of the five counts below).
    pub suspicious_count: u32,
    /// Local (T) findings.
    pub t_ids: *const u32,
    pub t_count: usize,
    /// Regional node (N) findings.
    pub n_ids: *const u32,
    pub n_count: usize,
    /// Extrapelvic node (M1a) findings.
    pub m1a_ids: *const u32,
    pub m1a_count: usize,
    /// Bone (M1b) findings.
    pub m1b_ids: *const u32,
    pub m1b_count: usize,
    /// Other organ (M1c) findings.
    pub m1c_ids: *const u32,
    pub m1c_count: usize,
    /// Total suspicious volume, mL (PSMA-TV).
    pub tumour_volume_ml: f64,
    /// Sum of SUVmean × mL over suspicious findings (TL-PSMA).
    pub total_lesion_uptake: f64,
    pub suspicious_bone_volume_ml: f64,
    /// CT > 200 HU volume the dmi rule compared against, mL.
    pub skeleton_volume_ml: f64,
    /// Reference SUVmean values of the expression score; liver and parotid are NaN when the
    /// study had no such reference region.
    pub blood_pool_suv: f64,
    pub liver_suv: f64,
    pub parotid_suv: f64,
}

/// What a report handle owns: the C views and the memory they point into.
struct ReportHandle {
    findings: Vec<UptakeFinding>,
    staging: UptakeStaging,
    json: CString,
    label_map: Option<(Vec<u32>, [u32; 3])>,
    /// Backing store of `findings[..].location_name` and the staging id arrays; read only
    /// through those pointers. Heap buffers do not move when the handle does.
    _location_names: Vec<CString>,
    _role_ids: [Vec<u32>; 5],
}

fn role_code(role: Option<Role>) -> u32 {
    match role {
        None => UPTAKE_ROLE_NONE,
        Some(Role::T) => UPTAKE_ROLE_T,
        Some(Role::N) => UPTAKE_ROLE_N,
        Some(Role::M1a) => UPTAKE_ROLE_M1A,
        Some(Role::M1b) => UPTAKE_ROLE_M1B,
        Some(Role::M1c) => UPTAKE_ROLE_M1C,
    }
}

fn c_finding(f: &Finding, location_name: &CString) -> UptakeFinding {
    let r = &f.region;
    UptakeFinding {
        region_id: r.id,
        suspicious: f.suspicious as u32,
        voxel_count: r.voxel_count,
        volume_ml: r.volume_ml,
        suv_max: f64::from(r.suv_max),
        suv_mean: r.suv_mean,
        suv_peak: r.suv_peak,
        total_uptake: r.total_uptake,
        max_lps: r.max_lps,
        p_suspicious: f.p_suspicious,
        location_id: f.location.id,
        location_prob: f.location.probability,
        top3_ids: f.top3.each_ref().map(|p| p.id),
        top3_probs: f.top3.each_ref().map(|p| p.probability),
        role: role_code(f.role),
        expression_score: f
            .expression_score
            .map_or(UPTAKE_EXPRESSION_SCORE_NONE, u32::from),
        location_name: location_name.as_ptr(),
    }
}

/// Pointer to an id array for C: NULL when empty.
fn ids_ptr(ids: &[u32]) -> *const u32 {
    if ids.is_empty() {
        std::ptr::null()
    } else {
        ids.as_ptr()
    }
}

impl ReportHandle {
    fn new(report: Report) -> Result<Self, Error> {
        let json = report
            .to_json()
            .map_err(|e| Error::Internal(format!("report JSON: {e}")))?;
        // serde_json escapes U+0000, so the JSON text holds no NUL byte.
        let json = CString::new(json)
            .map_err(|_| Error::Internal("report JSON contains a NUL byte".into()))?;
        let location_names = report
            .findings
            .iter()
            .map(|f| {
                CString::new(f.location.name.as_str()).map_err(|_| {
                    Error::InvalidArgument(format!(
                        "location class name {:?} contains a NUL byte",
                        f.location.name
                    ))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let findings = report
            .findings
            .iter()
            .zip(&location_names)
            .map(|(f, name)| c_finding(f, name))
            .collect();
        let tnm = &report.staging;
        let category_ids = |category: MStage| {
            tnm.m_categories
                .iter()
                .find(|c| c.category == category)
                .map_or_else(Vec::new, |c| c.finding_ids.clone())
        };
        let role_ids = [
            tnm.t_findings.clone(),
            tnm.n_findings.clone(),
            category_ids(MStage::M1a),
            category_ids(MStage::M1b),
            category_ids(MStage::M1c),
        ];
        let b = &report.burden;
        let r = &report.references;
        let staging = UptakeStaging {
            mi_t: match tnm.t {
                TStage::T0 => UPTAKE_MIT_T0,
                TStage::TPlus => UPTAKE_MIT_TPLUS,
            },
            mi_n: match tnm.n {
                NStage::N0 => UPTAKE_MIN_N0,
                NStage::N1 => UPTAKE_MIN_N1,
                NStage::N2 => UPTAKE_MIN_N2,
            },
            mi_m: match tnm.m {
                MStage::M0 => UPTAKE_MIM_M0,
                MStage::M1a => UPTAKE_MIM_M1A,
                MStage::M1b => UPTAKE_MIM_M1B,
                MStage::M1c => UPTAKE_MIM_M1C,
            },
            bone_pattern: match tnm.bone_pattern {
                None => UPTAKE_BONE_NONE,
                Some(BonePattern::Unifocal) => UPTAKE_BONE_UNIFOCAL,
                Some(BonePattern::Oligometastatic) => UPTAKE_BONE_OLIGOMETASTATIC,
                Some(BonePattern::Disseminated) => UPTAKE_BONE_DISSEMINATED,
            },
            dmi: tnm.dmi as u32,
            suspicious_count: u32::try_from(b.suspicious_count)
                .map_err(|_| Error::Internal("more than 2^32 suspicious findings".into()))?,
            t_ids: ids_ptr(&role_ids[0]),
            t_count: role_ids[0].len(),
            n_ids: ids_ptr(&role_ids[1]),
            n_count: role_ids[1].len(),
            m1a_ids: ids_ptr(&role_ids[2]),
            m1a_count: role_ids[2].len(),
            m1b_ids: ids_ptr(&role_ids[3]),
            m1b_count: role_ids[3].len(),
            m1c_ids: ids_ptr(&role_ids[4]),
            m1c_count: role_ids[4].len(),
            tumour_volume_ml: b.tumour_volume_ml,
            total_lesion_uptake: b.total_lesion_uptake,
            suspicious_bone_volume_ml: b.suspicious_bone_volume_ml,
            skeleton_volume_ml: b.skeleton_volume_ml,
            blood_pool_suv: r.blood_pool_suv,
            liver_suv: r.liver_suv.unwrap_or(f64::NAN),
            parotid_suv: r.parotid_suv.unwrap_or(f64::NAN),
        };
        // Volume dims are each ≤ 2^31 (S1), so they fit u32.
        let label_map = report.label_map.map(|v| {
            let dims = v.dims().map(|d| d as u32);
            (v.into_data(), dims)
        });
        Ok(Self {
            findings,
            staging,
            json,
            label_map,
            _location_names: location_names,
            _role_ids: role_ids,
        })
    }
}

/// Turns a report into a C handle that the caller frees with `uptake_report_free`.
pub fn into_handle(report: Report) -> Result<*mut UptakeReport, Error> {
    let handle = Box::new(ReportHandle::new(report)?);
    Ok(Box::into_raw(handle) as *mut UptakeReport)
}

/// Borrows the handle behind a report pointer.
///
/// # Safety
/// `ptr` must be NULL or a live handle from [`into_handle`].
unsafe fn handle_ref<'a>(ptr: *const UptakeReport) -> Result<&'a ReportHandle, Error> {
    if ptr.is_null() {
        return Err(null("report"));
    }
    // SAFETY: a live handle is a Box<ReportHandle> turned into a raw pointer.
    Ok(unsafe { &*(ptr as *const ReportHandle) })
}

/// Writes the number of findings (all uptake regions, suspicious or not) to `*out_count`.
///
/// # Safety
/// `report` must be NULL or a live report; `out_count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_report_finding_count(
    report: *const UptakeReport,
    out_count: *mut usize,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let h = unsafe { handle_ref(report)? };
        if out_count.is_null() {
            return Err(null("out_count"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out_count.write_unaligned(h.findings.len()) };
        Ok(())
    })
}

/// Points `*out_findings` at the report's `*out_count` findings, sorted by `p_suspicious`
/// descending (ties: lower region id first). With no findings, `*out_findings` is NULL and
/// `*out_count` 0. The array is owned by the report and valid until `uptake_report_free`.
///
/// # Safety
/// `report` must be NULL or a live report; `out_findings` and `out_count` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_report_findings(
    report: *const UptakeReport,
    out_findings: *mut *const UptakeFinding,
    out_count: *mut usize,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let h = unsafe { handle_ref(report)? };
        if out_findings.is_null() {
            return Err(null("out_findings"));
        }
        if out_count.is_null() {
            return Err(null("out_count"));
        }
        let ptr = if h.findings.is_empty() {
            std::ptr::null()
        } else {
            h.findings.as_ptr()
        };
        // SAFETY: both non-NULL and writable by the caller's contract.
        unsafe {
            out_findings.write_unaligned(ptr);
            out_count.write_unaligned(h.findings.len());
        }
        Ok(())
    })
}

/// Points `*out_staging` at the report's miTNM stage, burden and reference values. Owned by
/// the report (as are the id arrays it points to) and valid until `uptake_report_free`.
///
/// # Safety
/// `report` must be NULL or a live report; `out_staging` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_report_staging(
    report: *const UptakeReport,
    out_staging: *mut *const UptakeStaging,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let h = unsafe { handle_ref(report)? };
        if out_staging.is_null() {
            return Err(null("out_staging"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out_staging.write_unaligned(&h.staging) };
        Ok(())
    })
}

/// Points `*out_json` at the whole report as NUL-terminated UTF-8 JSON (schema
/// `UPTAKE_REPORT_SCHEMA_VERSION`, without the label map). Owned by the report and valid until
/// `uptake_report_free`.
///
/// # Safety
/// `report` must be NULL or a live report; `out_json` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_report_json(
    report: *const UptakeReport,
    out_json: *mut *const c_char,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let h = unsafe { handle_ref(report)? };
        if out_json.is_null() {
            return Err(null("out_json"));
        }
        // SAFETY: non-NULL and writable by the caller's contract.
        unsafe { out_json.write_unaligned(h.json.as_ptr()) };
        Ok(())
    })
}

/// Points `*out_data` at the region label map: `dims[0]·dims[1]·dims[2]` labels on the PET grid
/// the study was given in (x fastest); 0 is background, any other value is the `region_id` of
/// a finding. Writes the dims to `out_dims[0..3]`. Owned by the report and valid until
/// `uptake_report_free`. Fails with `UPTAKE_ERR_INVALID_ARGUMENT` for a report without one.
///
/// # Safety
/// `report` must be NULL or a live report; `out_data` NULL or writable; `out_dims` NULL or
/// three writable `uint32_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_report_label_map(
    report: *const UptakeReport,
    out_data: *mut *const u32,
    out_dims: *mut u32,
) -> u32 {
    guard(|| {
        // SAFETY: per the function's contract.
        let h = unsafe { handle_ref(report)? };
        if out_data.is_null() {
            return Err(null("out_data"));
        }
        if out_dims.is_null() {
            return Err(null("out_dims"));
        }
        let (data, dims) = h
            .label_map
            .as_ref()
            .ok_or_else(|| Error::InvalidArgument("this report carries no label map".into()))?;
        // SAFETY: non-NULL and writable (three values for out_dims) by the caller's contract.
        unsafe {
            out_data.write_unaligned(data.as_ptr());
            for (i, &d) in dims.iter().enumerate() {
                out_dims.add(i).write_unaligned(d);
            }
        }
        Ok(())
    })
}

/// Frees a report and everything its accessors handed out. NULL is a no-op.
///
/// # Safety
/// `report` must be NULL or a report not yet freed.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_report_free(report: *mut UptakeReport) {
    guard_void(|| {
        if !report.is_null() {
            // SAFETY: the handle came from Box::into_raw in into_handle.
            drop(unsafe { Box::from_raw(report as *mut ReportHandle) });
        }
    })
}

#[cfg(test)]
mod tests {
    use std::ffi::CStr;

    use super::*;
    use crate::classes::{v1_classes, v1_id};
    use crate::ffi::{UPTAKE_ERR_INVALID_ARGUMENT, UPTAKE_OK};
    use crate::regions::Region;
    use crate::report::{CtCoverage, ModelInfo, RunInfo};
    use crate::staging::{FindingInput, StagingConfig, stage};
    use crate::tracer::Tracer;
    use crate::volume::{Geometry, Volume};

    fn input(id: u32, class: &str, p: f32, suv_max: f64) -> FindingInput {
        let mut location_probs = vec![0.01f32; 23];
        location_probs[v1_id(class).unwrap() as usize] = 0.6;
        location_probs[0] = 0.2;
        FindingInput {
            region: Region {
                id,
                voxel_count: 10 * u64::from(id),
                volume_ml: 0.5 * id as f64,
                suv_max: suv_max as f32,
                max_voxel: [1, 2, 3],
                max_lps: [-1.5, 2.5, 30.0 + id as f64],
                suv_mean: suv_max / 2.0,
                suv_peak: suv_max * 0.75,
                total_uptake: suv_max / 2.0 * 0.5 * id as f64,
                bbox_min: [0, 0, 0],
                bbox_max: [3, 3, 3],
            },
            p_suspicious: p,
            location_probs,
        }
    }

    fn report(findings: &[FindingInput]) -> Report {
        let staging = stage(findings, &v1_classes(), 2000.0, &StagingConfig::default()).unwrap();
        let g = Geometry::axis_aligned([3, 2, 2], [4.0, 4.0, 3.0], [0.0; 3]).unwrap();
        let labels = Volume::new(g, (0..12).map(|i| i % 5).collect()).unwrap();
        Report::new(
            staging,
            labels,
            RunInfo {
                tracer: Tracer::Psma,
                model: ModelInfo {
                    id: "m".into(),
                    trained: true,
                },
                device: "cpu".into(),
                ct_coverage: CtCoverage {
                    axial: 1.0,
                    voxels: 1.0,
                },
                timings: vec![],
            },
        )
    }

    fn study() -> Report {
        report(&[
            input(1, "prostate", 0.9, 20.0),
            input(2, "ln_pelvic", 0.7, 6.0),
            input(3, "bone", 0.95, 3.0),
            input(4, "bone", 0.6, 1.0),
            input(5, "liver", 0.1, 8.0),
            input(6, "ln_inguinal", 0.8, 5.0),
        ])
    }

    /// The id array of a staging field as a slice.
    fn ids(ptr: *const u32, n: usize) -> Vec<u32> {
        if n == 0 {
            assert!(ptr.is_null());
            return vec![];
        }
        // SAFETY: the report guarantees `n` ids at a non-NULL `ptr` while it lives.
        unsafe { std::slice::from_raw_parts(ptr, n) }.to_vec()
    }

    #[test]
    fn accessors_mirror_the_report() {
        let rust = study();
        let handle = into_handle(rust.clone()).unwrap();
        let mut count = 0usize;
        // SAFETY: live handle, writable out-pointers in every call below.
        unsafe {
            assert_eq!(uptake_report_finding_count(handle, &mut count), UPTAKE_OK);
            assert_eq!(count, 6);
            let mut findings: *const UptakeFinding = std::ptr::null();
            let mut n = 0usize;
            assert_eq!(
                uptake_report_findings(handle, &mut findings, &mut n),
                UPTAKE_OK
            );
            let c = std::slice::from_raw_parts(findings, n);
            for (cf, f) in c.iter().zip(&rust.findings) {
                assert_eq!(cf.region_id, f.region.id);
                assert_eq!(cf.suspicious, f.suspicious as u32);
                assert_eq!(cf.voxel_count, f.region.voxel_count);
                assert_eq!(
                    [
                        cf.volume_ml,
                        cf.suv_max,
                        cf.suv_mean,
                        cf.suv_peak,
                        cf.total_uptake
                    ],
                    [
                        f.region.volume_ml,
                        f64::from(f.region.suv_max),
                        f.region.suv_mean,
                        f.region.suv_peak,
                        f.region.total_uptake
                    ]
                );
                assert_eq!(cf.max_lps, f.region.max_lps);
                assert_eq!(cf.p_suspicious, f.p_suspicious);
                assert_eq!(cf.location_id, f.location.id);
                assert_eq!(cf.location_prob, f.location.probability);
                assert_eq!(cf.top3_ids, f.top3.each_ref().map(|p| p.id));
                assert_eq!(cf.top3_probs, f.top3.each_ref().map(|p| p.probability));
                let name = CStr::from_ptr(cf.location_name).to_str().unwrap();
                assert_eq!(name, f.location.name);
            }
            // Sorted by p: 3 (bone 0.95), 1 (prostate), 6, 2, 4, 5 (liver, not suspicious).
            let summary: Vec<(u32, u32, u32)> = c
                .iter()
                .map(|f| (f.region_id, f.role, f.expression_score))
                .collect();
            // Liver reference 4.0 (SUVmean of region 5), no parotid: scores capped at 2.
            assert_eq!(
                summary,
                vec![
                    (3, UPTAKE_ROLE_M1B, 1),
                    (1, UPTAKE_ROLE_T, 2),
                    (6, UPTAKE_ROLE_M1A, 2),
                    (2, UPTAKE_ROLE_N, 2),
                    (4, UPTAKE_ROLE_M1B, 0),
                    (5, UPTAKE_ROLE_NONE, UPTAKE_EXPRESSION_SCORE_NONE),
                ]
            );
            assert_eq!(c[0].top3_ids, [21, 0, 1]);

            let mut st: *const UptakeStaging = std::ptr::null();
            assert_eq!(uptake_report_staging(handle, &mut st), UPTAKE_OK);
            let st = &*st;
            assert_eq!(
                (st.mi_t, st.mi_n, st.mi_m, st.bone_pattern, st.dmi),
                (
                    UPTAKE_MIT_TPLUS,
                    UPTAKE_MIN_N1,
                    UPTAKE_MIM_M1B,
                    UPTAKE_BONE_OLIGOMETASTATIC,
                    0
                )
            );
            assert_eq!(st.suspicious_count, 5);
            assert_eq!(ids(st.t_ids, st.t_count), vec![1]);
            assert_eq!(ids(st.n_ids, st.n_count), vec![2]);
            assert_eq!(ids(st.m1a_ids, st.m1a_count), vec![6]);
            assert_eq!(ids(st.m1b_ids, st.m1b_count), vec![3, 4]);
            assert_eq!(ids(st.m1c_ids, st.m1c_count), Vec::<u32>::new());
            let b = &rust.burden;
            assert_eq!(st.tumour_volume_ml, b.tumour_volume_ml);
            assert_eq!(st.total_lesion_uptake, b.total_lesion_uptake);
            assert_eq!(st.suspicious_bone_volume_ml, 0.5 * 3.0 + 0.5 * 4.0);
            assert_eq!(st.skeleton_volume_ml, 2000.0);
            assert_eq!(st.blood_pool_suv, 1.5);
            assert_eq!(st.liver_suv, 4.0);
            assert!(st.parotid_suv.is_nan());

            let mut json: *const c_char = std::ptr::null();
            assert_eq!(uptake_report_json(handle, &mut json), UPTAKE_OK);
            let json = CStr::from_ptr(json).to_str().unwrap();
            assert_eq!(json, rust.to_json().unwrap());
            let back: Report = serde_json::from_str(json).unwrap();
            assert_eq!(back.schema_version, UPTAKE_REPORT_SCHEMA_VERSION);

            let mut data: *const u32 = std::ptr::null();
            let mut dims = [0u32; 3];
            assert_eq!(
                uptake_report_label_map(handle, &mut data, dims.as_mut_ptr()),
                UPTAKE_OK
            );
            assert_eq!(dims, [3, 2, 2]);
            let labels = std::slice::from_raw_parts(data, 12);
            assert_eq!(labels, rust.label_map.as_ref().unwrap().data());

            uptake_report_free(handle);
        }
    }

    #[test]
    fn every_accessor_rejects_null_arguments() {
        let handle = into_handle(study()).unwrap();
        let null_report = std::ptr::null::<UptakeReport>();
        let mut n = 0usize;
        let mut findings: *const UptakeFinding = std::ptr::null();
        let mut st: *const UptakeStaging = std::ptr::null();
        let mut json: *const c_char = std::ptr::null();
        let mut data: *const u32 = std::ptr::null();
        let mut dims = [0u32; 3];
        // SAFETY: NULL arguments are what is tested; the others are live and writable.
        unsafe {
            let bad = [
                uptake_report_finding_count(null_report, &mut n),
                uptake_report_finding_count(handle, std::ptr::null_mut()),
                uptake_report_findings(null_report, &mut findings, &mut n),
                uptake_report_findings(handle, std::ptr::null_mut(), &mut n),
                uptake_report_findings(handle, &mut findings, std::ptr::null_mut()),
                uptake_report_staging(null_report, &mut st),
                uptake_report_staging(handle, std::ptr::null_mut()),
                uptake_report_json(null_report, &mut json),
                uptake_report_json(handle, std::ptr::null_mut()),
                uptake_report_label_map(null_report, &mut data, dims.as_mut_ptr()),
                uptake_report_label_map(handle, std::ptr::null_mut(), dims.as_mut_ptr()),
                uptake_report_label_map(handle, &mut data, std::ptr::null_mut()),
            ];
            assert_eq!(bad, [UPTAKE_ERR_INVALID_ARGUMENT; 12]);
            let msg = CStr::from_ptr(crate::ffi::uptake_last_error());
            assert_eq!(msg.to_str().unwrap(), "invalid argument: out_dims is NULL");
            uptake_report_free(handle);
            uptake_report_free(std::ptr::null_mut());
        }
    }

    #[test]
    fn empty_report_and_report_without_label_map() {
        let mut rust = report(&[]);
        rust.label_map = None;
        let handle = into_handle(rust).unwrap();
        let mut findings: *const UptakeFinding = std::ptr::dangling();
        let mut n = 99usize;
        let mut st: *const UptakeStaging = std::ptr::null();
        let mut data: *const u32 = std::ptr::null();
        let mut dims = [0u32; 3];
        // SAFETY: live handle and writable out-pointers.
        unsafe {
            assert_eq!(
                uptake_report_findings(handle, &mut findings, &mut n),
                UPTAKE_OK
            );
            assert!(findings.is_null());
            assert_eq!(n, 0);
            assert_eq!(uptake_report_staging(handle, &mut st), UPTAKE_OK);
            let st = &*st;
            assert_eq!(
                (st.mi_t, st.mi_n, st.mi_m, st.bone_pattern),
                (
                    UPTAKE_MIT_T0,
                    UPTAKE_MIN_N0,
                    UPTAKE_MIM_M0,
                    UPTAKE_BONE_NONE
                )
            );
            assert!(st.t_ids.is_null() && st.m1c_ids.is_null());
            assert!(st.liver_suv.is_nan());
            assert_eq!(
                uptake_report_label_map(handle, &mut data, dims.as_mut_ptr()),
                UPTAKE_ERR_INVALID_ARGUMENT
            );
            let msg = CStr::from_ptr(crate::ffi::uptake_last_error());
            assert_eq!(
                msg.to_str().unwrap(),
                "invalid argument: this report carries no label map"
            );
            uptake_report_free(handle);
        }
    }

    #[test]
    fn class_name_with_nul_is_rejected() {
        let mut rust = study();
        rust.findings[0].location.name = "bo\0ne".into();
        assert!(matches!(into_handle(rust), Err(Error::InvalidArgument(_))));
    }

    #[test]
    fn header_constants_match_the_library() {
        let header = include_str!("../../include/uptake.h");
        let define = |name: &str| -> u64 {
            let prefix = format!("#define {name} ");
            let line = header
                .lines()
                .find_map(|l| l.strip_prefix(prefix.as_str()))
                .unwrap_or_else(|| panic!("{name} missing from include/uptake.h"));
            line.trim().parse().unwrap()
        };
        assert_eq!(
            define("UPTAKE_REPORT_SCHEMA_VERSION"),
            crate::report::SCHEMA_VERSION as u64
        );
        assert_eq!(UPTAKE_REPORT_SCHEMA_VERSION, crate::report::SCHEMA_VERSION);
        assert_eq!(define("UPTAKE_EXPRESSION_SCORE_NONE"), u32::MAX as u64);
        assert_eq!(define("UPTAKE_ROLE_M1C"), UPTAKE_ROLE_M1C as u64);
        assert_eq!(define("UPTAKE_MIM_M1C"), UPTAKE_MIM_M1C as u64);
    }
}
