//! `uptake suv`: the SUVbw factor of a PET DICOM series (or of its attributes as JSON), and the
//! series in SUV as NIfTI.

use std::path::PathBuf;

use uptake::dicom::read_pet_series_uid;
use uptake::suv::{SuvMetadata, suvbw_factor};
use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// A folder holding one PET DICOM series, or a JSON file with the SUV attributes
    /// (the fields of `SuvMetadata`, as printed under "metadata").
    input: PathBuf,
    /// SeriesInstanceUID to read when the folder holds several series.
    #[arg(long)]
    series: Option<String>,
    /// Write the PET in SUV (g/mL) as NIfTI here (.nii or .nii.gz).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write the rescaled pixel values (Bq/mL for Units BQML) as NIfTI here.
    #[arg(long)]
    out_bqml: Option<PathBuf>,
}

/// Prints a JSON object: `factor` (g/mL per Bq/mL), the `metadata` used and, for a series, its
/// UID, dims, spacing and origin (LPS).
pub fn run(args: Args) -> CliResult {
    if args.input.is_file() {
        if args.out.is_some() || args.out_bqml.is_some() {
            return Err("--out and --out-bqml need a DICOM folder, not a JSON file".into());
        }
        let text = std::fs::read_to_string(&args.input)?;
        let metadata: SuvMetadata =
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", args.input.display()))?;
        let factor = suvbw_factor(&metadata)?;
        let report = serde_json::json!({ "factor": factor, "metadata": metadata });
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
        return Ok(());
    }
    let series = read_pet_series_uid(&args.input, args.series.as_deref())?;
    let factor = series.suv_factor()?;
    let g = series.volume.geometry();
    let report = serde_json::json!({
        "factor": factor,
        "series_instance_uid": series.series_instance_uid,
        "dims": g.dims(),
        "spacing_mm": g.spacing_mm(),
        "origin_lps_mm": g.origin_mm(),
        "orientation": g.orientation_code(),
        "metadata": series.metadata,
    });
    if let Some(path) = &args.out {
        nifti::write(path, &series.to_suv()?)?;
    }
    if let Some(path) = &args.out_bqml {
        nifti::write(path, &series.volume)?;
    }
    outln!("{}", serde_json::to_string_pretty(&report)?)?;
    Ok(())
}
