//! `uptake resample`: a NIfTI volume onto the common 3 mm LPS grid (S3), or onto another grid.

use std::path::PathBuf;
use std::time::Instant;

use uptake::grid::{covering_grid, resample};
use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Input volume (.nii or .nii.gz).
    input: PathBuf,
    /// Output volume (.nii or .nii.gz), float32.
    output: PathBuf,
    /// Value outside the input's field of view: 0 for PET (SUV), -1000 for CT (HU); "nan" marks
    /// where the input does not reach.
    #[arg(long, default_value_t = 0.0, allow_hyphen_values = true)]
    outside: f32,
    /// Resample onto exactly this volume's grid instead.
    #[arg(long, conflicts_with_all = ["grid_of", "spacing"])]
    like: Option<PathBuf>,
    /// Lay the grid over this volume's field of view (the PET, when resampling a CT) instead
    /// of the input's.
    #[arg(long)]
    grid_of: Option<PathBuf>,
    /// Voxel size of the axis-aligned grid in mm.
    #[arg(long)]
    spacing: Option<f64>,
    /// Resample this many times and report the fastest (benchmarks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Print the resampling time (without file I/O) to stderr as `resample_ms=…`.
    #[arg(long)]
    timings: bool,
}

pub fn run(args: Args) -> CliResult {
    let src = nifti::read_volume(&args.input)?;
    let target = match (&args.like, &args.grid_of) {
        (Some(like), _) => nifti::read(like)?.geometry,
        (None, Some(of)) => covering_grid(&nifti::read(of)?.geometry, args.spacing.unwrap_or(3.0))?,
        (None, None) => covering_grid(src.geometry(), args.spacing.unwrap_or(3.0))?,
    };
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..args.repeat {
        let t = Instant::now();
        let v = resample(&src, &target, args.outside)?;
        best = best.min(t.elapsed().as_secs_f64() * 1e3);
        out = Some(v);
    }
    if args.timings {
        eprintln!("resample_ms={best:.3}");
    }
    if let Some(v) = out {
        nifti::write(&args.output, &v)?;
    }
    Ok(())
}
