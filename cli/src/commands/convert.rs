//! `uptake convert`: rewrite one frame of a NIfTI file as float32 NIfTI-1, as uptake reads it.

use std::path::PathBuf;

use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Input .nii or .nii.gz (NIfTI-1 or NIfTI-2, any supported data type).
    input: PathBuf,
    /// Output .nii or .nii.gz (float32, scaling applied, sform and qform set).
    output: PathBuf,
    /// Frame of a 4-D input to write.
    #[arg(long, default_value_t = 0)]
    frame: usize,
}

pub fn run(args: Args) -> CliResult {
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
