//! SUV conversion (DESIGN S2).

/// Why this stage rejected its input.
#[derive(Debug, thiserror::Error)]
pub enum SuvError {}
