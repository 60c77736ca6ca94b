//! `uptake regions`: S4 uptake regions of PET volumes in SUV, as a label map and JSON.
//!
//! Several studies can be processed in one call by repeating `--pet` (and `--out` / `--json`
//! in the same order); they share the parameters.

use std::path::{Path, PathBuf};

use serde::Serialize;
use uptake::regions::{self, Connectivity, Region, RegionParams, Sweep};
use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// PET volume in SUV (.nii or .nii.gz); repeat for several volumes.
    #[arg(long, required = true)]
    pet: Vec<PathBuf>,
    /// Label map to write (u32, 0 = no region, else the region id); one per --pet.
    #[arg(long)]
    out: Vec<PathBuf>,
    /// Region statistics to write as JSON; one per --pet.
    #[arg(long)]
    json: Vec<PathBuf>,
    /// Neighbourhood: 6 (faces), 18 (+ edges) or 26 (+ corners).
    #[arg(long, default_value_t = 26, value_parser = parse_connectivity)]
    connectivity: u32,
    /// Fraction of a region's SUVmax that its voxels reach.
    #[arg(long, default_value_t = RegionParams::default().fraction)]
    fraction: f32,
    /// A region starts only at a voxel whose SUV exceeds this.
    #[arg(long = "seed-min", default_value_t = RegionParams::default().seed_min_suv)]
    seed_min: f32,
    /// Which of S4's two sweeps to run: both give identical results (chosen by the share of
    /// candidate voxels unless given; for checking one against the other).
    #[arg(long, value_enum, default_value_t = SweepArg::Auto)]
    sweep: SweepArg,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum SweepArg {
    Auto,
    Direct,
    Compact,
}

impl From<SweepArg> for Sweep {
    fn from(sweep: SweepArg) -> Self {
        match sweep {
            SweepArg::Auto => Sweep::Automatic,
            SweepArg::Direct => Sweep::Direct,
            SweepArg::Compact => Sweep::Compact,
        }
    }
}

fn parse_connectivity(s: &str) -> Result<u32, String> {
    let n: u32 = s.parse().map_err(|e| format!("{e}"))?;
    Connectivity::from_neighbours(n)
        .map(|_| n)
        .ok_or_else(|| format!("{n} is not one of 6, 18, 26"))
}

#[derive(Serialize)]
struct Output<'a> {
    pet: &'a Path,
    dims: [usize; 3],
    spacing_mm: [f64; 3],
    params: &'a RegionParams,
    regions: &'a [Region],
}

pub fn run(args: Args) -> CliResult {
    for (name, paths) in [("--out", &args.out), ("--json", &args.json)] {
        if !paths.is_empty() && paths.len() != args.pet.len() {
            return Err(format!(
                "{} {name} paths for {} --pet volumes; give one per volume",
                paths.len(),
                args.pet.len()
            )
            .into());
        }
    }
    let params = RegionParams {
        fraction: args.fraction,
        seed_min_suv: args.seed_min,
        connectivity: Connectivity::from_neighbours(args.connectivity)
            .ok_or("connectivity must be 6, 18 or 26")?,
    };
    for (i, pet_path) in args.pet.iter().enumerate() {
        let pet = nifti::read_volume(pet_path)?;
        let segmentation = regions::segment_with(&pet, &params, args.sweep.into())
            .map_err(|e| format!("{}: {e}", pet_path.display()))?;
        if let Some(out) = args.out.get(i) {
            nifti::write(out, &segmentation.labels)?;
        }
        if let Some(json) = args.json.get(i) {
            let output = Output {
                pet: pet_path,
                dims: pet.dims(),
                spacing_mm: pet.geometry().spacing_mm(),
                params: &params,
                regions: &segmentation.regions,
            };
            std::fs::write(json, serde_json::to_string_pretty(&output)?)
                .map_err(|e| format!("{}: {e}", json.display()))?;
        }
        outln!(
            "{}: {} regions",
            pet_path.display(),
            segmentation.regions.len()
        )?;
    }
    Ok(())
}
