//! `uptake info`: what a NIfTI file holds, in patient LPS terms.

use std::path::PathBuf;

use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// A .nii or .nii.gz file (NIfTI-1 or NIfTI-2).
    file: PathBuf,
}

pub fn run(args: Args) -> CliResult {
    let img = nifti::read(&args.file)?;
    let g = &img.geometry;
    let [nx, ny, nz] = g.dims();
    let s = g.spacing_mm();
    let o = g.origin_mm();
    println!("file         {}", args.file.display());
    println!(
        "format       NIfTI-{} (data type code {})",
        img.nifti_version, img.datatype
    );
    println!(
        "dims         {nx} × {ny} × {nz}{}",
        if img.frames > 1 {
            format!(" × {} frames", img.frames)
        } else {
            String::new()
        }
    );
    println!("spacing      {:.4} × {:.4} × {:.4} mm", s[0], s[1], s[2]);
    println!(
        "orientation  {} (affine from {})",
        g.orientation_code(),
        img.affine_source
    );
    println!("origin LPS   ({:.3}, {:.3}, {:.3}) mm", o[0], o[1], o[2]);
    let far = g.voxel_to_patient([(nx - 1) as f64, (ny - 1) as f64, (nz - 1) as f64]);
    println!(
        "last voxel   ({:.3}, {:.3}, {:.3}) mm",
        far[0], far[1], far[2]
    );
    let non_finite = img.data.iter().filter(|v| !v.is_finite()).count();
    match img
        .data
        .iter()
        .filter(|v| v.is_finite())
        .fold(None, |acc: Option<(f32, f32)>, &v| {
            Some(acc.map_or((v, v), |(lo, hi)| (lo.min(v), hi.max(v))))
        }) {
        Some((lo, hi)) => println!("values       {lo} … {hi}"),
        None => println!("values       none finite"),
    }
    if non_finite > 0 {
        println!("non-finite   {non_finite} voxels (NaN or ±Inf)");
    }
    Ok(())
}
