//! GPU stage timings on a clinical-sized synthetic study, printed as one table (run by
//! scripts/gpu_check.sh on a machine with a CUDA device; prints `skipped: no CUDA device`
//! elsewhere). Per stage: device time (median of runs, after a warm-up), and the CNN's throughput
//! in regions/s and TFLOP/s against the device's estimated fp16 tensor-core peak.
//!
//! Sizes: PET 192 × 192 × 330 voxels of 4 × 4 × 3 mm, CT 512 × 512 × 330 of 1.5 × 1.5 × 3 mm,
//! the 3 mm common grid over the PET, 2000 regions, the v1 network (S7) with random weights.
//!
//! Then the whole analysis (`Analyzer::analyze`) of the clinical PSMA phantom (seed 208, as
//! `benches/analyze.rs`) with `device = cpu` (all cores) and `device = cuda` side by side: time
//! per stage and end to end (medians), the CPU/CUDA ratio, and the CNN's throughput inside the
//! analysis. `--stages-only` skips that part.

use std::time::Instant;

use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device};
use uptake::gpu::cnn::{ConvLayer, LinearLayer, NetworkSpec};
use uptake::gpu::{CudaBackend, DeviceInfo, GpuError};
use uptake::mpr::MprSpec;
use uptake::report::Report;
use uptake::{Geometry, Tracer, Volume};
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset};

const RUNS: usize = 5;
const REGIONS: usize = 2000;
const OFFSETS: [f64; 13] = [
    -144.0, -96.0, -48.0, -24.0, -12.0, -6.0, 0.0, 6.0, 12.0, 24.0, 48.0, 96.0, 144.0,
];

/// Median wall time in ms of `f` (which must synchronise the device before returning).
fn time_ms<T>(mut f: impl FnMut() -> Result<T, GpuError>) -> Result<(f64, T), GpuError> {
    let mut last = f()?;
    let mut times = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        last = f()?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok((times[RUNS / 2], last))
}

fn volume(dims: [usize; 3], spacing: [f64; 3], value: impl Fn([usize; 3]) -> f32) -> Volume<f32> {
    let extent: [f64; 3] = std::array::from_fn(|a| dims[a] as f64 * spacing[a]);
    let origin = extent.map(|e| -e / 2.0);
    let g = Geometry::axis_aligned(dims, spacing, origin).expect("valid geometry");
    let data = (0..g.len()).map(|i| value(g.coords(i))).collect();
    Volume::new(g, data).expect("matching length")
}

fn weights(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.1
        })
        .collect()
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(()); // cargo bench's harness probing
    }
    let gpu = match CudaBackend::open(0) {
        Ok(gpu) => gpu,
        Err(e) if e.is_unavailable() => {
            println!("skipped: no CUDA device ({e})");
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let info = gpu.info().clone();

    // A body-like PET: background 0.5 SUV with hot spots every 24 voxels; CT soft tissue.
    let pet = volume([192, 192, 330], [4.0, 4.0, 3.0], |[x, y, z]| {
        if x % 24 == 12 && y % 24 == 12 && z % 24 == 12 {
            12.0
        } else {
            0.5 + ((x + y + z) % 7) as f32 * 0.1
        }
    });
    let ct = volume([512, 512, 330], [1.5, 1.5, 3.0], |[x, y, _]| {
        if (x + y) % 50 < 5 { 700.0 } else { 40.0 }
    });
    let grid =
        Geometry::axis_aligned([256, 256, 330], [3.0; 3], [-382.5, -382.5, -493.5]).expect("grid");

    let mut rows: Vec<(String, f64, String)> = Vec::new();
    let (upload_ms, (dpet, dct)) = time_ms(|| {
        let p = gpu.upload(&pet)?;
        let c = gpu.upload(&ct)?;
        gpu.synchronize()?;
        Ok((p, c))
    })?;
    rows.push((
        "upload PET + CT".into(),
        upload_ms,
        format!("{} MB", ((pet.data().len() + ct.data().len()) * 4) >> 20),
    ));
    let (resample_ms, (pet3, ct3)) = time_ms(|| {
        let p = gpu.resample(&dpet, &grid, 0.0)?;
        let c = gpu.resample(&dct, &grid, -1000.0)?;
        gpu.synchronize()?;
        Ok((p, c))
    })?;
    rows.push((
        "S3 resample PET + CT to 3 mm".into(),
        resample_ms,
        format!("{} voxels each", grid.len()),
    ));
    let (order_ms, order) = time_ms(|| gpu.visiting_order(&dpet, 0.45))?;
    rows.push((
        "S4 visiting order (sort)".into(),
        order_ms,
        format!("{} candidates", order.len()),
    ));

    let spec = MprSpec {
        plane_offsets_mm: OFFSETS.to_vec(),
        plane_size: 64,
        pixel_mm: 3.0,
        pet_window_suv: [0.0, 15.0],
        ct_window_hu: [-300.0, 300.0],
    };
    let centres: Vec<[f64; 3]> = (0..REGIONS)
        .map(|i| {
            let t = i as f64 / REGIONS as f64;
            [
                (t * 37.0).sin() * 200.0,
                (t * 23.0).cos() * 150.0,
                t * 900.0 - 450.0,
            ]
        })
        .collect();
    let (mpr_ms, tensor) = time_ms(|| {
        let t = gpu.reformat::<u16>(&pet3, &ct3, &spec, &centres, None)?;
        gpu.synchronize()?;
        Ok(t)
    })?;
    rows.push((
        "S5 reformations (fp16)".into(),
        mpr_ms,
        format!("{REGIONS} regions"),
    ));

    let channels = [26usize, 32, 64, 128, 128];
    let conv_w: Vec<(Vec<f32>, Vec<f32>)> = channels
        .windows(2)
        .enumerate()
        .map(|(i, c)| {
            (
                weights(c[1] * c[0] * 9, i as u64 + 1),
                weights(c[1], i as u64 + 11),
            )
        })
        .collect();
    let lin_shapes = [(2049, 128), (128, 1), (2048, 128), (128, 23)];
    let lin_w: Vec<(Vec<f32>, Vec<f32>)> = lin_shapes
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| (weights(a * b, i as u64 + 21), weights(b, i as u64 + 31)))
        .collect();
    let linear = |i: usize| LinearLayer {
        in_features: lin_shapes[i].0,
        out_features: lin_shapes[i].1,
        weight: &lin_w[i].0,
        bias: &lin_w[i].1,
    };
    let net = gpu.load_network(&NetworkSpec {
        input: [26, 64, 64],
        trunk: channels
            .windows(2)
            .zip(&conv_w)
            .map(|(c, (weight, bias))| ConvLayer {
                in_channels: c[0],
                out_channels: c[1],
                weight,
                bias,
            })
            .collect(),
        suspicious: [linear(0), linear(1)],
        location: [linear(2), linear(3)],
    })?;
    let tracer = vec![0.0f32; REGIONS];
    let (cnn_ms, _) = time_ms(|| gpu.infer(&net, &tensor, &tracer))?;
    let flops = net.flops_per_region() * REGIONS as f64;
    let tflops = flops / (cnn_ms * 1e-3) / 1e12;
    let peak = info
        .fp16_peak_flops()
        .map_or("peak unknown".to_string(), |p| {
            format!(
                "{:.1} % of ~{:.0} TFLOP/s fp16 peak",
                100.0 * tflops * 1e12 / p,
                p / 1e12
            )
        });
    rows.push((
        format!(
            "S7 CNN ({})",
            if info.tensor_cores {
                "tensor cores"
            } else {
                "scalar"
            }
        ),
        cnn_ms,
        format!(
            "{:.0} regions/s, {tflops:.1} TFLOP/s, {peak}",
            REGIONS as f64 / (cnn_ms * 1e-3)
        ),
    ));
    let device_total = resample_ms + order_ms + mpr_ms + cnn_ms;

    println!();
    println!(
        "uptake GPU stages on {} (compute {}.{}, {} SMs, kernels {:?})",
        info.name,
        info.compute_capability / 10,
        info.compute_capability % 10,
        info.multiprocessors,
        info.target
    );
    println!("{:<40} {:>10}  notes", "stage", "ms");
    for (stage, ms, note) in &rows {
        println!("{stage:<40} {ms:>10.2}  {note}");
    }
    println!(
        "{:<40} {device_total:>10.2}  resample + order + reformat + CNN (host sweep and stats not included)",
        "device stages total"
    );
    drop((dpet, dct, pet3, ct3, tensor, net, gpu));
    if !std::env::args().any(|a| a == "--stages-only") {
        whole_analysis(&info)?;
    }
    Ok(())
}

/// Median times of repeated analyses of one study, and the last report.
struct Runs {
    /// Per stage, in the report's order.
    stages: Vec<(String, f64)>,
    end_to_end_ms: f64,
    report: Report,
}

/// `runs` analyses after one warm-up.
fn analyze_runs(
    analyzer: &Analyzer,
    study: &phantom::Study,
    runs: usize,
) -> Result<Runs, uptake::Error> {
    let options = AnalyzeOptions::default();
    let mut last = analyzer.analyze(&study.pet, &study.ct, Tracer::Psma, &options)?;
    let mut stages: Vec<Vec<f64>> = vec![Vec::new(); last.timings.len()];
    let mut totals = Vec::with_capacity(runs);
    for _ in 0..runs {
        let t = Instant::now();
        last = analyzer.analyze(&study.pet, &study.ct, Tracer::Psma, &options)?;
        totals.push(t.elapsed().as_secs_f64() * 1e3);
        for (times, timing) in stages.iter_mut().zip(&last.timings) {
            times.push(timing.ms);
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let stages = last
        .timings
        .iter()
        .zip(stages)
        .map(|(t, times)| (t.stage.clone(), median(times)))
        .collect();
    Ok(Runs {
        stages,
        end_to_end_ms: median(totals),
        report: last,
    })
}

/// The whole analysis of the clinical phantom on the CPU and on the device.
fn whole_analysis(info: &DeviceInfo) -> Result<(), Box<dyn std::error::Error>> {
    let study = phantom::generate(&PhantomSpec {
        tracer: Tracer::Psma,
        seed: 208,
        preset: Preset::Clinical,
        coverage: Coverage::WholeBody,
    })?;
    let make = |device| {
        Analyzer::new(AnalyzerConfig {
            device,
            ..AnalyzerConfig::default()
        })
    };
    let (cpu, cuda) = (make(Device::Cpu)?, make(Device::Cuda)?);
    let Runs {
        stages: cpu_stages,
        end_to_end_ms: cpu_total,
        report: cpu_report,
    } = analyze_runs(&cpu, &study, RUNS)?;
    let Runs {
        stages: cuda_stages,
        end_to_end_ms: cuda_total,
        report: cuda_report,
    } = analyze_runs(&cuda, &study, RUNS)?;
    let regions = cuda_report.findings.len();
    let same_labels = cpu_report.label_map == cuda_report.label_map;

    println!();
    println!(
        "whole analysis, clinical PSMA phantom (PET {:?}, CT {:?}, {regions} regions), median of {RUNS}; CPU: {} engine threads",
        study.pet.dims(),
        study.ct.dims(),
        cpu.engine().threads()
    );
    println!(
        "{:<12} {:>10} {:>10} {:>9}",
        "stage", "cpu ms", "cuda ms", "cpu/cuda"
    );
    for ((stage, c), (_, g)) in cpu_stages.iter().zip(&cuda_stages) {
        println!("{stage:<12} {c:>10.2} {g:>10.2} {:>9.1}", c / g);
    }
    println!(
        "{:<12} {cpu_total:>10.2} {cuda_total:>10.2} {:>9.1}",
        "end to end",
        cpu_total / cuda_total
    );
    let classify_ms = cuda_stages
        .iter()
        .find(|(stage, _)| stage == "classify")
        .map_or(f64::NAN, |(_, ms)| *ms);
    let flops = cuda.engine().graph().flops * regions as f64;
    let tflops = flops / (classify_ms * 1e-3) / 1e12;
    println!(
        "CNN inside the analysis: {:.0} regions/s, {tflops:.2} TFLOP/s{}",
        regions as f64 / (classify_ms * 1e-3),
        info.fp16_peak_flops().map_or(String::new(), |p| format!(
            " ({:.2} % of ~{:.0} TFLOP/s fp16 peak)",
            100.0 * tflops * 1e12 / p,
            p / 1e12
        ))
    );
    println!(
        "same label map on both: {}; same staging: {}",
        if same_labels { "yes" } else { "NO" },
        if cpu_report.staging == cuda_report.staging {
            "yes"
        } else {
            "NO"
        }
    );
    if !same_labels || cpu_report.findings.len() != regions {
        return Err("the CPU and CUDA analyses disagree on the regions".into());
    }
    Ok(())
}
