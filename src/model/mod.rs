//! Model file and CPU inference engine (DESIGN S7).

/// Why this stage rejected its input.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {}
