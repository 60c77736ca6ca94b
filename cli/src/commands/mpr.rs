//! `uptake mpr`: the network input (S5) for chosen points, as a PNG contact sheet and/or a
//! float32 `.npy` tensor [N, 26, 64, 64].

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use uptake::Volume;
use uptake::grid::to_common_grid;
use uptake::mpr::{Augment, MprSpec, extract_batch};
use uptake::volume::nifti;

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// PET volume in SUV (.nii or .nii.gz); without it the PET planes are 0 SUV on the CT's grid.
    #[arg(long, required_unless_present = "ct")]
    pet: Option<PathBuf>,
    /// CT volume in HU; without it the CT planes are air (-1000 HU) on the PET's grid.
    #[arg(long)]
    ct: Option<PathBuf>,
    /// Region centre "x,y,z" in patient LPS mm (repeatable).
    #[arg(long, value_parser = parse_point, allow_hyphen_values = true)]
    centre: Vec<[f64; 3]>,
    /// File of region centres, one "x,y,z" (LPS mm) per line; '#' starts a comment.
    #[arg(long)]
    centres: Option<PathBuf>,
    /// PET and CT are already on one grid (e.g. the common grid): sample them as they are
    /// instead of resampling both onto the common 3 mm grid first.
    #[arg(long)]
    on_grid: bool,
    /// Reformation spec as JSON (the model's `input` metadata); default: DESIGN S5.
    #[arg(long)]
    spec: Option<PathBuf>,
    /// Augmentation: isotropic scale about the centre.
    #[arg(long, default_value_t = 1.0)]
    scale: f64,
    /// Augmentation: rotations "x,y,z" in degrees about the patient axes (x first, then y, z).
    #[arg(long, value_parser = parse_point, allow_hyphen_values = true)]
    rotate: Option<[f64; 3]>,
    /// Random S5 augmentation per centre, drawn from this seed (+ the centre's index);
    /// overrides --scale/--rotate.
    #[arg(long)]
    augment_seed: Option<u64>,
    /// Write the tensors as float32 .npy, shape [N, 2·planes, size, size].
    #[arg(long)]
    npy: Option<PathBuf>,
    /// Write a PNG contact sheet of the first centre's planes (PET row above, CT row below).
    #[arg(long)]
    png: Option<PathBuf>,
    /// Extract this many times and report the fastest (benchmarks).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=1000))]
    repeat: u32,
    /// Print stage times to stderr as `grid_ms=…` and `extract_ms=…`.
    #[arg(long)]
    timings: bool,
}

fn parse_point(s: &str) -> Result<[f64; 3], String> {
    let v: Vec<f64> = s
        .split([',', ' ', '\t'])
        .filter(|t| !t.is_empty())
        .map(|t| t.parse::<f64>().map_err(|e| format!("{t:?}: {e}")))
        .collect::<Result<_, _>>()?;
    v.try_into()
        .map_err(|v: Vec<f64>| format!("expected 3 numbers \"x,y,z\", got {}", v.len()))
}

fn read_centres(path: &Path) -> Result<Vec<[f64; 3]>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    text.lines()
        .enumerate()
        .map(|(i, l)| (i, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
        .map(|(i, l)| parse_point(l).map_err(|e| format!("{} line {}: {e}", path.display(), i + 1)))
        .collect()
}

pub fn run(args: Args) -> CliResult {
    let spec = match &args.spec {
        Some(p) => serde_json::from_str::<MprSpec>(&std::fs::read_to_string(p)?)
            .map_err(|e| format!("{}: {e}", p.display()))?,
        None => MprSpec::default(),
    };
    spec.validate()?;
    let mut centres = args.centre.clone();
    if let Some(p) = &args.centres {
        centres.extend(read_centres(p)?);
    }
    if centres.is_empty() {
        return Err("give at least one --centre x,y,z or a --centres file".into());
    }
    let (pet, ct) = match (&args.pet, &args.ct) {
        (Some(p), Some(c)) => (nifti::read_volume(p)?, nifti::read_volume(c)?),
        (Some(p), None) => {
            let pet = nifti::read_volume(p)?;
            let ct = Volume::filled(*pet.geometry(), -1000.0);
            (pet, ct)
        }
        (None, Some(c)) => {
            let ct = nifti::read_volume(c)?;
            (Volume::filled(*ct.geometry(), 0.0), ct)
        }
        (None, None) => return Err("give --pet, --ct or both".into()),
    };
    let t = Instant::now();
    let (pet3, ct3) = if args.on_grid {
        (pet, ct)
    } else {
        to_common_grid(&pet, &ct)?
    };
    let grid_ms = t.elapsed().as_secs_f64() * 1e3;
    let augments: Vec<Augment> = (0..centres.len() as u64)
        .map(|i| match args.augment_seed {
            Some(seed) => Augment::seeded(seed.wrapping_add(i)),
            None => Augment {
                scale: args.scale,
                rotation_deg: args.rotate.unwrap_or([0.0; 3]),
            },
        })
        .collect();
    let len = spec
        .tensor_len()
        .checked_mul(centres.len())
        .filter(|&n| n <= 1 << 31)
        .ok_or("too many centres for one run: the tensors would exceed 2^31 floats")?;
    let mut out = vec![0.0f32; len];
    let mut extract_ms = f64::INFINITY;
    for _ in 0..args.repeat {
        let t = Instant::now();
        extract_batch(&pet3, &ct3, &spec, &centres, Some(&augments), &mut out)?;
        extract_ms = extract_ms.min(t.elapsed().as_secs_f64() * 1e3);
    }
    if args.timings {
        eprintln!("grid_ms={grid_ms:.3}");
        eprintln!("extract_ms={extract_ms:.3}");
    }
    let n = spec.plane_size;
    if let Some(p) = &args.npy {
        write_npy(p, &out, &[centres.len(), 2 * spec.planes(), n, n])?;
    }
    if let Some(p) = &args.png {
        contact_sheet(&out[..spec.tensor_len()], spec.planes(), n).save(p)?;
    }
    Ok(())
}

/// NPY format 1.0, little-endian float32, C order.
fn write_npy(path: &Path, data: &[f32], shape: &[usize]) -> std::io::Result<()> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({},), }}",
        dims.join(", ")
    );
    // Magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::io::BufWriter::new(std::fs::File::create(path)?);
    f.write_all(b"\x93NUMPY\x01\x00")?;
    f.write_all(&(header.len() as u16).to_le_bytes())?;
    f.write_all(header.as_bytes())?;
    for v in data {
        f.write_all(&v.to_le_bytes())?;
    }
    f.flush()
}

/// The planes of one tensor side by side, PET on the top row and CT below, each pixel of the
/// [0, 1] window scaled to 0–255 and drawn 2 × 2, with a 2-pixel gap between planes.
fn contact_sheet(tensor: &[f32], planes: usize, n: usize) -> image::GrayImage {
    const ZOOM: usize = 2;
    const GAP: usize = 2;
    let tile = n * ZOOM + GAP;
    let (w, h) = (planes * tile + GAP, 2 * tile + GAP);
    let mut img = image::GrayImage::from_pixel(w as u32, h as u32, image::Luma([64]));
    for (channel, plane) in tensor.chunks_exact(n * n).enumerate() {
        let (row, col) = (channel / planes, channel % planes);
        for (i, &v) in plane.iter().enumerate() {
            let g = (v.clamp(0.0, 1.0) * 255.0).round() as u8;
            let (r, k) = (i / n, i % n);
            for dy in 0..ZOOM {
                for dx in 0..ZOOM {
                    let x = GAP + col * tile + k * ZOOM + dx;
                    let y = GAP + row * tile + r * ZOOM + dy;
                    img.put_pixel(x as u32, y as u32, image::Luma([g]));
                }
            }
        }
    }
    img
}
