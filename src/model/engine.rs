//! The fast CPU engine: convolutions as matrix products, batched, multi-threaded.
//!
//! A batch of regions goes through the trunk layer by layer. Each convolution is cut into tiles
//! of whole output rows and computed as `W · B` with B the tile's im2col matrix: on CPUs with
//! AVX-512 by our kernel ([`simd`]), which for wide "same" convolutions reads B straight from a
//! zero-padded copy of the input (no im2col copy at all), elsewhere by the `gemm` crate on an
//! im2col tile sized to stay in L2. The ReLU and max-pool after a convolution are applied to
//! each tile's product before it is stored. Tiles run in parallel on the engine's own rayon
//! pool (or on the caller's thread for a one-thread engine or a batch smaller than the
//! thread count). The heads are small matrix products over the whole batch. Working memory is a
//! fixed number of floats per region of the batch, reused across batches and calls and
//! independent of how many regions a call brings ([`Engine::infer_with`] streams them).

use std::cell::RefCell;
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

use super::graph::{Conv, Graph, Op};
use super::matmul::{MatRef, matmul};
use super::simd::{self, PackedWeights};
use super::{Model, ModelError};

/// Regions per batch unless configured.
/// cbindgen:ignore
pub const DEFAULT_BATCH_SIZE: usize = 64;
/// Largest batch accepted. The working set is about 0.8 MB per region of a batch for v1
/// (mostly conv1's padded input and output), so 50 MB at the default batch of 64.
/// cbindgen:ignore
pub const MAX_BATCH_SIZE: usize = 1024;

/// Floats of one im2col tile: 64 Ki floats = 256 KiB leaves room in a 1–2 MiB L2 for the
/// weights and the product.
const TILE_FLOATS: usize = 64 * 1024;

/// Environment variable that forces the portable kernel (`gemm`) over the automatic choice,
/// so that CI on an AVX-512 machine can exercise both.
pub const KERNEL_ENV: &str = "UPTAKE_MODEL_KERNEL";

/// Which convolution product an engine uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Kernel {
    /// AVX-512 when the CPU has it, else `gemm`; [`KERNEL_ENV`]`=gemm` forces `gemm`.
    #[default]
    Auto,
    /// The `gemm` crate (runtime dispatch up to AVX2/FMA on stable Rust): portable.
    Gemm,
    /// Our AVX-512 micro-kernel; an error where the CPU lacks AVX-512F.
    Avx512,
}

/// How an engine runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EngineConfig {
    /// Worker threads; 0 = one per core.
    pub threads: usize,
    /// Regions per batch; 0 = [`DEFAULT_BATCH_SIZE`].
    pub batch_size: usize,
    pub kernel: Kernel,
}

impl Kernel {
    /// The kernel actually used: never `Auto`.
    fn resolve(self) -> Result<Self, ModelError> {
        match self {
            Kernel::Auto => {
                let forced =
                    std::env::var(KERNEL_ENV).is_ok_and(|v| v.eq_ignore_ascii_case("gemm"));
                Ok(if simd::available() && !forced {
                    Kernel::Avx512
                } else {
                    Kernel::Gemm
                })
            }
            Kernel::Avx512 if !simd::available() => Err(ModelError::Engine(
                "the AVX-512 kernel was requested, but this CPU lacks AVX-512F".into(),
            )),
            k => Ok(k),
        }
    }
}

/// One region's network output.
#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub suspicious_logit: f32,
    /// sigmoid(suspicious_logit).
    pub p_suspicious: f32,
    /// One logit per location class of the model's class table.
    pub location_logits: Vec<f32>,
    /// softmax(location_logits).
    pub location_probs: Vec<f32>,
}

impl Prediction {
    /// Probabilities from raw logits.
    pub fn from_logits(suspicious_logit: f32, location_logits: Vec<f32>) -> Self {
        Self {
            suspicious_logit,
            p_suspicious: sigmoid(suspicious_logit),
            location_probs: softmax(&location_logits),
            location_logits,
        }
    }

    /// The most probable location class id.
    pub fn location(&self) -> usize {
        let mut best = 0;
        for (i, &p) in self.location_probs.iter().enumerate() {
            if p > self.location_probs[best] {
                best = i;
            }
        }
        best
    }
}

/// Logistic function, written so that neither branch overflows.
pub fn sigmoid(x: f32) -> f32 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}

/// Softmax, shifted by the maximum so that exp never overflows.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&l| (l - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

thread_local! {
    /// A tile's im2col matrix, product and B-row offsets, kept per thread between tiles and
    /// calls: at most a few hundred kB, and no allocation (or page faults) per tile.
    static TILE_SCRATCH: RefCell<TileScratch> = const {
        RefCell::new(TileScratch { col: Vec::new(), product: Vec::new(), offsets: Vec::new() })
    };
}

struct TileScratch {
    col: Vec<f32>,
    product: Vec<f32>,
    offsets: Vec<usize>,
}

/// A batch's activation buffers, reused by later batches and calls.
#[derive(Debug, Default)]
struct Workspace {
    /// Ping-pong activation maps [count, C, H, W].
    maps: [Vec<f32>; 2],
    /// Pooled convolution output, one fixed-size slot per tile.
    tiles: Vec<f32>,
    /// A convolution's input with its zero padding, for the implicit (copy-free) im2col.
    padded: Vec<f32>,
}

/// A trunk step: a convolution with the ReLU / max-pool after it fused in, or a lone op.
#[derive(Debug, Clone, Copy)]
enum Step {
    Conv { op: usize, relu: bool, pool: usize },
    Relu,
    MaxPool { op: usize },
    Flatten,
}

/// Runs a model's graph on the CPU. `Sync`: one engine serves concurrent callers.
#[derive(Debug)]
pub struct Engine {
    graph: Arc<Graph>,
    steps: Vec<Step>,
    kernel: Kernel,
    /// Per trunk op: the packed weights of a convolution when the kernel is AVX-512.
    packed: Vec<Option<PackedWeights>>,
    /// Worker threads when more than one is configured; one thread runs on the caller's, so a
    /// single-threaded engine never waits for a worker to wake up.
    pool: Option<rayon::ThreadPool>,
    threads: usize,
    batch_size: usize,
    /// Idle workspaces; one per call in flight at most.
    workspaces: Mutex<Vec<Workspace>>,
}

impl Engine {
    pub fn new(model: &Model, config: EngineConfig) -> Result<Self, ModelError> {
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let batch_size = match config.batch_size {
            0 => DEFAULT_BATCH_SIZE,
            n if n > MAX_BATCH_SIZE => {
                return Err(ModelError::Engine(format!(
                    "batch size {n} exceeds {MAX_BATCH_SIZE}"
                )));
            }
            n => n,
        };
        let pool = if threads > 1 {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .thread_name(|i| format!("uptake-model-{i}"))
                .build()
                .map_err(|e| ModelError::Engine(format!("cannot start {threads} threads: {e}")))?;
            Some(pool)
        } else {
            None
        };
        let graph = model.graph_arc();
        let kernel = config.kernel.resolve()?;
        let packed = graph
            .trunk
            .iter()
            .map(|op| match op {
                Op::Conv(c) if kernel == Kernel::Avx512 => Some(PackedWeights::pack(
                    &c.weight,
                    c.out_channels,
                    c.patch_len(),
                )),
                _ => None,
            })
            .collect();
        Ok(Self {
            steps: plan(&graph.trunk),
            graph,
            kernel,
            packed,
            pool,
            threads,
            batch_size,
            workspaces: Mutex::new(Vec::new()),
        })
    }

    pub fn threads(&self) -> usize {
        self.threads
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// The convolution kernel in use (never `Auto`).
    pub fn kernel(&self) -> Kernel {
        self.kernel
    }

    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Floats per region of raw output: the suspicious logit, then one logit per class.
    pub fn output_len(&self) -> usize {
        1 + self.graph.classes
    }

    /// Runs `inputs` ([N, C, H, W], f32, region-major) with one tracer bit per region
    /// (0 = PSMA, 1 = FDG), in batches of the configured size.
    pub fn infer(
        &self,
        inputs: &[f32],
        tracer_bits: &[f32],
    ) -> Result<Vec<Prediction>, ModelError> {
        let mut logits = vec![0.0; tracer_bits.len() * self.output_len()];
        self.infer_logits(inputs, tracer_bits, &mut logits)?;
        Ok(self.predictions(&logits))
    }

    /// Like [`Self::infer`], writing raw logits ([N, 1 + classes]) into `out`.
    pub fn infer_logits(
        &self,
        inputs: &[f32],
        tracer_bits: &[f32],
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let n = tracer_bits.len();
        let per_region = self.graph.input_len();
        if Some(inputs.len()) != n.checked_mul(per_region) {
            return Err(ModelError::Input(format!(
                "{} input floats for {n} regions; each region needs {per_region} ({:?})",
                inputs.len(),
                self.graph.input
            )));
        }
        if Some(out.len()) != n.checked_mul(self.output_len()) {
            return Err(ModelError::Input(format!(
                "output buffer holds {} floats; {n} regions need {}",
                out.len(),
                n * self.output_len()
            )));
        }
        let batches = inputs
            .chunks(self.batch_size * per_region)
            .zip(tracer_bits.chunks(self.batch_size))
            .zip(out.chunks_mut(self.batch_size * self.output_len()));
        for (first, ((x, bits), out)) in batches.enumerate() {
            self.run_batch(x, bits, first * self.batch_size, out)?;
        }
        Ok(())
    }

    /// Streams `n` regions through the network without holding all their inputs: `fill(first,
    /// inputs, tracer_bits)` writes regions `first..first + tracer_bits.len()` into the buffers
    /// (a batch at a time; the buffers are reused).
    pub fn infer_with(
        &self,
        n: usize,
        mut fill: impl FnMut(usize, &mut [f32], &mut [f32]) -> Result<(), ModelError>,
    ) -> Result<Vec<Prediction>, ModelError> {
        let per_region = self.graph.input_len();
        let mut inputs = vec![0.0; self.batch_size.min(n) * per_region];
        let mut bits = vec![0.0; self.batch_size.min(n)];
        let mut logits = vec![0.0; self.batch_size.min(n) * self.output_len()];
        let mut predictions = Vec::with_capacity(n);
        for first in (0..n).step_by(self.batch_size) {
            let count = self.batch_size.min(n - first);
            let (x, b) = (&mut inputs[..count * per_region], &mut bits[..count]);
            fill(first, x, b)?;
            let out = &mut logits[..count * self.output_len()];
            self.run_batch(x, b, first, out)?;
            predictions.extend(self.predictions(out));
        }
        Ok(predictions)
    }

    fn predictions(&self, logits: &[f32]) -> Vec<Prediction> {
        logits
            .chunks_exact(self.output_len())
            .map(|row| Prediction::from_logits(row[0], row[1..].to_vec()))
            .collect()
    }

    /// One batch: checks the values, then trunk and heads. `first` numbers regions in errors.
    fn run_batch(
        &self,
        inputs: &[f32],
        tracer_bits: &[f32],
        first: usize,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let per_region = self.graph.input_len();
        // A branch-free pass per block vectorises; only a bad block is searched.
        let bad_block = inputs
            .chunks(4096)
            .position(|block| !block.iter().fold(true, |ok, v| ok & v.is_finite()));
        if let Some(i) = bad_block.and_then(|b| {
            let start = b * 4096;
            inputs[start..]
                .iter()
                .position(|v| !v.is_finite())
                .map(|i| start + i)
        }) {
            return Err(ModelError::Input(format!(
                "region {} holds a non-finite value at element {}",
                first + i / per_region,
                i % per_region
            )));
        }
        if let Some(i) = tracer_bits.iter().position(|b| !b.is_finite()) {
            return Err(ModelError::Input(format!(
                "tracer bit of region {} is {}",
                first + i,
                tracer_bits[i]
            )));
        }
        // Fork-join across tiles pays only when every thread gets whole regions: a batch smaller
        // than the thread count runs on the caller's thread, where no worker has to wake up
        // (on a busy machine waking them costs more than the work).
        let threads = if tracer_bits.len() >= self.threads {
            self.threads
        } else {
            1
        };
        let mut workspace = self
            .workspaces
            .lock()
            .ok()
            .and_then(|mut idle| idle.pop())
            .unwrap_or_default();
        let mut run = || {
            let features = self.trunk(inputs, tracer_bits.len(), &mut workspace, threads)?;
            let suspicious = self.head(
                &self.graph.suspicious,
                features.clone(),
                tracer_bits,
                threads,
            )?;
            let location = self.head(&self.graph.location, features, tracer_bits, threads)?;
            let classes = self.graph.classes;
            for (i, row) in out.chunks_exact_mut(1 + classes).enumerate() {
                row[0] = suspicious[i];
                row[1..].copy_from_slice(&location[i * classes..(i + 1) * classes]);
            }
            Ok(())
        };
        let result = match &self.pool {
            Some(pool) if threads > 1 => pool.install(run),
            _ => run(),
        };
        if let Ok(mut idle) = self.workspaces.lock() {
            idle.push(workspace);
        }
        result
    }

    /// The trunk over `count` regions: [count, C, H, W] → [count, features].
    fn trunk(
        &self,
        inputs: &[f32],
        count: usize,
        workspace: &mut Workspace,
        threads: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let Workspace {
            maps: [a, b],
            tiles,
            padded,
        } = workspace;
        // Where the current activation lives: the caller's input, or map a or b (its first
        // `len` floats; the maps only grow, so a batch never zero-fills them again).
        let mut current: Option<bool> = None;
        let mut len = inputs.len();
        for step in &self.steps {
            let (x, next): (&[f32], &mut Vec<f32>) = match current {
                None => (inputs, a),
                Some(false) => (&a[..len], b),
                Some(true) => (&b[..len], a),
            };
            match *step {
                Step::Conv { op, relu, pool } => {
                    let Op::Conv(conv) = &self.graph.trunk[op] else {
                        return Err(internal("conv step without conv op"));
                    };
                    let product = match &self.packed[op] {
                        Some(packed) => Product::Packed(packed),
                        None => Product::Gemm,
                    };
                    let layer = ConvLayer {
                        conv,
                        product,
                        relu,
                        pool,
                        threads,
                    };
                    len = count * conv.out_channels * (conv.out_h / pool) * (conv.out_w / pool);
                    layer.run(x, count, tiles, padded, grown(next, len))?;
                }
                Step::Relu => {
                    for (o, v) in grown(next, len).iter_mut().zip(x) {
                        *o = v.max(0.0);
                    }
                }
                Step::MaxPool { op } => {
                    let Op::MaxPool {
                        size,
                        channels,
                        in_h,
                        in_w,
                    } = self.graph.trunk[op]
                    else {
                        return Err(internal("pool step without pool op"));
                    };
                    len = count * channels * (in_h / size) * (in_w / size);
                    max_pool(x, count * channels, in_h, in_w, size, grown(next, len));
                }
                Step::Flatten => continue,
            }
            current = Some(current == Some(false));
        }
        Ok(match current {
            None => inputs.to_vec(),
            Some(false) => a[..len].to_vec(),
            Some(true) => b[..len].to_vec(),
        })
    }

    /// A head over the batch's features ([count, F]).
    fn head(
        &self,
        ops: &[Op],
        mut x: Vec<f32>,
        tracer_bits: &[f32],
        threads: usize,
    ) -> Result<Vec<f32>, ModelError> {
        let count = tracer_bits.len();
        for op in ops {
            x = match op {
                Op::Relu => {
                    x.iter_mut().for_each(|v| *v = v.max(0.0));
                    x
                }
                Op::ConcatTracer => {
                    let width = x.len() / count.max(1);
                    let mut wider = Vec::with_capacity(x.len() + count);
                    for (row, &bit) in x.chunks_exact(width.max(1)).zip(tracer_bits) {
                        wider.extend_from_slice(row);
                        wider.push(bit);
                    }
                    wider
                }
                Op::Linear(l) => {
                    let mut y = vec![0.0; count * l.out_features];
                    matmul(
                        &mut y,
                        MatRef::row_major(&x, count, l.in_features),
                        MatRef::transposed(&l.weight, l.in_features, l.out_features),
                        threads,
                    )?;
                    for row in y.chunks_exact_mut(l.out_features) {
                        row.iter_mut().zip(&l.bias).for_each(|(v, b)| *v += b);
                    }
                    y
                }
                Op::Conv(_) | Op::MaxPool { .. } | Op::Flatten => {
                    return Err(internal("map layer in a head"));
                }
            };
        }
        Ok(x)
    }
}

/// The first `len` floats of `buf`, growing it (never shrinking) as needed.
fn grown(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

fn internal(what: &str) -> ModelError {
    ModelError::Engine(format!("internal: {what}"))
}

/// Fuses each convolution with the ReLU and max-pool right after it (in either order: ReLU
/// and max commute, and so do max and adding a per-channel bias).
fn plan(trunk: &[Op]) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut i = 0;
    while i < trunk.len() {
        match &trunk[i] {
            Op::Conv(_) => {
                let (mut relu, mut pool) = (false, 1);
                let mut j = i + 1;
                loop {
                    match trunk.get(j) {
                        Some(Op::Relu) => relu = true,
                        Some(Op::MaxPool { size, .. }) if pool == 1 => pool = *size,
                        _ => break,
                    }
                    j += 1;
                }
                steps.push(Step::Conv { op: i, relu, pool });
                i = j;
                continue;
            }
            Op::Relu => steps.push(Step::Relu),
            Op::MaxPool { .. } => steps.push(Step::MaxPool { op: i }),
            Op::Flatten | Op::ConcatTracer | Op::Linear(_) => steps.push(Step::Flatten),
        }
        i += 1;
    }
    steps
}

/// How a convolution tile's product is computed.
#[derive(Clone, Copy)]
enum Product<'a> {
    Gemm,
    Packed(&'a PackedWeights),
}

/// A convolution with the bias, optional ReLU and max-pool `pool` fused after it.
struct ConvLayer<'a> {
    conv: &'a Conv,
    product: Product<'a>,
    relu: bool,
    pool: usize,
    /// Threads sharing the tiles (1: run on the caller's thread).
    threads: usize,
}

/// Columns per tile for the implicit product: enough to amortise a tile, few enough that the
/// product stays in L2.
const IMPLICIT_TILE_COLS: usize = 1152;

impl ConvLayer<'_> {
    /// Whether the product reads B straight from the zero-padded input instead of an im2col
    /// copy. For a "same" convolution, output pixel (y, x) and tap (ky, kx) read padded pixel
    /// (y + ky, x + kx), so with output rows computed at the padded width `w + 2·pad` each B
    /// row is one contiguous run of the padded input; the 2·pad extra columns per row are
    /// computed and dropped. Worth it while that waste stays small (wide maps).
    fn implicit(&self) -> bool {
        let c = self.conv;
        matches!(self.product, Product::Packed(_))
            && c.out_h == c.in_h
            && c.out_w == c.in_w
            && 2 * c.padding + 1 == c.kernel
            && 16 * c.padding <= c.in_w
    }

    /// Runs `count` regions in tiles of whole output rows, writing
    /// [count, out_channels, out_h / pool, out_w / pool] into `out`; `tiles` and `padded` are
    /// scratch.
    fn run(
        &self,
        x: &[f32],
        count: usize,
        tiles: &mut Vec<f32>,
        padded: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let (conv, pool) = (self.conv, self.pool);
        let (oh, ow) = (conv.out_h, conv.out_w);
        let (ph, pw) = (oh / pool, ow / pool);
        let pooled_len = conv.out_channels * ph * pw;
        // Tiles as (first output row, rows), rows counted across regions.
        let implicit = self.implicit();
        let tile_list: Vec<(usize, usize)> = if implicit {
            pad_input(conv, x, count, padded, self.threads > 1 && count > 1);
            // Small batches get smaller tiles, so that every thread has a few.
            let padded_w = conv.in_w + 2 * conv.padding;
            let max_cols = (count * oh * padded_w / (4 * self.threads)).min(IMPLICIT_TILE_COLS);
            let rows = implicit_tile_rows(oh, padded_w, pool, max_cols);
            (0..count)
                .flat_map(|region| {
                    (0..oh)
                        .step_by(rows)
                        .map(move |y| (region * oh + y, rows.min(oh - y)))
                })
                .collect()
        } else {
            // A multiple of `unit` (the pool size, and for the AVX-512 kernel enough rows for
            // whole NR-column blocks) of about TILE_FLOATS / k columns.
            let unit = match self.product {
                Product::Gemm => pool,
                Product::Packed(_) => lcm(pool, simd::NR / gcd(ow, simd::NR)),
            };
            let total = count * oh;
            let target = (TILE_FLOATS / conv.patch_len() / ow).min(total / (4 * self.threads));
            let rows = (target / unit).max(1) * unit;
            (0..total)
                .step_by(rows)
                .map(|r0| (r0, rows.min(total - r0)))
                .collect()
        };
        let max_rows = tile_list.iter().map(|t| t.1).max().unwrap_or(0);
        let slot = (conv.out_channels * (max_rows / pool) * pw).max(1);
        let tiles = grown(tiles, tile_list.len() * slot);
        let source: &[f32] = if implicit { padded } else { x };
        let run_tile = |(&(r0, rows), slot): (&(usize, usize), &mut [f32])| {
            TILE_SCRATCH.with_borrow_mut(|scratch| self.tile(source, r0, rows, scratch, slot))
        };
        if self.threads > 1 {
            tile_list
                .par_iter()
                .zip(tiles.par_chunks_mut(slot))
                .try_for_each(run_tile)?;
        } else {
            tile_list
                .iter()
                .zip(tiles.chunks_mut(slot))
                .try_for_each(run_tile)?;
        }
        // Scatter each tile's pooled rows [out_channels, rows / pool, pw] into the regions'
        // maps, region by region (in parallel: each region's map is written by one task).
        let tiles = &*tiles;
        let scatter = |(region, map): (usize, &mut [f32])| {
            let (first, last) = (region * ph, (region + 1) * ph);
            // Tiles are in row order; skip those that end before this region.
            let start = tile_list.partition_point(|&(r0, rows)| (r0 + rows) / pool <= first);
            for (i, &(r0, rows)) in tile_list.iter().enumerate().skip(start) {
                let (tile_first, tile_rows) = (r0 / pool, rows / pool);
                if tile_first >= last {
                    break;
                }
                let tile = &tiles[i * slot..];
                let (from, to) = (tile_first.max(first), (tile_first + tile_rows).min(last));
                for o in 0..conv.out_channels {
                    let src = (o * tile_rows + from - tile_first) * pw;
                    let dst = (o * ph + from - first) * pw;
                    let n = (to - from) * pw;
                    map[dst..dst + n].copy_from_slice(&tile[src..src + n]);
                }
            }
        };
        if self.threads > 1 && count > 1 {
            out.par_chunks_mut(pooled_len).enumerate().for_each(scatter);
        } else {
            out.chunks_mut(pooled_len).enumerate().for_each(scatter);
        }
        Ok(())
    }

    /// Output rows `r0..r0 + rows` (across regions): B rows, product, then pool into `out`.
    /// `source` is the input, or its padded copy for the implicit product.
    fn tile(
        &self,
        source: &[f32],
        r0: usize,
        rows: usize,
        scratch: &mut TileScratch,
        out: &mut [f32],
    ) -> Result<(), ModelError> {
        let conv = self.conv;
        let k = conv.patch_len();
        let TileScratch {
            col,
            product,
            offsets,
        } = scratch;
        match self.product {
            Product::Gemm => {
                let cols = rows * conv.out_w;
                let col = grown(col, k * cols);
                im2col(conv, source, r0, rows, col, cols);
                let product = grown(product, conv.out_channels * cols);
                matmul(
                    product,
                    MatRef::row_major(&conv.weight, conv.out_channels, k),
                    MatRef::row_major(col, k, cols),
                    1,
                )?;
                pool_tile(
                    conv, product, rows, cols, conv.out_w, self.relu, self.pool, out,
                );
            }
            Product::Packed(w) if self.implicit() => {
                let (wh, ww) = (conv.in_h + 2 * conv.padding, conv.in_w + 2 * conv.padding);
                let (region, y0) = (r0 / conv.out_h, r0 % conv.out_h);
                let base = (region * conv.in_channels * wh + y0) * ww;
                let cols = (rows * ww).next_multiple_of(simd::NR);
                offsets.clear();
                for i in 0..conv.in_channels {
                    for ky in 0..conv.kernel {
                        let row = base + (i * wh + ky) * ww;
                        offsets.extend((0..conv.kernel).map(|kx| row + kx));
                    }
                }
                let product = grown(product, w.padded_rows() * cols);
                simd::matmul_packed(product, w, source, offsets, cols)?;
                pool_tile(conv, product, rows, cols, ww, self.relu, self.pool, out);
            }
            Product::Packed(w) => {
                let cols = (rows * conv.out_w).next_multiple_of(simd::NR);
                let col = grown(col, k * cols);
                im2col(conv, source, r0, rows, col, cols);
                offsets.clear();
                offsets.extend((0..k).map(|kk| kk * cols));
                let product = grown(product, w.padded_rows() * cols);
                simd::matmul_packed(product, w, col, offsets, cols)?;
                pool_tile(
                    conv, product, rows, cols, conv.out_w, self.relu, self.pool, out,
                );
            }
        }
        Ok(())
    }
}

/// Copies `count` regions of the convolution's input into `padded` with a zero border of
/// `padding` on every side, plus a zero tail: the implicit product reads up to one block of
/// columns past the last row it needs. Every float of the layout is written once (the buffer
/// is shared by layers of different sizes, so nothing can be assumed zero).
fn pad_input(conv: &Conv, x: &[f32], count: usize, padded: &mut Vec<f32>, parallel: bool) {
    let (ih, iw, p) = (conv.in_h, conv.in_w, conv.padding);
    let (wh, ww) = (ih + 2 * p, iw + 2 * p);
    let body = count * conv.in_channels * wh * ww;
    let padded = grown(padded, body + 2 * p * ww + simd::NR);
    let pad_plane = |(src, dst): (&[f32], &mut [f32])| {
        let (top, rest) = dst.split_at_mut(p * ww);
        let (middle, bottom) = rest.split_at_mut(ih * ww);
        top.fill(0.0);
        bottom.fill(0.0);
        for (line, out) in src.chunks_exact(iw).zip(middle.chunks_exact_mut(ww)) {
            out[..p].fill(0.0);
            out[p..p + iw].copy_from_slice(line);
            out[p + iw..].fill(0.0);
        }
    };
    let (planes_out, tail) = padded.split_at_mut(body);
    if parallel {
        x.par_chunks_exact(ih * iw)
            .zip(planes_out.par_chunks_exact_mut(wh * ww))
            .for_each(pad_plane);
    } else {
        x.chunks_exact(ih * iw)
            .zip(planes_out.chunks_exact_mut(wh * ww))
            .for_each(pad_plane);
    }
    tail.fill(0.0);
}

/// Rows per implicit tile: a multiple of the pool size whose padded-width columns waste the
/// least of the last NR-column block, at most `max_cols` columns (larger on ties).
fn implicit_tile_rows(out_h: usize, padded_w: usize, pool: usize, max_cols: usize) -> usize {
    let waste = |rows: usize| {
        let cols = rows * padded_w;
        (cols.next_multiple_of(simd::NR) - cols) as f64 / cols as f64
    };
    let mut best = pool;
    for rows in (pool..=out_h).step_by(pool) {
        if rows * padded_w <= max_cols && waste(rows) <= waste(best) {
            best = rows;
        }
    }
    best
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}

fn lcm(a: usize, b: usize) -> usize {
    a / gcd(a, b) * b
}

/// Writes the im2col matrix of output rows `r0..r0 + rows` (counted across regions) into
/// `col` ([patch_len, stride], the first rows · out_w columns used, the rest zero): row
/// (i, ky, kx) holds input channel i shifted by the kernel tap, zero where the tap falls in
/// the padding.
fn im2col(conv: &Conv, x: &[f32], r0: usize, rows: usize, col: &mut [f32], stride: usize) {
    let (k, pad, ow) = (conv.kernel, conv.padding, conv.out_w);
    let (ih, iw) = (conv.in_h, conv.in_w);
    let cols = rows * ow;
    let region_len = conv.in_channels * ih * iw;
    for i in 0..conv.in_channels {
        for ky in 0..k {
            // Output rows y with input row y + ky - pad inside the map.
            let y_lo = pad.saturating_sub(ky).min(conv.out_h);
            let y_hi = (ih + pad).saturating_sub(ky).min(conv.out_h).max(y_lo);
            for kx in 0..k {
                let row = &mut col[((i * k + ky) * k + kx) * stride..][..stride];
                row[cols..].fill(0.0);
                let mut t = 0;
                while t < rows {
                    // A run of tile rows inside one region: [t, end).
                    let (region, y) = ((r0 + t) / conv.out_h, (r0 + t) % conv.out_h);
                    let end = rows.min(t + conv.out_h - y);
                    let valid = (t + y_lo.saturating_sub(y)).min(end)
                        ..(t + y_hi.saturating_sub(y)).min(end);
                    row[t * ow..valid.start * ow].fill(0.0);
                    row[valid.end * ow..end * ow].fill(0.0);
                    if !valid.is_empty() {
                        let iy = (y + valid.start - t + ky) - pad;
                        let src = &x[region * region_len + i * ih * iw..][..ih * iw];
                        shifted_rows(
                            src,
                            iy,
                            &mut row[valid.start * ow..valid.end * ow],
                            ow,
                            iw,
                            kx,
                            pad,
                        );
                    }
                    t = end;
                }
            }
        }
    }
}

/// Fills `dst` (whole rows of `ow` columns) with input rows `iy0, iy0 + 1, …` of the map
/// `src` (rows of `iw`), output column xo taking input column xo + kx − pad, zero outside.
fn shifted_rows(
    src: &[f32],
    iy0: usize,
    dst: &mut [f32],
    ow: usize,
    iw: usize,
    kx: usize,
    pad: usize,
) {
    // Columns whose input lies inside the map: [x_lo, x_hi).
    let x_lo = pad.saturating_sub(kx).min(ow);
    let x_hi = (iw + pad).saturating_sub(kx).min(ow).max(x_lo);
    if ow == iw && x_lo < x_hi {
        // "Same" convolution: the rows are contiguous in both, so one shifted copy does the
        // run and only the x_lo / ow − x_hi edge columns of each row need zeroing after it.
        let n = dst.len();
        let start = iy0 * iw + x_lo + kx - pad;
        let (a, b) = (x_lo, n - (ow - x_hi));
        dst[a..b].copy_from_slice(&src[start..start + (b - a)]);
        for line in dst.chunks_exact_mut(ow) {
            line[..x_lo].fill(0.0);
            line[x_hi..].fill(0.0);
        }
        return;
    }
    for (t, line) in dst.chunks_exact_mut(ow).enumerate() {
        let s = &src[(iy0 + t) * iw..][..iw];
        line[..x_lo].fill(0.0);
        line[x_lo..x_hi].copy_from_slice(&s[x_lo + kx - pad..x_hi + kx - pad]);
        line[x_hi..].fill(0.0);
    }
}

/// Max-pools a tile's product ([out_channels, stride]; output pixel (t, x) of the tile at
/// column t · pitch + x), then adds the bias and applies the ReLU (both commute with max):
/// [out_channels, rows / pool, out_w / pool].
#[allow(clippy::too_many_arguments)]
fn pool_tile(
    conv: &Conv,
    product: &[f32],
    rows: usize,
    stride: usize,
    pitch: usize,
    relu: bool,
    pool: usize,
    out: &mut [f32],
) {
    let ow = conv.out_w;
    let (prow, pw) = (rows / pool, ow / pool);
    let mut n = 0;
    for (o, &bias) in conv.bias.iter().enumerate() {
        let plane = &product[o * stride..(o + 1) * stride];
        if pool == 2 {
            // The v1 case, written out so that it compiles to straight-line code.
            for py in 0..prow {
                let upper = &plane[2 * py * pitch..][..ow];
                let lower = &plane[(2 * py + 1) * pitch..][..ow];
                for (u, l) in upper.chunks_exact(2).zip(lower.chunks_exact(2)) {
                    let v = u[0].max(u[1]).max(l[0].max(l[1])) + bias;
                    out[n] = if relu { v.max(0.0) } else { v };
                    n += 1;
                }
            }
            continue;
        }
        for py in 0..prow {
            for px in 0..pw {
                let mut m = f32::NEG_INFINITY;
                for dy in 0..pool {
                    let line = &plane[(py * pool + dy) * pitch + px * pool..][..pool];
                    m = line.iter().fold(m, |a, &b| a.max(b));
                }
                let v = m + bias;
                out[n] = if relu { v.max(0.0) } else { v };
                n += 1;
            }
        }
    }
}

/// Max-pool of `maps` stacked h × w maps.
fn max_pool(x: &[f32], maps: usize, h: usize, w: usize, size: usize, out: &mut [f32]) {
    let (oh, ow) = (h / size, w / size);
    out.fill(f32::NEG_INFINITY);
    for m in 0..maps {
        for y in 0..h {
            for xi in 0..w {
                let o = &mut out[(m * oh + y / size) * ow + xi / size];
                *o = o.max(x[(m * h + y) * w + xi]);
            }
        }
    }
}
