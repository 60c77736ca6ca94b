//! Common 3 mm grid (DESIGN S3).

/// Why this stage rejected its input.
#[derive(Debug, thiserror::Error)]
pub enum GridError {}
