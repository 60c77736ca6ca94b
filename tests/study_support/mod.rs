//! The phantom study that the whole-analysis tests share: generated once per test binary.

use std::sync::OnceLock;

use uptake::Tracer;
use uptake_phantom::{self as phantom, Coverage, PhantomSpec, Preset, Study};

/// A small PSMA phantom (seed 208): uptake regions in several locations, quick to analyse.
pub fn study() -> &'static Study {
    static S: OnceLock<Study> = OnceLock::new();
    S.get_or_init(|| {
        phantom::generate(&PhantomSpec {
            tracer: Tracer::Psma,
            seed: 208,
            preset: Preset::Small,
            coverage: Coverage::WholeBody,
        })
        .unwrap()
    })
}
