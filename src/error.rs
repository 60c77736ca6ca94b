//! The crate-wide error: one typed error per pipeline stage (the C ABI maps it to a status code
//! in `ffi::status`).

use thiserror::Error;

/// Any error the library can return.
#[derive(Debug, Error)]
pub enum Error {
    #[error(transparent)]
    Volume(#[from] crate::volume::VolumeError),
    #[error(transparent)]
    Nifti(#[from] crate::volume::nifti::NiftiError),
    #[error(transparent)]
    Suv(#[from] crate::suv::SuvError),
    #[error(transparent)]
    Dicom(#[from] crate::dicom::DicomError),
    #[error(transparent)]
    Grid(#[from] crate::grid::GridError),
    #[error(transparent)]
    Regions(#[from] crate::regions::RegionsError),
    #[error(transparent)]
    Mpr(#[from] crate::mpr::MprError),
    #[error(transparent)]
    Model(#[from] crate::model::ModelError),
    #[error(transparent)]
    Staging(#[from] crate::staging::StagingError),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The CUDA device failed; analysis on a device fails as a whole, never half on the CPU.
    #[error("device error: CUDA: {0}")]
    Gpu(#[from] crate::gpu::GpuError),
    #[error("cancelled by the host")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The message of a caught panic (`&str` and `String` payloads; others are named as such), for
/// the boundaries that turn a panic into an error: the C ABI and the CUDA backend.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_string()
    }
}
