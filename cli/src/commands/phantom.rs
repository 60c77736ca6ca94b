//! `uptake phantom`: synthetic PET/CT studies with ground truth (DESIGN S11).

use std::path::PathBuf;
use std::time::Instant;

use uptake::tracer::Tracer;
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset, Study};

use super::CliResult;

#[derive(clap::Args)]
pub struct Args {
    /// Tracer: psma (68Ga-PSMA-11) or fdg (18F-FDG).
    #[arg(long, default_value = "psma")]
    tracer: Tracer,
    /// Seed of the first study; study i of a cohort uses seed + i.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Grids: small (tests, training) or clinical (PET 4.07 × 4.07 × 3 mm, CT 0.98 × 0.98 × 3 mm).
    #[arg(long, default_value = "small")]
    preset: Preset,
    /// Field of view: whole-body (vertex to mid-thigh, 500 mm CT) or drawn by seed (truncated
    /// axial ranges and CT diameters 350–500 mm, as clinical studies come).
    #[arg(long, default_value = "whole-body")]
    coverage: Coverage,
    /// Output folder. With --count > 1 each study goes to DIR/study_NNNN.
    #[arg(long)]
    out: PathBuf,
    /// Number of studies (cohort mode).
    #[arg(long, default_value_t = 1)]
    count: usize,
    /// Skip the overview pictures.
    #[arg(long)]
    no_pictures: bool,
}

pub fn run(args: Args) -> CliResult {
    if args.count == 0 {
        return Err("--count must be at least 1".into());
    }
    for i in 0..args.count {
        let seed = args
            .seed
            .checked_add(i as u64)
            .ok_or("seed + count overflows 64 bits")?;
        let spec = PhantomSpec {
            tracer: args.tracer,
            seed,
            preset: args.preset,
            coverage: args.coverage,
        };
        let dir = if args.count == 1 {
            args.out.clone()
        } else {
            args.out.join(format!("study_{i:04}"))
        };
        let start = Instant::now();
        let study = phantom::generate(&spec)?;
        let generated = start.elapsed();
        study.write(&dir)?;
        if !args.no_pictures {
            crate::figure::overview(&study)?.save_png(dir.join("overview.png"))?;
        }
        print_summary(
            &study,
            &dir,
            generated.as_secs_f64(),
            start.elapsed().as_secs_f64(),
        )?;
    }
    Ok(())
}

fn print_summary(
    study: &Study,
    dir: &std::path::Path,
    generate_s: f64,
    total_s: f64,
) -> std::io::Result<()> {
    let h = &study.habitus;
    let t = &study.truth;
    outln!(
        "{}  {} seed {} ({}): {:.0} cm, {:.0} kg, {}contrast; {}",
        dir.display(),
        study.spec.tracer.name(),
        study.spec.seed,
        study.spec.preset.name(),
        h.height_mm / 10.0,
        h.weight_kg,
        if h.iv_contrast { "" } else { "no " },
        study.scenario.replace('_', " "),
    )?;
    outln!(
        "  truth {} {} {}{}{}",
        t.mi_t,
        t.mi_n,
        t.mi_m,
        if t.m_categories.len() > 1 {
            let categories: Vec<&str> = t.m_categories.iter().map(|m| m.code()).collect();
            format!(" (present: {})", categories.join(", "))
        } else {
            String::new()
        },
        t.bone_pattern
            .as_ref()
            .map(|p| format!(", bone pattern {p}"))
            .unwrap_or_default()
    )?;
    for l in &study.lesions {
        outln!(
            "  #{:<3} {:<22} {:<28} {:>6.2} mL  SUVmax {:>5.1} ({:>5.1} noisy)  {:?}{}",
            l.id,
            l.class_name,
            l.site,
            l.volume_ml,
            l.suv_max,
            l.suv_max_noisy,
            l.role,
            l.next_to
                .as_ref()
                .map(|n| format!("  next to {n}"))
                .unwrap_or_default()
        )?;
    }
    outln!(
        "  generated in {generate_s:.2} s, written in {:.2} s",
        total_s - generate_s
    )
}
