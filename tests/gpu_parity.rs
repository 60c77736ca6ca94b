//! Each CUDA kernel against an independent host reference (S13): the S4 visiting order exactly,
//! resampled volumes, reformations and network outputs within 1e-3 relative L2. Runs when a CUDA
//! device exists and prints `skipped: no CUDA device` otherwise; a device that exists but fails
//! is a test failure, not a skip.

use uptake::gpu::cnn::{ConvLayer, LinearLayer, NetworkSpec};
use uptake::gpu::{CudaBackend, GpuError};
use uptake::mpr::MprSpec;
use uptake::{Geometry, Volume};

mod study_support;

fn device() -> Option<CudaBackend> {
    match CudaBackend::open(0) {
        Ok(backend) => Some(backend),
        Err(e) if e.is_unavailable() => {
            println!("skipped: no CUDA device ({e})");
            None
        }
        Err(e) => panic!("the CUDA device exists but failed to open: {e}"),
    }
}

/// xorshift64*: deterministic test data without a dependency on a random crate's API.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }
}

fn rel_l2(got: &[f32], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len());
    let num: f64 = got
        .iter()
        .zip(want)
        .map(|(&g, &w)| (f64::from(g) - w).powi(2))
        .sum();
    let den: f64 = want.iter().map(|w| w * w).sum();
    (num / den.max(f64::MIN_POSITIVE)).sqrt()
}

fn assert_close(what: &str, got: &[f32], want: &[f64], tolerance: f64) {
    let e = rel_l2(got, want);
    assert!(
        e <= tolerance,
        "{what}: relative L2 error {e:e} > {tolerance:e}\n got {:?}\nwant {:?}",
        &got[..got.len().min(16)],
        &want[..want.len().min(16)]
    );
}

/// An oblique PET-like grid (rotated about z, anisotropic voxels) with smooth data.
fn oblique_volume(rng: &mut Rng, dims: [usize; 3]) -> Volume<f32> {
    let (s, c) = 0.3f64.sin_cos();
    let direction = [[c, s, 0.0], [-s, c, 0.0], [0.0, 0.0, 1.0]];
    let g = Geometry::new(dims, [4.0, 4.2, 3.0], [-50.0, -60.0, -40.0], direction).unwrap();
    let data = (0..g.len())
        .map(|i| {
            let [x, y, z] = g.coords(i);
            (5.0 * ((x as f64) * 0.3).sin() * ((y as f64) * 0.2).cos()
                + (z as f64) * 0.1
                + rng.next()) as f32
        })
        .collect();
    Volume::new(g, data).unwrap()
}

/// Trilinear sample with the convention of crate::grid, in f64: inside the voxel-edge box,
/// clamped to the centres.
fn trilinear(v: &Volume<f32>, f: [f64; 3]) -> Option<f64> {
    let dims = v.dims();
    let mut lower = [0usize; 3];
    let mut w = [0f64; 3];
    for a in 0..3 {
        let n = dims[a];
        if !(f[a] >= -0.5 && f[a] <= n as f64 - 0.5) {
            return None;
        }
        let c = f[a].clamp(0.0, (n - 1) as f64);
        lower[a] = (c.floor() as usize).min(n.saturating_sub(2));
        w[a] = c - lower[a] as f64;
    }
    let mut sum = 0.0;
    for corner in 0..8 {
        let mut weight = 1.0;
        let mut idx = [0usize; 3];
        for a in 0..3 {
            let up = (corner >> a) & 1 == 1;
            idx[a] = (lower[a] + usize::from(up)).min(dims[a] - 1);
            weight *= if up { w[a] } else { 1.0 - w[a] };
        }
        sum += weight * f64::from(v.data()[v.geometry().index(idx[0], idx[1], idx[2])]);
    }
    Some(sum)
}

#[test]
fn resampling_matches_the_trilinear_reference() {
    let Some(gpu) = device() else { return };
    let mut rng = Rng(7);
    let src = oblique_volume(&mut rng, [37, 29, 23]);
    let target = Geometry::axis_aligned([50, 44, 30], [3.0; 3], [-80.0, -90.0, -50.0]).unwrap();
    let got = gpu
        .download(
            &gpu.resample(&gpu.upload(&src).unwrap(), &target, -7.0)
                .unwrap(),
        )
        .unwrap();
    let want: Vec<f64> = (0..target.len())
        .map(|i| {
            let [x, y, z] = target.coords(i);
            let p = target.voxel_to_patient([x as f64, y as f64, z as f64]);
            trilinear(&src, src.geometry().patient_to_voxel(p)).unwrap_or(-7.0)
        })
        .collect();
    assert!(
        want.iter().any(|&w| w == -7.0) && want.iter().any(|&w| w != -7.0),
        "both inside and outside"
    );
    assert_close("resample", got.data(), &want, 1e-5);
}

#[test]
fn the_visiting_order_equals_the_host_sort() {
    let Some(gpu) = device() else { return };
    let mut rng = Rng(11);
    // 64·64·40 voxels, values quantised to 1/8 SUV so that ties are common; enough candidates
    // for the global merge stages of the sort.
    let g = Geometry::axis_aligned([64, 64, 40], [4.0, 4.0, 3.0], [0.0; 3]).unwrap();
    let data: Vec<f32> = (0..g.len())
        .map(|_| ((rng.next() * 40.0).floor() / 8.0) as f32)
        .collect();
    let pet = Volume::new(g, data).unwrap();
    for threshold in [0.45f32, 3.0, 100.0] {
        let mut want: Vec<u64> = pet
            .data()
            .iter()
            .enumerate()
            .filter(|&(_, &v)| v >= threshold)
            .map(|(i, &v)| (u64::from(!v.to_bits()) << 32) | i as u64)
            .collect();
        want.sort_unstable();
        let got = gpu
            .visiting_order(&gpu.upload(&pet).unwrap(), threshold)
            .unwrap();
        assert_eq!(got.len(), want.len(), "threshold {threshold}");
        assert!(
            got == want,
            "threshold {threshold}: first difference at {:?}",
            got.iter().zip(&want).position(|(a, b)| a != b)
        );
    }
}

#[test]
fn a_non_finite_pet_voxel_is_an_error() {
    let Some(gpu) = device() else { return };
    let g = Geometry::axis_aligned([10, 10, 10], [4.0; 3], [0.0; 3]).unwrap();
    let mut data = vec![2.0f32; g.len()];
    data[517] = f32::NAN;
    data[903] = f32::INFINITY;
    let pet = gpu.upload(&Volume::new(g, data).unwrap()).unwrap();
    match gpu.visiting_order(&pet, 0.45) {
        Err(GpuError::NonFinite { count, first }) => assert_eq!((count, first), (2, 517)),
        other => panic!("expected NonFinite, got {other:?}"),
    }
}

const OFFSETS: [f64; 13] = [
    -144.0, -96.0, -48.0, -24.0, -12.0, -6.0, 0.0, 6.0, 12.0, 24.0, 48.0, 96.0, 144.0,
];

fn s5_spec() -> MprSpec {
    MprSpec {
        plane_offsets_mm: OFFSETS.to_vec(),
        plane_size: 64,
        pixel_mm: 3.0,
        pet_window_suv: [0.0, 15.0],
        ct_window_hu: [-300.0, 300.0],
    }
}

/// S5 written out directly: pixel (r, k) of plane p at c + A·((k − 32)·3, o_p, (32 − r)·3).
fn reformat_reference(
    pet3: &Volume<f32>,
    ct3: &Volume<f32>,
    centre: [f64; 3],
    a: [[f64; 3]; 3],
) -> Vec<f64> {
    let window = |v: f64, lo: f64, hi: f64| ((v - lo) / (hi - lo)).clamp(0.0, 1.0);
    let mut out = vec![0.0; 26 * 64 * 64];
    for (p, &o) in OFFSETS.iter().enumerate() {
        for r in 0..64 {
            for k in 0..64 {
                let local = [(k as f64 - 32.0) * 3.0, o, (32.0 - r as f64) * 3.0];
                let x: [f64; 3] = std::array::from_fn(|i| {
                    centre[i] + (0..3).map(|j| a[i][j] * local[j]).sum::<f64>()
                });
                let f = pet3.geometry().patient_to_voxel(x);
                let pet = trilinear(pet3, f).unwrap_or(0.0);
                let ct = trilinear(ct3, f).unwrap_or(-1000.0);
                out[(p * 64 + r) * 64 + k] = window(pet, 0.0, 15.0);
                out[((13 + p) * 64 + r) * 64 + k] = window(ct, -300.0, 300.0);
            }
        }
    }
    out
}

#[test]
fn reformations_match_the_s5_reference() {
    let Some(gpu) = device() else { return };
    let mut rng = Rng(5);
    let g = Geometry::axis_aligned([60, 50, 70], [3.0; 3], [-90.0, -75.0, -105.0]).unwrap();
    let pet: Vec<f32> = (0..g.len())
        .map(|i| ((i % 97) as f64 * 0.2 + rng.next()) as f32)
        .collect();
    let ct: Vec<f32> = (0..g.len())
        .map(|i| ((i % 331) as f64 * 3.0 - 500.0) as f32)
        .collect();
    let (pet3, ct3) = (Volume::new(g, pet).unwrap(), Volume::new(g, ct).unwrap());
    let centres = [[0.0, 0.0, 0.0], [40.5, -20.25, 60.0], [-88.0, 70.0, -100.0]];
    let (s, c) = 0.2f64.sin_cos();
    let tilt = [
        [1.1 * c, -1.1 * s, 0.0],
        [1.1 * s, 1.1 * c, 0.0],
        [0.0, 0.0, 1.1],
    ];
    let identity = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
    let augments = [identity, tilt, identity];
    let (dpet, dct) = (gpu.upload(&pet3).unwrap(), gpu.upload(&ct3).unwrap());
    let spec = s5_spec();
    let f32_tensor = gpu
        .reformat::<f32>(&dpet, &dct, &spec, &centres, Some(&augments))
        .unwrap();
    let got = gpu.download_tensor(&f32_tensor).unwrap();
    let want: Vec<f64> = centres
        .iter()
        .zip(&augments)
        .flat_map(|(&c, &a)| reformat_reference(&pet3, &ct3, c, a))
        .collect();
    assert_close("reformation", &got, &want, 1e-5);
    // The fp16 variant is the f32 one rounded to half precision (values in [0, 1]).
    let f16_tensor = gpu
        .reformat::<u16>(&dpet, &dct, &spec, &centres, Some(&augments))
        .unwrap();
    let halves = gpu.download_tensor(&f16_tensor).unwrap();
    for (h, f) in halves.iter().zip(&got) {
        assert_eq!(*h, half::f16::from_f32(*f).to_bits(), "{f}");
    }
}

/// A v1-shaped network with random He-scaled weights rounded to fp16 (the model file's
/// precision), small enough for an f64 reference: input [26, 32, 32] → 2 conv blocks.
struct Weights {
    convs: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
    linears: Vec<(usize, usize, Vec<f32>, Vec<f32>)>,
}

fn random_weights(rng: &mut Rng, channels: &[usize], features: usize, classes: usize) -> Weights {
    let mut fill = |n: usize, fan_in: usize| -> Vec<f32> {
        let scale = (6.0 / fan_in as f64).sqrt();
        (0..n)
            .map(|_| half::f16::from_f64((rng.next() * 2.0 - 1.0) * scale).to_f32())
            .collect()
    };
    let mut convs = Vec::new();
    for w in channels.windows(2) {
        let (ci, co) = (w[0], w[1]);
        convs.push((ci, co, fill(co * ci * 9, ci * 9), fill(co, ci * 9)));
    }
    let mut linears = Vec::new();
    for (i, o) in [
        (features + 1, 128),
        (128, 1),
        (features, 128),
        (128, classes),
    ] {
        linears.push((i, o, fill(o * i, i), fill(o, i)));
    }
    Weights { convs, linears }
}

/// The network in f64 on fp16-rounded inputs (what the device stores).
fn network_reference(w: &Weights, input: &[f32], hw: usize, tracer: f64) -> (f64, Vec<f64>) {
    let mut x: Vec<f64> = input
        .iter()
        .map(|&v| f64::from(half::f16::from_f32(v).to_f32()))
        .collect();
    let mut side = hw;
    for (ci, co, weight, bias) in &w.convs {
        let mut y = vec![0.0; co * side * side];
        for o in 0..*co {
            for py in 0..side {
                for px in 0..side {
                    let mut acc = f64::from(bias[o]);
                    for c in 0..*ci {
                        for ky in 0..3 {
                            for kx in 0..3 {
                                let (iy, ix) = (py as isize + ky - 1, px as isize + kx - 1);
                                if iy >= 0
                                    && ix >= 0
                                    && (iy as usize) < side
                                    && (ix as usize) < side
                                {
                                    acc += x[(c * side + iy as usize) * side + ix as usize]
                                        * f64::from(
                                            weight[((o * ci + c) * 3 + ky as usize) * 3
                                                + kx as usize],
                                        );
                                }
                            }
                        }
                    }
                    y[(o * side + py) * side + px] = acc.max(0.0);
                }
            }
        }
        let half = side / 2;
        x = (0..co * half * half)
            .map(|t| {
                let (o, py, px) = (t / (half * half), (t / half) % half, t % half);
                let at = |dy: usize, dx: usize| y[(o * side + 2 * py + dy) * side + 2 * px + dx];
                at(0, 0).max(at(0, 1)).max(at(1, 0)).max(at(1, 1))
            })
            .collect();
        side = half;
    }
    let linear = |(i, o, weight, bias): &(usize, usize, Vec<f32>, Vec<f32>),
                  v: &[f64],
                  relu: bool|
     -> Vec<f64> {
        (0..*o)
            .map(|r| {
                let s = f64::from(bias[r])
                    + (0..*i)
                        .map(|k| f64::from(weight[r * i + k]) * v[k])
                        .sum::<f64>();
                if relu { s.max(0.0) } else { s }
            })
            .collect()
    };
    let mut with_tracer = x.clone();
    with_tracer.push(tracer);
    let hidden = linear(&w.linears[0], &with_tracer, true);
    let suspicious = linear(&w.linears[1], &hidden, false)[0];
    let hidden = linear(&w.linears[2], &x, true);
    (suspicious, linear(&w.linears[3], &hidden, false))
}

#[test]
fn the_network_matches_an_f64_reference_on_both_convolution_kernels() {
    let Some(gpu) = device() else { return };
    let mut rng = Rng(3);
    let (side, channels, classes) = (32, [26usize, 32, 64], 23);
    let features = 64 * (side / 4) * (side / 4);
    let w = random_weights(&mut rng, &channels, features, classes);
    let spec = NetworkSpec {
        input: [26, side, side],
        trunk: w
            .convs
            .iter()
            .map(|(ci, co, weight, bias)| ConvLayer {
                in_channels: *ci,
                out_channels: *co,
                weight,
                bias,
            })
            .collect(),
        suspicious: [0, 1].map(|i| {
            let (inf, outf, weight, bias) = &w.linears[i];
            LinearLayer {
                in_features: *inf,
                out_features: *outf,
                weight,
                bias,
            }
        }),
        location: [2, 3].map(|i| {
            let (inf, outf, weight, bias) = &w.linears[i];
            LinearLayer {
                in_features: *inf,
                out_features: *outf,
                weight,
                bias,
            }
        }),
    };
    // 70 regions: more than one 64-pixel tile row of the last layer, fewer than a chunk.
    let regions = 70;
    let region_len = 26 * side * side;
    let inputs: Vec<f32> = (0..regions * region_len)
        .map(|_| rng.next() as f32)
        .collect();
    let tracer: Vec<f32> = (0..regions).map(|r| (r % 2) as f32).collect();
    let mut want_s = Vec::new();
    let mut want_l = Vec::new();
    for r in 0..regions {
        let (s, l) = network_reference(
            &w,
            &inputs[r * region_len..(r + 1) * region_len],
            side,
            f64::from(tracer[r]),
        );
        want_s.push(s);
        want_l.extend(l);
    }
    let check = |gpu: &CudaBackend, label: &str| {
        let net = gpu.load_network(&spec).unwrap();
        let input = gpu.upload_tensor(&inputs, regions, region_len).unwrap();
        let logits = gpu.infer(&net, &input, &tracer).unwrap();
        assert_eq!(logits.classes, classes);
        assert_close(
            &format!("{label}: suspicious logits"),
            &logits.suspicious,
            &want_s,
            1e-3,
        );
        assert_close(
            &format!("{label}: location logits"),
            &logits.location,
            &want_l,
            1e-3,
        );
    };
    check(
        &gpu,
        if gpu.info().tensor_cores {
            "tensor cores"
        } else {
            "scalar"
        },
    );
    check(&gpu.without_tensor_cores(), "scalar");
}

/// Against the CPU twins themselves: `grid::resample` and `mpr::extract_batch` (S13 parity).
#[test]
fn resampling_and_reformations_match_the_cpu_stages() {
    let Some(gpu) = device() else { return };
    let mut rng = Rng(13);
    let pet = oblique_volume(&mut rng, [41, 35, 27]);
    let ct = oblique_volume(&mut rng, [60, 52, 27]);
    let grid = uptake::grid::common_grid(pet.geometry()).unwrap();
    let (dpet, dct) = (gpu.upload(&pet).unwrap(), gpu.upload(&ct).unwrap());
    let (pet3, ct3) = (
        gpu.resample(&dpet, &grid, 0.0).unwrap(),
        gpu.resample(&dct, &grid, -1000.0).unwrap(),
    );
    let cpu_pet3 = uptake::grid::resample(&pet, &grid, 0.0).unwrap();
    let cpu_ct3 = uptake::grid::resample(&ct, &grid, -1000.0).unwrap();
    let as_f64 = |v: &Volume<f32>| v.data().iter().map(|&x| f64::from(x)).collect::<Vec<_>>();
    assert_close(
        "PET on the common grid",
        gpu.download(&pet3).unwrap().data(),
        &as_f64(&cpu_pet3),
        1e-3,
    );
    assert_close(
        "CT on the common grid",
        gpu.download(&ct3).unwrap().data(),
        &as_f64(&cpu_ct3),
        1e-3,
    );

    let spec = MprSpec::default();
    let centre = grid.voxel_to_patient([10.0, 12.0, 9.0]);
    let centres = [
        centre,
        [centre[0] + 30.0, centre[1] - 20.0, centre[2] + 7.5],
    ];
    let augments = [
        uptake::mpr::Augment::IDENTITY,
        uptake::mpr::Augment::seeded(4),
    ];
    let mut want = vec![0f32; spec.tensor_len() * centres.len()];
    uptake::mpr::extract_batch(
        &cpu_pet3,
        &cpu_ct3,
        &spec,
        &centres,
        Some(&augments),
        &mut want,
    )
    .unwrap();
    let matrices = augments.map(|a| a.matrix());
    let tensor = gpu
        .reformat::<f32>(&pet3, &ct3, &spec, &centres, Some(&matrices))
        .unwrap();
    let want: Vec<f64> = want.iter().map(|&x| f64::from(x)).collect();
    assert_close(
        "reformations",
        &gpu.download_tensor(&tensor).unwrap(),
        &want,
        1e-3,
    );
}

/// The S0 pipeline end to end (S13 parity of `Analyzer::analyze`): a small phantom study on the
/// CPU and on the device.
mod whole_analysis {
    use std::cell::RefCell;
    use std::sync::Arc;

    use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device, Stage};
    use uptake::findings::Finding;
    use uptake::report::Report;
    use uptake::{Error, Geometry, Tracer, Volume};

    use super::study_support::study;

    fn analyzer(device: Device, batch_size: usize) -> Analyzer {
        Analyzer::new(AnalyzerConfig {
            device,
            threads: 2,
            batch_size,
            ..AnalyzerConfig::default()
        })
        .unwrap()
    }

    fn analyze(a: &Analyzer, options: &AnalyzeOptions) -> Result<Report, Error> {
        let s = study();
        a.analyze(&s.pet, &s.ct, Tracer::Psma, options)
    }

    /// Findings in region-id order.
    fn by_region(r: &Report) -> Vec<&Finding> {
        let mut f: Vec<&Finding> = r.findings.iter().collect();
        f.sort_by_key(|f| f.region.id);
        f
    }

    /// Midway in the widest gap between consecutive values of the middle half of `ps`: the
    /// suspicious threshold furthest from every finding, so that a difference within the
    /// network's tolerance cannot flip a decision.
    fn threshold_in_widest_gap(ps: &[f32]) -> (f32, f32) {
        let mut sorted = ps.to_vec();
        sorted.sort_by(f32::total_cmp);
        let quarter = sorted.len() / 4;
        sorted[quarter..sorted.len() - quarter]
            .windows(2)
            .map(|w| ((w[0] + w[1]) / 2.0, w[1] - w[0]))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .unwrap()
    }

    fn rel_l2(got: &[f32], want: &[f32]) -> f64 {
        let want: Vec<f64> = want.iter().map(|&w| f64::from(w)).collect();
        super::rel_l2(got, &want)
    }

    /// Everything in a report except wall-clock timings.
    fn comparable(r: &Report) -> String {
        let mut r = r.clone();
        r.timings.clear();
        r.to_json().unwrap()
    }

    #[test]
    fn a_phantom_study_analyzes_alike_on_the_cpu_and_the_device() {
        let Some(_) = super::device() else { return };
        let (cpu, cuda) = (analyzer(Device::Cpu, 0), analyzer(Device::Cuda, 0));
        assert_eq!(cuda.device(), Device::Cuda);
        let first = analyze(&cpu, &AnalyzeOptions::default()).unwrap();
        let ps: Vec<f32> = first.findings.iter().map(|f| f.p_suspicious).collect();
        assert!(ps.len() >= 20, "{} findings", ps.len());
        let (threshold, gap) = threshold_in_widest_gap(&ps);
        let options = AnalyzeOptions {
            threshold: Some(threshold),
            ..AnalyzeOptions::default()
        };
        let want = analyze(&cpu, &options).unwrap();
        let got = analyze(&cuda, &options).unwrap();
        assert_eq!((want.device.as_str(), got.device.as_str()), ("cpu", "cuda"));

        // S4 runs the CPU's sweep over the device's order: identical labels and statistics.
        let labels = |r: &Report| r.label_map.as_ref().unwrap().data().to_vec();
        assert!(labels(&want) == labels(&got), "label maps differ");
        let (want_f, got_f) = (by_region(&want), by_region(&got));
        let regions = |f: &[&Finding]| f.iter().map(|f| f.region.clone()).collect::<Vec<_>>();
        assert_eq!(regions(&want_f), regions(&got_f));

        // The network: probabilities within 1e-3 relative L2 over all findings. The top-3
        // probabilities by rank are order statistics, continuous in the logits, so they compare
        // even where two classes are nearly tied.
        let p = |f: &[&Finding]| f.iter().map(|f| f.p_suspicious).collect::<Vec<_>>();
        let e = rel_l2(&p(&got_f), &p(&want_f));
        assert!(e <= 1e-3, "p_suspicious: relative L2 {e:e}");
        let top3 = |f: &[&Finding]| {
            f.iter()
                .flat_map(|f| f.top3.iter().map(|t| t.probability))
                .collect::<Vec<_>>()
        };
        let e = rel_l2(&top3(&got_f), &top3(&want_f));
        assert!(e <= 1e-3, "location probabilities: relative L2 {e:e}");
        // The most probable location wherever it leads by more than the tolerance.
        let mut compared = 0;
        for (w, g) in want_f.iter().zip(&got_f) {
            if w.top3[0].probability - w.top3[1].probability > 1e-3 {
                assert_eq!(w.location.id, g.location.id, "region {}", w.region.id);
                compared += 1;
            }
        }
        assert!(
            4 * compared >= 3 * want_f.len(),
            "{compared} clear locations"
        );

        // From the logits on one code path: the same decisions and staging.
        println!(
            "threshold {threshold} (gap {gap}), staging {}",
            want.staging.line()
        );
        assert!(
            gap > 2e-3,
            "the phantom's p_suspicious leave no clear threshold"
        );
        let decisions = |f: &[&Finding]| {
            f.iter()
                .map(|f| (f.suspicious, f.role, f.expression_score))
                .collect::<Vec<_>>()
        };
        assert_eq!(decisions(&want_f), decisions(&got_f));
        assert!(want.burden.suspicious_count > 0);
        assert_eq!(want.staging, got.staging);
        let (ws, gs) = (
            want.burden.skeleton_volume_ml,
            got.burden.skeleton_volume_ml,
        );
        assert!(
            ws > 0.0 && (ws - gs).abs() <= 1e-3 * ws,
            "skeleton {ws} vs {gs} mL"
        );
        assert_eq!(want.burden.tumour_volume_ml, got.burden.tumour_volume_ml);
        assert_eq!(
            want.burden.total_lesion_uptake,
            got.burden.total_lesion_uptake
        );
        let stages = |r: &Report| {
            r.timings
                .iter()
                .map(|t| t.stage.clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(stages(&want), stages(&got));
    }

    #[test]
    fn analysis_on_the_device_is_thread_safe_batched_and_cancellable() {
        let Some(_) = super::device() else { return };
        let cuda = Arc::new(analyzer(Device::Cuda, 0));
        let serial = comparable(&analyze(&cuda, &AnalyzeOptions::default()).unwrap());
        // 94 regions in batches of 32: the same report as in one batch.
        let batched = analyzer(Device::Cuda, 32);
        assert_eq!(
            comparable(&analyze(&batched, &AnalyzeOptions::default()).unwrap()),
            serial
        );
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let a = Arc::clone(&cuda);
                std::thread::spawn(move || {
                    comparable(&analyze(&a, &AnalyzeOptions::default()).unwrap())
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), serial);
        }

        let seen = RefCell::new(Vec::new());
        let record = |stage: Stage, _: f32| {
            seen.borrow_mut().push(stage);
            true
        };
        let options = AnalyzeOptions {
            progress: Some(&record),
            ..AnalyzeOptions::default()
        };
        analyze(&batched, &options).unwrap();
        let mut order = seen.borrow().clone();
        let classify_calls = order.iter().filter(|&&s| s == Stage::Classify).count();
        assert_eq!(classify_calls, 3, "one call per batch");
        order.dedup();
        assert_eq!(
            order,
            [
                Stage::Check,
                Stage::Grid,
                Stage::Regions,
                Stage::Classify,
                Stage::Staging
            ]
        );
        let calls = RefCell::new(0);
        let stop_in_second_batch = |stage: Stage, _: f32| {
            if stage == Stage::Classify {
                *calls.borrow_mut() += 1;
            }
            *calls.borrow() < 2
        };
        let options = AnalyzeOptions {
            progress: Some(&stop_in_second_batch),
            ..AnalyzeOptions::default()
        };
        let err = analyze(&batched, &options).unwrap_err();
        assert!(matches!(err, Error::Cancelled), "{err}");
    }

    #[test]
    fn the_device_rejects_and_accepts_what_the_cpu_does() {
        let Some(_) = super::device() else { return };
        let cuda = analyzer(Device::Cuda, 0);
        let flat = |dims: [usize; 3], spacing: f64, origin: [f64; 3], value: f32| {
            Volume::filled(
                Geometry::axis_aligned(dims, [spacing; 3], origin).unwrap(),
                value,
            )
        };
        let pet = flat([20, 20, 20], 4.0, [-40.0; 3], 0.8);
        let far_ct = flat([10, 10, 10], 2.0, [5000.0; 3], 0.0);
        let err = cuda
            .analyze(&pet, &far_ct, Tracer::Psma, &AnalyzeOptions::default())
            .unwrap_err();
        assert!(matches!(err, Error::Grid(_)), "{err}");
        let ct = flat([40, 40, 40], 2.0, [-40.0; 3], 40.0);
        let r = cuda
            .analyze(&pet, &ct, Tracer::Fdg, &AnalyzeOptions::default())
            .unwrap();
        assert!(r.findings.is_empty());
        assert_eq!(r.device, "cuda");
        let mut nan_pet = pet.clone();
        nan_pet.data_mut()[17] = f32::NAN;
        let err = cuda
            .analyze(&nan_pet, &ct, Tracer::Psma, &AnalyzeOptions::default())
            .unwrap_err();
        assert!(err.to_string().contains("non-finite"), "{err}");
    }
}

/// The host half of S4 on the device, which needs no device: the CPU's sweep over an order given
/// from outside equals `regions::segment`, and an order that is not S4's is an error, never wrong
/// labels or a panic.
#[test]
fn segmenting_over_a_given_order_equals_segment_and_checks_the_order() {
    use uptake::regions::{RegionParams, RegionsError, segment, segment_ordered};
    let s = study_support::study();
    let params = RegionParams::default();
    let threshold = params.candidate_threshold().unwrap();
    // S4 step 1 written out, as the device computes it.
    let mut order: Vec<u64> = s
        .pet
        .data()
        .iter()
        .enumerate()
        .filter(|&(_, &v)| v >= threshold)
        .map(|(i, &v)| (u64::from(!v.to_bits()) << 32) | i as u64)
        .collect();
    order.sort_unstable();
    let want = segment(&s.pet, &params).unwrap();
    let got = segment_ordered(&s.pet, &params, order.clone()).unwrap();
    assert!(want.regions.len() > 10);
    assert_eq!(got.regions, want.regions);
    assert!(got.labels.data() == want.labels.data());

    let bad = |order: Vec<u64>| {
        let result = segment_ordered(&s.pet, &params, order);
        assert!(
            matches!(result, Err(RegionsError::BadOrder(_))),
            "{:?}",
            result.map(|s| s.regions.len())
        );
    };
    bad(order[1..].to_vec());
    bad(Vec::new());
    let mut swapped = order.clone();
    swapped.swap(3, 4);
    bad(swapped);
    let mut beyond = order.clone();
    let last = beyond.len() - 1;
    beyond[last] = (beyond[last] & !0xFFFF_FFFF) | 0xFFFF_FFF0;
    bad(beyond);
    let mut wrong_value = order;
    wrong_value[0] ^= 1 << 40;
    bad(wrong_value);
}
