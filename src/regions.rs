//! Uptake regions (DESIGN S4).

/// Why this stage rejected its input.
#[derive(Debug, thiserror::Error)]
pub enum RegionsError {}
