//! Phantom generation time: one small study (tests, training) and one clinical study
//! (PET 168² × 4.07 mm, CT 512² × 0.98 mm, ~375 slices of 3 mm). Run with
//! `cargo bench --bench phantom`; limit the threads with RAYON_NUM_THREADS=2 to measure the
//! two-core figure.

use criterion::{Criterion, criterion_group, criterion_main};
use uptake::tracer::Tracer;
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset};

fn generate(c: &mut Criterion) {
    let mut group = c.benchmark_group("phantom");
    group.sample_size(10);
    for (name, preset) in [("small", Preset::Small), ("clinical", Preset::Clinical)] {
        for tracer in [Tracer::Psma, Tracer::Fdg] {
            let spec = PhantomSpec {
                tracer,
                seed: 7,
                preset,
                coverage: Coverage::WholeBody,
            };
            group.bench_function(format!("{name}_{}", tracer.name()), |b| {
                b.iter(|| phantom::generate(&spec).expect("generate"))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, generate);
criterion_main!(benches);
