//! The analysis report (DESIGN S9): findings, miTNM staging, burden, reference values, the label
//! map and how the analysis ran. Serialised as versioned JSON (docs/report-schema.md) for the CLI;
//! the C ABI exposes it as flat structs (`crate::ffi::report`).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::findings::Finding;
use crate::staging::{Burden, MiTnm, References, Staging, StagingConfig, role_name};
use crate::tracer::Tracer;
use crate::volume::Volume;

/// The model that classified the findings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    /// False for a model with untrained (e.g. random) weights: its output means nothing.
    pub trained: bool,
}

/// Wall time of one pipeline stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageTiming {
    pub stage: String,
    pub ms: f64,
}

/// How much of the PET's field of view the CT covers (the rest is read as air, −1000 HU).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CtCoverage {
    /// Share of the PET's extent along patient z (superior–inferior), in [0, 1].
    pub axial: f64,
    /// Share of the common 3 mm grid's voxels that lie inside the CT, in (0, 1].
    pub voxels: f64,
}

/// How the analysis ran: everything in the report that does not come from staging.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInfo {
    pub tracer: Tracer,
    pub model: ModelInfo,
    /// The device the heavy stages ran on ("cpu" or "cuda").
    pub device: String,
    pub ct_coverage: CtCoverage,
    pub timings: Vec<StageTiming>,
}

/// The report of one study.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Version of the JSON schema (docs/report-schema.md) the report follows.
    pub schema_version: u32,
    pub tracer: Tracer,
    pub model: ModelInfo,
    pub device: String,
    pub ct_coverage: CtCoverage,
    /// The staging settings the findings were read with.
    pub staging_config: StagingConfig,
    /// Sorted by `p_suspicious` descending (ties: lower region id first).
    pub findings: Vec<Finding>,
    pub staging: MiTnm,
    pub burden: Burden,
    pub references: References,
    pub timings: Vec<StageTiming>,
    /// Region labels (u32 per voxel, 0 = none) on the native PET grid; finding `region.id`s are
    /// its labels. Not part of the JSON (the CLI writes it as NIfTI), so `None` for a report
    /// read back from JSON.
    #[serde(skip)]
    pub label_map: Option<Volume<u32>>,
    /// Sub-region labels (`regions::subregions`) on the same grid: a finding whose `source` is
    /// `subregion` is the voxels of this map carrying its `region.id` (they also carry its
    /// parent's id in `label_map`). `None` when the analysis proposed no sub-regions (switched
    /// off) and for a report read back from JSON.
    #[serde(skip)]
    pub subregion_map: Option<Volume<u32>>,
}

/// Version of the JSON schema in docs/report-schema.md; bumped on any incompatible change.
/// The C header carries it as `UPTAKE_REPORT_SCHEMA_VERSION`.
pub(crate) const SCHEMA_VERSION: u32 = 2;

impl Report {
    /// Assembles the report from the staging result, the region label map and the run details.
    pub fn new(staging: Staging, label_map: Volume<u32>, run: RunInfo) -> Self {
        let mut findings = staging.findings;
        findings.sort_by(|a, b| {
            b.p_suspicious
                .total_cmp(&a.p_suspicious)
                .then(a.region.id.cmp(&b.region.id))
        });
        Self {
            schema_version: SCHEMA_VERSION,
            tracer: run.tracer,
            model: run.model,
            device: run.device,
            ct_coverage: run.ct_coverage,
            staging_config: staging.config,
            findings,
            staging: staging.tnm,
            burden: staging.burden,
            references: staging.references,
            timings: run.timings,
            label_map: Some(label_map),
            subregion_map: None,
        }
    }

    /// The report as pretty-printed JSON (docs/report-schema.md).
    pub fn to_json(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string_pretty(self)
    }

    /// A human-readable summary for a terminal: run details, the miTNM line, burden, reference
    /// values and one row per suspicious finding followed by one line on the other regions, or,
    /// with `all_regions`, one row per region.
    pub fn summary_table(&self, all_regions: bool) -> String {
        let mut s = String::new();
        let trained = if self.model.trained {
            "trained"
        } else {
            "UNTRAINED: results are not meaningful"
        };
        let _ = writeln!(
            s,
            "tracer {}, model {} ({trained}), device {}",
            self.tracer.name(),
            self.model.id,
            self.device
        );
        let _ = writeln!(s, "{}", self.staging.line());
        let b = &self.burden;
        let _ = writeln!(
            s,
            "burden: {} suspicious (T {}, N {}, M1a {}, M1b {}, M1c {}); tumour volume {:.2} mL; \
             total lesion uptake {:.2} SUV·mL",
            b.suspicious_count,
            b.role_counts.t,
            b.role_counts.n,
            b.role_counts.m1a,
            b.role_counts.m1b,
            b.role_counts.m1c,
            b.tumour_volume_ml,
            b.total_lesion_uptake
        );
        let r = &self.references;
        let reference = |v: Option<f64>| v.map_or("not found".to_string(), |v| format!("{v:.2}"));
        let _ = writeln!(
            s,
            "references (SUVmean): blood pool {:.2} (configured), liver {}, parotid {}",
            r.blood_pool_suv,
            reference(r.liver_suv),
            reference(r.parotid_suv)
        );
        if !self.timings.is_empty() {
            let t: Vec<String> = self
                .timings
                .iter()
                .map(|t| format!("{} {:.1} ms", t.stage, t.ms))
                .collect();
            let _ = writeln!(s, "timings: {}", t.join(", "));
        }
        let _ = writeln!(
            s,
            "{:>6} {:>6} {:>4} {:<22} {:>5} {:>4} {:>7} {:>7} {:>7} {:>9} {:>6}",
            "region",
            "p",
            "susp",
            "location",
            "prob",
            "role",
            "SUVmax",
            "SUVmean",
            "SUVpeak",
            "volume_mL",
            "miPSMA"
        );
        for f in self.findings.iter().filter(|f| all_regions || f.suspicious) {
            let role = f.role.map_or("-", role_name);
            let score = f
                .expression_score
                .map_or("-".to_string(), |v| v.to_string());
            let _ = writeln!(
                s,
                "{:>6} {:>6.3} {:>4} {:<22} {:>5.2} {:>4} {:>7.2} {:>7.2} {:>7.2} {:>9.2} {:>6}",
                f.region.id,
                f.p_suspicious,
                if f.suspicious { "yes" } else { "no" },
                f.location.name,
                f.location.probability,
                role,
                f.region.suv_max,
                f.region.suv_mean,
                f.region.suv_peak,
                f.region.volume_ml,
                score
            );
        }
        let others: Vec<&Finding> = self.findings.iter().filter(|f| !f.suspicious).collect();
        if !all_regions && !others.is_empty() {
            let top = others
                .iter()
                .max_by(|a, b| a.region.suv_max.total_cmp(&b.region.suv_max))
                .map(|f| format!("{:.2} ({})", f.region.suv_max, f.location.name))
                .unwrap_or_default();
            let _ = writeln!(
                s,
                "{} other regions not suspicious; highest SUVmax among them {top}",
                others.len()
            );
        }
        s
    }
}
