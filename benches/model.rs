//! CPU engine throughput on the v1 network (DESIGN S7): regions per second at batch 1, 64 and
//! 256 on 1 and 2 threads, per kernel. The side-by-side comparison with onnxruntime is
//! `scripts/bench_model.py`.
//!
//! `cargo bench --bench model`

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use uptake::model::{EngineConfig, Kernel, Model, simd};

fn engine_throughput(c: &mut Criterion) {
    let model = Model::embedded().expect("the embedded model loads");
    let per_region = model.graph().input_len();
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let inputs: Vec<f32> = (0..256 * per_region).map(|_| rng.random()).collect();
    let bits: Vec<f32> = (0..256).map(|i| (i % 2) as f32).collect();
    let mut kernels = vec![Kernel::Gemm];
    if simd::available() {
        kernels.push(Kernel::Avx512);
    }
    let mut group = c.benchmark_group("model_infer");
    group.sample_size(10);
    for kernel in kernels {
        for threads in [1, 2] {
            let engine = model
                .engine(EngineConfig {
                    threads,
                    batch_size: 256,
                    kernel,
                })
                .expect("engine");
            for batch in [1usize, 64, 256] {
                group.throughput(Throughput::Elements(batch as u64));
                let id = BenchmarkId::new(format!("{kernel:?}/threads{threads}"), batch);
                group.bench_with_input(id, &batch, |b, &batch| {
                    b.iter(|| engine.infer(&inputs[..batch * per_region], &bits[..batch]))
                });
            }
        }
    }
    group.finish();
}

criterion_group!(benches, engine_throughput);
criterion_main!(benches);
