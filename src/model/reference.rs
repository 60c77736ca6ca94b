//! The reference forward pass: direct loops in f64, one region at a time, written to be
//! obviously right rather than fast. Tests hold the fast engine to it.

use super::ModelError;
use super::graph::{Graph, Op};

/// One region's raw network output.
#[derive(Debug, Clone, PartialEq)]
pub struct ReferenceOutput {
    pub suspicious_logit: f64,
    pub location_logits: Vec<f64>,
}

/// Runs every region of `inputs` ([N, C, H, W]) with its tracer bit.
pub fn infer(
    graph: &Graph,
    inputs: &[f32],
    tracer_bits: &[f32],
) -> Result<Vec<ReferenceOutput>, ModelError> {
    let per_region = graph.input_len();
    if inputs.len() != tracer_bits.len() * per_region {
        return Err(ModelError::Input(format!(
            "{} input floats for {} regions of {per_region}",
            inputs.len(),
            tracer_bits.len()
        )));
    }
    Ok(inputs
        .chunks_exact(per_region.max(1))
        .zip(tracer_bits)
        .map(|(region, &bit)| forward(graph, region, bit))
        .collect())
}

/// One region: trunk, then each head on the trunk's features.
pub fn forward(graph: &Graph, input: &[f32], tracer_bit: f32) -> ReferenceOutput {
    let features = run(
        &graph.trunk,
        input.iter().map(|&v| f64::from(v)).collect(),
        tracer_bit,
    );
    let suspicious = run(&graph.suspicious, features.clone(), tracer_bit);
    let location = run(&graph.location, features, tracer_bit);
    ReferenceOutput {
        suspicious_logit: suspicious.first().copied().unwrap_or(f64::NAN),
        location_logits: location,
    }
}

fn run(ops: &[Op], mut x: Vec<f64>, tracer_bit: f32) -> Vec<f64> {
    for op in ops {
        x = match op {
            Op::Conv(c) => {
                let k = c.kernel;
                let mut out = vec![0.0; c.out_channels * c.out_h * c.out_w];
                for o in 0..c.out_channels {
                    for y in 0..c.out_h {
                        for xo in 0..c.out_w {
                            let mut sum = f64::from(c.bias[o]);
                            for i in 0..c.in_channels {
                                for ky in 0..k {
                                    for kx in 0..k {
                                        // Input pixel under kernel tap (ky, kx); outside = 0.
                                        let iy = (y + ky) as isize - c.padding as isize;
                                        let ix = (xo + kx) as isize - c.padding as isize;
                                        if iy < 0
                                            || ix < 0
                                            || iy >= c.in_h as isize
                                            || ix >= c.in_w as isize
                                        {
                                            continue;
                                        }
                                        let v =
                                            x[(i * c.in_h + iy as usize) * c.in_w + ix as usize];
                                        let w =
                                            c.weight[((o * c.in_channels + i) * k + ky) * k + kx];
                                        sum += f64::from(w) * v;
                                    }
                                }
                            }
                            out[(o * c.out_h + y) * c.out_w + xo] = sum;
                        }
                    }
                }
                out
            }
            Op::Relu => x.into_iter().map(|v| v.max(0.0)).collect(),
            Op::MaxPool {
                size,
                channels,
                in_h,
                in_w,
            } => {
                let (oh, ow) = (in_h / size, in_w / size);
                let mut out = vec![f64::NEG_INFINITY; channels * oh * ow];
                for c in 0..*channels {
                    for y in 0..*in_h {
                        for xi in 0..*in_w {
                            let o = &mut out[(c * oh + y / size) * ow + xi / size];
                            *o = o.max(x[(c * in_h + y) * in_w + xi]);
                        }
                    }
                }
                out
            }
            Op::Flatten => x,
            Op::ConcatTracer => {
                x.push(f64::from(tracer_bit));
                x
            }
            Op::Linear(l) => (0..l.out_features)
                .map(|o| {
                    let row = &l.weight[o * l.in_features..(o + 1) * l.in_features];
                    f64::from(l.bias[o])
                        + row
                            .iter()
                            .zip(&x)
                            .map(|(&w, &v)| f64::from(w) * v)
                            .sum::<f64>()
                })
                .collect(),
        };
    }
    x
}
