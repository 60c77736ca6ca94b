//! `Analyzer::analyze` on small volumes with fuzzed geometry, possibly absurd (huge or tiny
//! spacing, far origins, NaN from raw bits, non-orthonormal directions). Layout of the input,
//! read front to back with zeros past its end: per volume (PET, then CT) three dims
//! (`1 + b % 24`), a spacing, an origin and a direction mode; then the tracer bit; the rest
//! cycles as voxel values (PET 0–25 SUV, CT −1000–1550 HU). The embedded model, on the CPU.
//! A 128 MiB memory budget, as a host sets one: a study that fits the default (4 GiB) is
//! legitimate work that would only spend the run's time, so a larger one must be refused.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device};
use uptake::{Geometry, Tracer, Volume};

fn analyzer() -> &'static Analyzer {
    static ANALYZER: OnceLock<Analyzer> = OnceLock::new();
    ANALYZER.get_or_init(|| {
        Analyzer::new(AnalyzerConfig {
            device: Device::Cpu,
            threads: 1,
            ..AnalyzerConfig::default()
        })
        .expect("analyzer with the embedded model")
    })
}

struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn f64_raw(&mut self) -> f64 {
        let mut b = [0u8; 8];
        b.iter_mut().for_each(|x| *x = self.u8());
        f64::from_le_bytes(b)
    }
    /// A length in mm: ordinary, tiny, huge, or any f64 (NaN, infinities, negatives).
    fn length(&mut self) -> f64 {
        match self.u8() % 4 {
            0 => 0.5 + f64::from(self.u8()) / 16.0,
            1 => 1e-9 * (1.0 + f64::from(self.u8())),
            2 => 1e9 * (1.0 + f64::from(self.u8())),
            _ => self.f64_raw(),
        }
    }
    fn direction(&mut self) -> [[f64; 3]; 3] {
        let mode = self.u8();
        let mut d = [[0.0; 3]; 3];
        if mode < 200 {
            // A signed permutation: orthonormal, every axis order and flip.
            const PERMUTATIONS: [[usize; 3]; 6] =
                [[0, 1, 2], [0, 2, 1], [1, 0, 2], [1, 2, 0], [2, 0, 1], [2, 1, 0]];
            let p = PERMUTATIONS[usize::from(mode % 6)];
            let flips = self.u8();
            for (col, &row) in p.iter().enumerate() {
                d[row][col] = if flips >> col & 1 == 1 { -1.0 } else { 1.0 };
            }
        } else {
            d.iter_mut().flatten().for_each(|x| *x = self.f64_raw());
        }
        d
    }
    fn geometry(&mut self) -> Option<Geometry> {
        let dims = [0; 3].map(|_: usize| 1 + usize::from(self.u8() % 24));
        let spacing = [0; 3].map(|_: usize| self.length());
        let origin = [0; 3].map(|_: usize| {
            let sign = if self.u8() & 1 == 1 { -1.0 } else { 1.0 };
            sign * self.length()
        });
        let direction = self.direction();
        Geometry::new(dims, spacing, origin, direction).ok()
    }
}

fn volume(geometry: Geometry, values: &[u8], scale: f32, offset: f32) -> Option<Volume<f32>> {
    let n = geometry.len();
    let data = (0..n)
        .map(|i| values.get(i % values.len().max(1)).map_or(0.0, |&b| offset + scale * f32::from(b)))
        .collect();
    Volume::new(geometry, data).ok()
}

fuzz_target!(|bytes: &[u8]| {
    let mut input = Bytes(bytes);
    let (Some(pet), Some(ct)) = (input.geometry(), input.geometry()) else {
        return;
    };
    let tracer = if input.u8() & 1 == 1 { Tracer::Fdg } else { Tracer::Psma };
    let values = input.0;
    let (Some(pet), Some(ct)) = (
        volume(pet, values, 25.0 / 255.0, 0.0),
        volume(ct, values, 10.0, -1000.0),
    ) else {
        return;
    };
    let options = AnalyzeOptions {
        memory_budget: Some(128 << 20),
        ..AnalyzeOptions::default()
    };
    let _ = analyzer().analyze(&pet, &ct, tracer, &options);
});
