//! `uptake analyze`: one study in, findings with miTNM staging out (report.json, label maps, a
//! picture like the paper's Fig. 3, and a summary table on stdout).

use std::path::{Path, PathBuf};

use crate::picture::{Image, View, mip, project_labels};
use indicatif::{ProgressBar, ProgressStyle};
use uptake::Tracer;
use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device, Stage};
use uptake::dicom::capture::Picture;
use uptake::dicom::seg::{SegError, SourceSeries};
use uptake::report::Report;
use uptake::volume::{Volume, nifti};

use super::CliResult;

/// Options shared by `analyze` and `demo`: the analyzer and the analysis.
#[derive(clap::Args, Clone)]
pub struct AnalyzerArgs {
    /// Model file; the embedded default when absent.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Worker threads (0 = one per core).
    #[arg(long, default_value_t = 0)]
    pub threads: usize,
    /// Where the heavy stages run: auto (a CUDA device when one opens, else the CPU), cpu, cuda.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    pub device: Device,
    /// Suspicious threshold; the model's operating point for the study's tracer when absent.
    /// Given alone, it holds for every finding.
    #[arg(long)]
    pub threshold: Option<f32>,
    /// Suspicious threshold of distant findings (M1a, M1b, M1c); without it --threshold when
    /// given, else the model's distant operating point for the study's tracer.
    #[arg(long)]
    pub distant_threshold: Option<f32>,
    /// Count common iliac nodes as regional (N) rather than M1a.
    #[arg(long)]
    pub common_iliac_as_regional: bool,
    /// Set NaN/Inf voxels to 0 SUV / −1000 HU with a warning instead of failing.
    #[arg(long)]
    pub replace_non_finite: bool,
    /// Most MiB the analysis may allocate beyond the input volumes; a study over it is refused
    /// before anything is allocated. Default: 4 GiB, or half the physical memory if smaller.
    #[arg(long)]
    pub memory_budget_mb: Option<u64>,
    /// Least share of the PET's axial extent the CT must cover (0–1; default 0.9).
    #[arg(long)]
    pub min_ct_coverage: Option<f64>,
    /// Classify S4's regions alone, as the paper does: no sub-regions (the foci inside S4
    /// regions that the second candidate stage proposes).
    #[arg(long)]
    pub paper_regions: bool,
}

impl AnalyzerArgs {
    /// The analysis options these arguments ask for, checked as the library checks them.
    pub fn options<'a>(
        &self,
        progress: Option<&'a dyn Fn(Stage, f32) -> bool>,
    ) -> Result<AnalyzeOptions<'a>, uptake::Error> {
        let mut options = AnalyzeOptions {
            threshold: self.threshold,
            distant_threshold: self.distant_threshold,
            replace_non_finite: self.replace_non_finite,
            memory_budget: self.memory_budget_mb.map(|mb| mb.saturating_mul(1 << 20)),
            min_ct_coverage: self.min_ct_coverage,
            progress,
            ..AnalyzeOptions::default()
        };
        options.staging.common_iliac_as_regional = self.common_iliac_as_regional;
        if self.paper_regions {
            options.subregions = None;
        }
        options.validate()?;
        Ok(options)
    }
}

#[derive(clap::Args)]
pub struct Args {
    /// PET NIfTI (SUV unless --pet-units bqml), or a folder with a PET (PT) DICOM series.
    #[arg(long)]
    pet: PathBuf,
    /// CT NIfTI in HU, or a folder with a CT DICOM series.
    #[arg(long)]
    ct: PathBuf,
    /// SeriesInstanceUID of the PET series when the --pet folder holds several.
    #[arg(long, value_name = "UID")]
    pet_series: Option<String>,
    /// SeriesInstanceUID of the CT series when the --ct folder holds several.
    #[arg(long, value_name = "UID")]
    ct_series: Option<String>,
    /// Analyse DICOM PET and CT series whose FrameOfReferenceUIDs differ (their patient
    /// coordinates are then assumed to agree).
    #[arg(long)]
    allow_frame_of_reference_mismatch: bool,
    #[arg(long, value_parser = parse_tracer)]
    tracer: Tracer,
    /// Units of a NIfTI PET: suv, or bqml (then --suv-factor is required).
    #[arg(long, default_value = "suv")]
    pet_units: String,
    /// SUV per Bq/mL (g/mL per Bq) for a Bq/mL NIfTI PET.
    #[arg(long)]
    suv_factor: Option<f64>,
    /// Output folder.
    #[arg(long)]
    out: PathBuf,
    /// Also write the suspicious findings as a DICOM SEG (seg.dcm) into this folder, on the
    /// grid of the PET series and referencing its instances, the report as a DICOM SR
    /// measuring its segments (sr.dcm) and the findings picture as a DICOM secondary capture
    /// (findings.dcm) beside it (needs a DICOM --pet folder).
    #[arg(long, value_name = "DIR")]
    dicom_out: Option<PathBuf>,
    /// List every region in the table, not only the suspicious findings.
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    analyzer: AnalyzerArgs,
}

pub fn parse_tracer(s: &str) -> Result<Tracer, String> {
    s.parse()
}

pub fn run(args: Args) -> CliResult {
    // Everything that can be refused without the volumes is, before they are read.
    args.analyzer.options(None)?;
    if args.dicom_out.is_some() && !args.pet.is_dir() {
        return Err(
            "--dicom-out needs a DICOM PET series as --pet (a folder): the SEG \
                    references the PET's instances, which a NIfTI PET does not have"
                .into(),
        );
    }
    super::prepare_output_folder(&args.out)?;
    if let Some(dir) = &args.dicom_out {
        super::prepare_output_folder(dir)?;
    }
    let (pet, pet_frame, pet_source) = read_pet(&args)?;
    let (ct, ct_frame) = read_ct(&args)?;
    check_frames_of_reference(
        pet_frame.as_deref(),
        ct_frame.as_deref(),
        args.allow_frame_of_reference_mismatch,
    )?;
    let analyzer = make_analyzer(&args.analyzer)?;
    let report = analyze(&analyzer, &pet, &ct, args.tracer, &args.analyzer)?;
    let picture = write_outputs(&args.out, &pet, &report)?;
    if let (Some(dir), Some(source)) = (&args.dicom_out, &pet_source) {
        write_dicom(dir, source, &report, &picture)?;
    }
    out!("{}", report.summary_table(args.all))?;
    outln!("outputs in {}", args.out.display())?;
    Ok(())
}

/// A volume and, for a DICOM series, its FrameOfReferenceUID.
type Read = (Volume<f32>, Option<String>);

/// The PET in SUV, its FrameOfReferenceUID and, for a DICOM series when --dicom-out asks for
/// it, what a SEG needs of the series.
type ReadPet = (Volume<f32>, Option<String>, Option<SourceSeries>);

/// In `dir`: findings.dcm, the findings picture as a DICOM secondary capture; seg.dcm, the
/// suspicious findings as a DICOM SEG; and sr.dcm, the report as a DICOM SR measuring the SEG's
/// segments. A report without suspicious findings writes no SEG and no SR (a SEG needs a
/// segment, and the SR refers to the SEG), with a note on stderr.
fn write_dicom(
    dir: &Path,
    source: &SourceSeries,
    report: &Report,
    picture: &Image,
) -> Result<(), Box<dyn std::error::Error>> {
    let path = dir.join("findings.dcm");
    let rgb: Vec<u8> = picture.pixels.iter().flatten().copied().collect();
    let capture = uptake::dicom::capture::write_secondary_capture(
        &path,
        &source.patient_study,
        Picture {
            width: picture.width,
            height: picture.height,
            rgb: &rgb,
        },
        "uptake findings picture",
    )
    .map_err(|e| format!("--dicom-out: {e}"))?;
    eprintln!(
        "DICOM secondary capture {}: {} × {} pixels (series {})",
        path.display(),
        picture.width,
        picture.height,
        capture.series_instance_uid
    );
    let path = dir.join("seg.dcm");
    let version = format!("{} model {}", env!("CARGO_PKG_VERSION"), report.model.id);
    let seg = match uptake::dicom::seg::write_seg(&path, source, report, &version) {
        Ok(seg) => seg,
        Err(SegError::NoSuspiciousFindings) => {
            eprintln!(
                "no suspicious finding: no DICOM SEG written to {}, nor the SR that refers to it",
                dir.display()
            );
            return Ok(());
        }
        Err(e) => return Err(format!("--dicom-out: {e}").into()),
    };
    eprintln!(
        "DICOM SEG {}: {} segments, {} frames (series {})",
        path.display(),
        seg.segments.len(),
        seg.frames,
        seg.series_instance_uid
    );
    let path = dir.join("sr.dcm");
    let sr = uptake::dicom::sr::write_sr(&path, source, report, &seg, &version)
        .map_err(|e| format!("--dicom-out: {e}"))?;
    eprintln!(
        "DICOM SR {}: {} measurement groups (series {})",
        path.display(),
        sr.measurement_groups,
        sr.series_instance_uid
    );
    Ok(())
}

fn read_pet(args: &Args) -> Result<ReadPet, Box<dyn std::error::Error>> {
    if args.pet.is_dir() {
        let series = uptake::dicom::read_pet_series_uid(&args.pet, args.pet_series.as_deref())
            .map_err(|e| hint_option(e, "--pet-series"))?;
        eprintln!(
            "PET DICOM series {}: SUVbw factor {:.6e} g/mL per Bq/mL",
            series.series_instance_uid,
            series.suv_factor()?
        );
        let suv = series.to_suv()?;
        let frame = series.frame_of_reference_uid.clone();
        let source = args.dicom_out.is_some().then(|| SourceSeries::from(series));
        return Ok((suv, frame, source));
    }
    if args.pet_series.is_some() {
        return Err("--pet-series needs a DICOM folder as --pet".into());
    }
    let pet = nifti::read_volume(&args.pet)?;
    let pet: Result<_, Box<dyn std::error::Error>> =
        match (args.pet_units.as_str(), args.suv_factor) {
            ("suv", None) => Ok(pet),
            ("suv", Some(_)) => Err("--suv-factor applies to --pet-units bqml only".into()),
            ("bqml", Some(f)) if f.is_finite() && f > 0.0 => Ok(uptake::suv::try_to_suv(&pet, f)?),
            ("bqml", _) => Err("--pet-units bqml needs a finite, positive --suv-factor".into()),
            (other, _) => Err(format!("--pet-units {other:?}: expected suv or bqml").into()),
        };
    Ok((pet?, None, None))
}

fn read_ct(args: &Args) -> Result<Read, Box<dyn std::error::Error>> {
    if args.ct.is_dir() {
        let series = uptake::dicom::read_ct_series(&args.ct, args.ct_series.as_deref())
            .map_err(|e| hint_option(e, "--ct-series"))?;
        eprintln!("CT DICOM series {}", series.series_instance_uid);
        return Ok((series.volume, series.frame_of_reference_uid));
    }
    if args.ct_series.is_some() {
        return Err("--ct-series needs a DICOM folder as --ct".into());
    }
    Ok((nifti::read_volume(&args.ct)?, None))
}

/// An ambiguous folder's error with the option that chooses the series.
fn hint_option(e: uptake::DicomError, option: &str) -> Box<dyn std::error::Error> {
    match e {
        uptake::DicomError::MultipleSeries { .. } => format!("{e} (with {option} UID)").into(),
        e => e.into(),
    }
}

/// PET and CT series in different frames of reference have patient coordinates that need not
/// agree, so the CT would be sampled at the wrong places; refused unless `allow`ed. Nothing is
/// checked when either UID is unknown (a NIfTI input, or files without the attribute).
pub fn check_frames_of_reference(
    pet: Option<&str>,
    ct: Option<&str>,
    allow: bool,
) -> Result<(), String> {
    match (pet, ct) {
        (Some(p), Some(c)) if p != c => {
            let message = format!(
                "the PET and CT series are in different frames of reference \
                 (FrameOfReferenceUID {p} and {c}), so their patient coordinates need not agree"
            );
            if allow {
                eprintln!(
                    "warning: {message}; analysing anyway (--allow-frame-of-reference-mismatch)"
                );
                Ok(())
            } else {
                Err(format!(
                    "{message}; register them first, or pass --allow-frame-of-reference-mismatch \
                     if they are known to be aligned"
                ))
            }
        }
        _ => Ok(()),
    }
}

fn parse_device(text: &str) -> Result<Device, String> {
    match text.to_ascii_lowercase().as_str() {
        "auto" => Ok(Device::Auto),
        "cpu" => Ok(Device::Cpu),
        "cuda" => Ok(Device::Cuda),
        other => Err(format!("{other:?}: expected auto, cpu or cuda")),
    }
}

pub fn make_analyzer(args: &AnalyzerArgs) -> Result<Analyzer, uptake::Error> {
    Analyzer::new(AnalyzerConfig {
        device: args.device,
        threads: args.threads,
        model_path: args.model.clone(),
        batch_size: 0,
    })
}

/// Runs the analysis with a progress bar on stderr.
pub fn analyze(
    analyzer: &Analyzer,
    pet: &Volume<f32>,
    ct: &Volume<f32>,
    tracer: Tracer,
    args: &AnalyzerArgs,
) -> Result<Report, uptake::Error> {
    let bar = ProgressBar::new(1000).with_style(
        ProgressStyle::with_template("{spinner} {msg:10} [{bar:30}] {percent:>3}% {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let progress = |stage: Stage, fraction: f32| {
        bar.set_message(stage.name());
        bar.set_position((fraction.clamp(0.0, 1.0) * 1000.0) as u64);
        true
    };
    let options = args.options(Some(&progress))?;
    let report = analyzer.analyze(pet, ct, tracer, &options);
    bar.finish_and_clear();
    report
}

/// report.json, labels.nii.gz (every S4 region), subregions.nii.gz (every sub-region, when the
/// analysis proposed them), suspicious.nii.gz (mask), findings.png; returns the findings picture.
pub fn write_outputs(
    out: &Path,
    pet: &Volume<f32>,
    report: &Report,
) -> Result<Image, Box<dyn std::error::Error>> {
    super::prepare_output_folder(out)?;
    super::write_file(&out.join("report.json"), report.to_json()?)?;
    let labels = report
        .label_map
        .as_ref()
        .ok_or("the report carries no label map")?;
    nifti::write(out.join("labels.nii.gz"), labels)?;
    if let Some(subregions) = &report.subregion_map {
        nifti::write(out.join("subregions.nii.gz"), subregions)?;
    }
    let suspicious: std::collections::HashSet<u32> = report
        .findings
        .iter()
        .filter(|f| f.suspicious)
        .map(|f| f.region.id)
        .collect();
    // A voxel of a sub-region carries two ids: its region's and its sub-region's. The mask holds
    // it when either is suspicious; the figure outlines the finer one.
    let sub = |i: usize| report.subregion_map.as_ref().map_or(0, |m| m.data()[i]);
    let mask = Volume::new(
        *labels.geometry(),
        labels
            .data()
            .iter()
            .enumerate()
            .map(|(i, l)| u8::from(suspicious.contains(l) || suspicious.contains(&sub(i))))
            .collect(),
    )?;
    nifti::write(out.join("suspicious.nii.gz"), &mask)?;
    let finest = Volume::new(
        *labels.geometry(),
        labels
            .data()
            .iter()
            .enumerate()
            .map(|(i, &l)| match sub(i) {
                0 => l,
                s => s,
            })
            .collect(),
    )?;
    let picture = figure(pet, report, &finest)?;
    picture.save_png(out.join("findings.png"))?;
    Ok(picture)
}

const OUTLINE: [u8; 3] = [220, 30, 30];
const INK: [u8; 3] = [20, 20, 20];
const PAPER: [u8; 3] = [255, 255, 255];
const PIXEL_MM: f64 = 2.5;

/// Coronal and sagittal PET MIPs with suspicious findings outlined and named by location, and
/// the staging line (the layout of the paper's Fig. 3).
fn figure(
    pet: &Volume<f32>,
    report: &Report,
    labels: &Volume<u32>,
) -> Result<Image, Box<dyn std::error::Error>> {
    // Suspicious findings renumbered 1..n (u16 for the picture), in report order.
    let suspicious: Vec<_> = report.findings.iter().filter(|f| f.suspicious).collect();
    let mut index = std::collections::HashMap::new();
    for (i, f) in suspicious.iter().enumerate().take(u16::MAX as usize) {
        index.insert(f.region.id, i as u16 + 1);
    }
    let shown = Volume::new(
        *labels.geometry(),
        labels
            .data()
            .iter()
            .map(|l| index.get(l).copied().unwrap_or(0))
            .collect(),
    )?;
    let window = match report.tracer {
        Tracer::Psma => 12.0,
        Tracer::Fdg => 8.0,
    };
    let panel = |view: View| -> Result<Image, Box<dyn std::error::Error>> {
        let plane = mip(pet, view).square_pixels(PIXEL_MM);
        let outlined = project_labels(&shown, pet, view).square_pixels(PIXEL_MM);
        let mut img = Image::grey(&plane, 0.0, window, true);
        img.outline(&outlined, |_| OUTLINE);
        let mut seen = std::collections::HashSet::new();
        for y in 0..outlined.height {
            for x in 0..outlined.width {
                let l = outlined.get(x, y);
                if l != 0 && seen.insert(l) {
                    let name = &suspicious[usize::from(l) - 1].location.name;
                    img.text(x as i64 + 6, y as i64 - 4, name, OUTLINE, 1);
                }
            }
        }
        Ok(img)
    };
    let coronal = panel(View::Coronal)?;
    let sagittal = panel(View::Sagittal)?;
    let row = Image::row(
        &[
            (&coronal, &format!("CORONAL MIP 0-{window}")),
            (&sagittal, "SAGITTAL MIP"),
        ],
        12,
        PAPER,
        INK,
    )?;
    // The stage part of the staging line; the built-in font has no brackets for the id lists.
    let line = report.staging.line();
    let mut title = line.split(" |").next().unwrap_or(&line).to_string();
    if !report.model.trained {
        title = format!("UNTRAINED MODEL  {title}");
    }
    let width = row.width.max(Image::text_width(&title, 2) + 24);
    let mut img = Image::new(width, row.height + 30, PAPER)?;
    img.text(12, 8, &title, INK, 2);
    img.blit(&row, 0, 30);
    Ok(img)
}

#[cfg(test)]
mod tests {
    use super::check_frames_of_reference;

    #[test]
    fn a_frame_of_reference_mismatch_is_refused_unless_allowed() {
        let err = check_frames_of_reference(Some("1.2.3"), Some("1.2.4"), false).unwrap_err();
        assert!(err.contains("1.2.3") && err.contains("1.2.4"), "{err}");
        assert!(err.contains("--allow-frame-of-reference-mismatch"), "{err}");
        assert!(check_frames_of_reference(Some("1.2.3"), Some("1.2.4"), true).is_ok());
        assert!(check_frames_of_reference(Some("1.2.3"), Some("1.2.3"), false).is_ok());
        assert!(check_frames_of_reference(None, Some("1.2.4"), false).is_ok());
    }
}
