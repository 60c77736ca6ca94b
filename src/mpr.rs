//! Coronal reformations, the network input (DESIGN S5).

/// Why this stage rejected its input.
#[derive(Debug, thiserror::Error)]
pub enum MprError {}
