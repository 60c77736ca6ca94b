//! uptake: whole-body PET/CT uptake detection, classification and PROMISE miTNM staging.
//!
//! Scanner software loads this crate after reconstruction, as a C-ABI shared library
//! (`include/uptake.h`) or, from Rust, through the items at this crate's root:
//!
//! - [`Analyzer`], built once from an [`AnalyzerConfig`] (compute [`Device`], threads, the model
//!   file), analyzes many studies; [`AnalyzeOptions`] carry the per-study settings and a
//!   progress callback over the pipeline's [`Stage`]s.
//! - [`Volume`] and [`Geometry`]: a PET in SUV and a CT in HU, each on its own LPS grid.
//!   [`suvbw_factor`] and [`try_to_suv`] turn activity concentration into SUV from the
//!   [`SuvMetadata`] of a PET series.
//! - [`Report`]: every uptake region as a [`Finding`] with its [`LocationClass`] and staging
//!   [`Role`], the [`MiTnm`] stage in its [`TStage`], [`NStage`], [`MStage`] and [`BonePattern`]
//!   categories, burden and reference uptake; JSON as `docs/report-schema.md` describes it.
//! - [`Model`]: the model file (safetensors, `docs/model-format.md`) with its location classes
//!   and [`OperatingPoints`]; one is embedded in the library.
//! - [`Error`]: one typed error per pipeline stage; [`Tracer`]: 68Ga-PSMA-11 or 18F-FDG.
//!
//! ```
//! use uptake::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device, Geometry, Tracer, Volume};
//!
//! // A 40 × 40 × 40 mm study at 4 mm: background uptake and one hot focus, in soft tissue.
//! let geometry = Geometry::axis_aligned([10, 10, 10], [4.0; 3], [0.0; 3])?;
//! let mut pet = Volume::filled(geometry, 0.5_f32);
//! pet.data_mut()[geometry.index(5, 5, 5)] = 12.0;
//! let ct = Volume::filled(geometry, 40.0_f32);
//!
//! let analyzer = Analyzer::new(AnalyzerConfig {
//!     device: Device::Cpu,
//!     ..AnalyzerConfig::default()
//! })?;
//! let report = analyzer.analyze(&pet, &ct, Tracer::Psma, &AnalyzeOptions::default())?;
//! assert_eq!(report.findings.len(), 1);
//! println!("{}", report.staging.line());
//! # Ok::<(), uptake::Error>(())
//! ```
//!
//! The documented modules are the pipeline's stages (DESIGN S14), for tools that reproduce part
//! of it exactly, as `uptake-train` does when it trains on the analyzer's own regions and
//! reformations: [`volume`] (with NIfTI), [`suv`], [`grid`], [`regions`], [`mpr`], [`model`],
//! [`classes`], [`findings`], [`staging`] and [`report`].
//!
//! `DESIGN Sx` in the docs and comments of this crate is section Sx of the repository's
//! `docs/design.md`.
#![deny(unsafe_code)]

pub mod classes;
pub mod findings;
pub mod grid;
pub mod model;
pub mod mpr;
pub mod regions;
pub mod report;
pub mod staging;
pub mod suv;
pub mod volume;

pub(crate) mod memory;

// Hidden from the documentation: what these modules hold for Rust callers is re-exported
// below. Their paths stay public where the sibling crates (phantom, CLI) or this crate's own
// integration tests and benchmarks import from them:
// - analyzer, error, tracer: the CLI, the phantom and the tests import from the module paths;
// - dicom: DICOM PET and CT series reading for the CLI (`analyze --pet DIR --ct DIR`,
//   `convert`, `suv`); the plugin's hosts pass volumes, not files;
// - ffi: the C ABI (`include/uptake.h`), whose symbols are exported whatever the module's
//   visibility; the tests check its status codes and load its plugin table;
// - gpu: the CUDA backend (DESIGN S13), which the CLI's `info` probes and the GPU parity tests
//   and benchmarks drive kernel by kernel; callers choose it with `Device`.
#[doc(hidden)]
pub mod analyzer;
#[doc(hidden)]
pub mod dicom;
#[doc(hidden)]
pub mod error;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod ffi;
#[doc(hidden)]
#[allow(unsafe_code)]
pub mod gpu;
#[doc(hidden)]
pub mod tracer;

pub use analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device, Stage};
pub use classes::{LocationClass, Role};
pub use dicom::DicomError;
pub use error::{Error, Result};
pub use findings::{Finding, LocationPrediction};
pub use gpu::GpuError;
pub use grid::GridError;
pub use memory::MemoryError;
pub use model::{Model, ModelError, OperatingPoints};
pub use mpr::MprError;
pub use regions::RegionsError;
pub use report::Report;
pub use staging::{BonePattern, MStage, MiTnm, NStage, ParseStageError, StagingError, TStage};
pub use suv::{SuvError, SuvMetadata, suvbw_factor, try_to_suv};
pub use tracer::Tracer;
pub use volume::nifti::NiftiError;
pub use volume::{Geometry, Volume, VolumeError};

/// Library version, as in `Cargo.toml`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
