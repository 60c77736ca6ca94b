//! The crate-wide error: one typed error per pipeline stage, mapped once to a C status code.

use thiserror::Error;

use crate::ffi::status::Status;

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
    Phantom(#[from] crate::phantom::PhantomError),
    #[error(transparent)]
    Staging(#[from] crate::staging::StagingError),
    #[error(transparent)]
    Memory(#[from] crate::memory::MemoryError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("device error: {0}")]
    Device(String),
    #[error("cancelled by the host")]
    Cancelled,
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    /// The C status code for this error (S10).
    pub fn status(&self) -> Status {
        match self {
            Error::Memory(_)
            | Error::Grid(crate::grid::GridError::Memory(_))
            | Error::Dicom(crate::dicom::DicomError::Memory(_))
            | Error::Nifti(crate::volume::nifti::NiftiError::OutOfMemory { .. }) => Status::Memory,
            Error::Volume(_)
            | Error::Suv(_)
            | Error::Grid(_)
            | Error::Regions(_)
            | Error::Mpr(_)
            | Error::Phantom(_)
            | Error::Staging(_)
            | Error::InvalidArgument(_) => Status::InvalidArgument,
            Error::Nifti(_) | Error::Dicom(_) => Status::Io,
            Error::Model(_) => Status::Model,
            Error::Device(_) => Status::Device,
            Error::Cancelled => Status::Cancelled,
            Error::Internal(_) => Status::Internal,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
