//! `uptake hybrid`: a real CT plus a TotalSegmentator label map as a PET/CT study in the
//! training layout, with a synthesised PET and seeded lesions (docs/hybrid.md). Test anatomy
//! only: its `study.json` carries `"hybrid": true`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use uptake::tracer::Tracer;
use uptake::volume::nifti;
use uptake_phantom::hybrid::{self, HybridSpec};

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Real CT in HU (.nii or .nii.gz); the PET is synthesised on its grid.
    #[arg(long)]
    ct: PathBuf,
    /// TotalSegmentator-style label map sharing the CT's in-plane grid.
    #[arg(long)]
    seg: PathBuf,
    /// JSON map of label value → class name (`{"classes": {"1": "spleen", …}}`).
    #[arg(long)]
    classes: PathBuf,
    /// CT slice that the segmentation's slice 0 lies at (the TotalSegmentator example needs 82).
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    seg_slice_offset: i64,
    /// Tracer: psma (68Ga-PSMA-11) or fdg (18F-FDG).
    #[arg(long, default_value = "psma")]
    tracer: Tracer,
    /// Seed of the uptake draws, lesions and noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output study folder.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    super::prepare_output_folder(&args.out)?;
    let start = Instant::now();
    let ct = nifti::read_volume(&args.ct)?;
    let seg = nifti::read_volume(&args.seg)?;
    let text = std::fs::read_to_string(&args.classes)
        .map_err(|e| format!("cannot read {}: {e}", args.classes.display()))?;
    let classes = hybrid::parse_classes(&text)?;
    let spec = HybridSpec {
        tracer: args.tracer,
        seed: args.seed,
        seg_slice_offset: args.seg_slice_offset,
    };
    let study = hybrid::generate(&ct, &seg, &classes, &spec)?;
    study.write(&args.out)?;
    let info = &study.info;
    let g = study.pet.geometry();
    let mut by_role: BTreeMap<String, usize> = BTreeMap::new();
    for l in &info.lesions {
        *by_role.entry(format!("{:?}", l.role)).or_default() += 1;
    }
    outln!(
        "{}: {} lesions ({}), stage {} {}; PET grid {:?} at {:?} mm (the CT's grid); {:.1} s",
        info.subject,
        info.lesions.len(),
        by_role
            .iter()
            .map(|(r, n)| format!("{r} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        info.stage.get("n").map_or("", |s| s.as_str()),
        info.stage.get("m").map_or("", |s| s.as_str()),
        g.dims(),
        g.spacing_mm(),
        start.elapsed().as_secs_f64()
    )?;
    for l in &info.lesions {
        outln!(
            "  lesion {}: {} ({:?}) in {} r {:.1} mm at LPS ({:.1}, {:.1}, {:.1}), SUVmax target {:.1}",
            l.id,
            l.class_name,
            l.role,
            l.host_source,
            l.radius_mm,
            l.centre_lps[0],
            l.centre_lps[1],
            l.centre_lps[2],
            l.target_suv_max
        )?;
    }
    Ok(())
}
