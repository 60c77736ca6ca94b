//! Synthetic dual-tracer phantom (DESIGN S11).

/// Why this stage rejected its input.
#[derive(Debug, thiserror::Error)]
pub enum PhantomError {}
