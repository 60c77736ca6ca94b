//! uptake: whole-body PET/CT uptake detection, classification and PROMISE miTNM staging.
//!
//! One module per pipeline stage (DESIGN S14); the C ABI lives in [`ffi`]. `DESIGN Sx` in the
//! docs and comments of this crate is section Sx of the repository's `docs/design.md`.
#![deny(unsafe_code)]

pub mod classes;
pub mod dicom;
pub mod error;
pub mod findings;
pub mod grid;
pub mod memory;
pub mod model;
pub mod mpr;
pub mod regions;
pub mod report;
pub mod staging;
pub mod suv;
pub mod tracer;
pub mod volume;

pub mod analyzer;
#[allow(unsafe_code)]
pub mod ffi;
#[allow(unsafe_code)]
pub mod gpu;

pub use error::{Error, Result};
pub use tracer::Tracer;
pub use volume::{Geometry, Volume, VolumeError};

/// Library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
