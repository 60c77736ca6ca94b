//! `uptake info`: what a NIfTI file holds, in patient LPS terms.

use std::path::PathBuf;

use serde::Serialize;
use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// A .nii or .nii.gz file (NIfTI-1 or NIfTI-2).
    file: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Also print the LPS position (mm) of voxel "i,j,k" (fractional indices allowed; repeatable).
    #[arg(long = "voxel", value_name = "I,J,K", value_parser = parse_ijk)]
    voxels: Vec<[f64; 3]>,
}

fn parse_ijk(s: &str) -> Result<[f64; 3], String> {
    let parts: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>().map_err(|e| format!("{p:?}: {e}")))
        .collect::<Result<_, _>>()?;
    <[f64; 3]>::try_from(parts).map_err(|_| format!("{s:?}: expected three numbers i,j,k"))
}

#[derive(Serialize)]
struct Info {
    nifti_version: u8,
    datatype: i16,
    dims: [usize; 3],
    frames: usize,
    spacing_mm: [f64; 3],
    origin_mm: [f64; 3],
    direction: [[f64; 3]; 3],
    orientation: String,
    affine_source: &'static str,
    affine_lps: [[f64; 4]; 4],
    value_range: Option<(f32, f32)>,
    non_finite: usize,
    positions_lps: Vec<[f64; 3]>,
}

pub fn run(args: Args) -> CliResult {
    let img = nifti::read(&args.file)?;
    let g = &img.geometry;
    let range = img
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f32, f32)>, &v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        });
    let info = Info {
        nifti_version: img.nifti_version,
        datatype: img.datatype,
        dims: g.dims(),
        frames: img.frames,
        spacing_mm: g.spacing_mm(),
        origin_mm: g.origin_mm(),
        direction: g.direction(),
        orientation: g.orientation_code(),
        affine_source: img.affine_source,
        affine_lps: img.affine_lps,
        value_range: range,
        non_finite: img.data.iter().filter(|v| !v.is_finite()).count(),
        positions_lps: args.voxels.iter().map(|&v| g.voxel_to_patient(v)).collect(),
    };
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&info)?)?;
        return Ok(());
    }
    let [nx, ny, nz] = info.dims;
    let (s, o) = (info.spacing_mm, info.origin_mm);
    outln!("file         {}", args.file.display())?;
    outln!(
        "format       NIfTI-{} (data type code {})",
        info.nifti_version,
        info.datatype
    )?;
    let frames = if info.frames > 1 {
        format!(" × {} frames", info.frames)
    } else {
        String::new()
    };
    outln!("dims         {nx} × {ny} × {nz}{frames}")?;
    outln!("spacing      {:.4} × {:.4} × {:.4} mm", s[0], s[1], s[2])?;
    outln!(
        "orientation  {} (affine from {})",
        info.orientation,
        info.affine_source
    )?;
    outln!("origin LPS   ({:.3}, {:.3}, {:.3}) mm", o[0], o[1], o[2])?;
    match info.value_range {
        Some((lo, hi)) => outln!("values       {lo} … {hi}")?,
        None => outln!("values       none finite")?,
    }
    if info.non_finite > 0 {
        outln!("non-finite   {} voxels (NaN or ±Inf)", info.non_finite)?;
    }
    for (ijk, p) in args.voxels.iter().zip(&info.positions_lps) {
        outln!(
            "voxel {ijk:?} → LPS ({:.4}, {:.4}, {:.4}) mm",
            p[0],
            p[1],
            p[2]
        )?;
    }
    Ok(())
}
