//! `uptake convert`: rewrite one frame of a NIfTI file, or a DICOM series, as float32 NIfTI-1,
//! as uptake reads it.

use std::path::PathBuf;

use uptake::dicom::{self, Modality};
use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Input .nii or .nii.gz (NIfTI-1 or NIfTI-2, any supported data type), or a folder with a
    /// PET (PT) or CT DICOM series.
    input: PathBuf,
    /// Output .nii or .nii.gz (float32, scaling applied, sform and qform set). A PET series is
    /// written in its rescaled units (Bq/mL for Units BQML; `uptake suv --out` writes SUV), a CT
    /// series in HU.
    output: PathBuf,
    /// Frame of a 4-D input to write.
    #[arg(long, default_value_t = 0)]
    frame: usize,
    /// SeriesInstanceUID of the DICOM series when the folder holds several.
    #[arg(long, value_name = "UID")]
    series: Option<String>,
    /// Modality of the DICOM series to read (pt or ct) when the folder holds both.
    #[arg(long, value_parser = parse_modality)]
    modality: Option<Modality>,
}

fn parse_modality(s: &str) -> Result<Modality, String> {
    match s.to_ascii_uppercase().as_str() {
        "PT" | "PET" => Ok(Modality::Pet),
        "CT" => Ok(Modality::Ct),
        other => Err(format!("{other:?}: expected pt or ct")),
    }
}

pub fn run(args: Args) -> CliResult {
    if args.input.is_dir() {
        return convert_series(&args);
    }
    if args.series.is_some() || args.modality.is_some() {
        return Err("--series and --modality need a DICOM folder as input".into());
    }
    let img = nifti::read(&args.input)?;
    let volume = img.frame(args.frame).ok_or_else(|| {
        format!(
            "frame {} requested, the image has {}",
            args.frame, img.frames
        )
    })?;
    nifti::write(&args.output, &volume)?;
    Ok(())
}

/// Converts a DICOM series of the modality asked for, else that of the series named by UID, else
/// that of the only PET or CT series of the folder.
fn convert_series(args: &Args) -> CliResult {
    let modality = match args.modality {
        Some(m) => m,
        None => {
            let found = dicom::list_series(&args.input)?;
            let modality_of = |code: &str| match code {
                "PT" => Some(Modality::Pet),
                "CT" => Some(Modality::Ct),
                _ => None,
            };
            if let Some(uid) = &args.series
                && !found.iter().any(|s| &s.series_instance_uid == uid)
            {
                return Err(dicom::DicomError::SeriesNotFound {
                    uid: uid.clone(),
                    dir: args.input.clone(),
                    found,
                }
                .into());
            }
            let candidates: Vec<_> = found
                .iter()
                .filter(|s| {
                    args.series
                        .as_deref()
                        .is_none_or(|uid| s.series_instance_uid == uid)
                })
                .filter_map(|s| modality_of(&s.modality))
                .collect();
            match candidates.as_slice() {
                [only] => *only,
                [first, rest @ ..] if rest.iter().all(|m| m == first) => *first,
                [] | [..] => {
                    let list: Vec<String> = found.iter().map(ToString::to_string).collect();
                    return Err(format!(
                        "{}: no single PET or CT series to convert (found: {}); choose with \
                         --modality or --series",
                        args.input.display(),
                        if list.is_empty() {
                            "none".to_string()
                        } else {
                            list.join("; ")
                        }
                    )
                    .into());
                }
            }
        }
    };
    let volume = match modality {
        Modality::Pet => dicom::read_pet_series_uid(&args.input, args.series.as_deref())?.volume,
        Modality::Ct => dicom::read_ct_series(&args.input, args.series.as_deref())?.volume,
    };
    nifti::write(&args.output, &volume)?;
    Ok(())
}
