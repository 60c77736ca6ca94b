//! Status codes returned by every `uptake_*` function (DESIGN S10).
//!
//! Values are part of the ABI: never renumber, only append. 0 is success; every other value is an
//! error whose message `uptake_last_error` returns on the same thread.

/// Success.
pub const UPTAKE_OK: u32 = 0;
/// An argument was NULL where it may not be, out of range, or inconsistent.
pub const UPTAKE_ERR_INVALID_ARGUMENT: u32 = 1;
/// A file could not be read or written, or its contents are malformed.
pub const UPTAKE_ERR_IO: u32 = 2;
/// The model file is missing, corrupt or of the wrong version.
pub const UPTAKE_ERR_MODEL: u32 = 3;
/// The requested compute device is unavailable or failed.
pub const UPTAKE_ERR_DEVICE: u32 = 4;
/// The host's progress callback asked to stop.
pub const UPTAKE_ERR_CANCELLED: u32 = 5;
/// A bug in the library; the message says where.
pub const UPTAKE_ERR_INTERNAL: u32 = 6;
/// A panic was caught at the ABI boundary; the library state is still consistent.
pub const UPTAKE_ERR_PANIC: u32 = 7;
/// The study's working set exceeds the memory budget (`UptakeAnalyzeOptions.memory_budget_mb`),
/// or an allocation failed; nothing was kept, and the host's process is unharmed.
pub const UPTAKE_ERR_MEMORY: u32 = 8;

use crate::Error;

/// The status codes as a Rust enum; C code sees only the `u32` constants above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Status {
    Ok = UPTAKE_OK,
    InvalidArgument = UPTAKE_ERR_INVALID_ARGUMENT,
    Io = UPTAKE_ERR_IO,
    Model = UPTAKE_ERR_MODEL,
    Device = UPTAKE_ERR_DEVICE,
    Cancelled = UPTAKE_ERR_CANCELLED,
    Internal = UPTAKE_ERR_INTERNAL,
    Panic = UPTAKE_ERR_PANIC,
    Memory = UPTAKE_ERR_MEMORY,
}

impl Status {
    /// All codes, in numeric order.
    pub const ALL: [Status; 9] = [
        Status::Ok,
        Status::InvalidArgument,
        Status::Io,
        Status::Model,
        Status::Device,
        Status::Cancelled,
        Status::Internal,
        Status::Panic,
        Status::Memory,
    ];

    /// A short, stable, NUL-terminated name.
    pub fn name(self) -> &'static std::ffi::CStr {
        match self {
            Status::Ok => c"ok",
            Status::InvalidArgument => c"invalid argument",
            Status::Io => c"I/O error",
            Status::Model => c"model error",
            Status::Device => c"device error",
            Status::Cancelled => c"cancelled",
            Status::Internal => c"internal error",
            Status::Panic => c"panic",
            Status::Memory => c"out of memory budget",
        }
    }
}

impl TryFrom<u32> for Status {
    type Error = u32;
    fn try_from(value: u32) -> Result<Self, u32> {
        Status::ALL
            .iter()
            .copied()
            .find(|s| *s as u32 == value)
            .ok_or(value)
    }
}

impl From<&Error> for Status {
    /// The code for an error (DESIGN S10). Allocation failures are `Memory` whichever stage
    /// they happened in.
    fn from(error: &Error) -> Status {
        match error {
            Error::Memory(_)
            | Error::Grid(crate::grid::GridError::Memory(_))
            | Error::Dicom(crate::dicom::DicomError::Memory(_))
            | Error::Nifti(crate::volume::nifti::NiftiError::OutOfMemory { .. }) => Status::Memory,
            Error::Volume(_)
            | Error::Suv(_)
            | Error::Grid(_)
            | Error::Regions(_)
            | Error::Mpr(_)
            | Error::Staging(_)
            | Error::InvalidArgument(_) => Status::InvalidArgument,
            Error::Nifti(_) | Error::Dicom(_) => Status::Io,
            Error::Model(_) => Status::Model,
            Error::Gpu(_) => Status::Device,
            Error::Cancelled => Status::Cancelled,
            Error::Internal(_) => Status::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_unknown_codes_are_rejected() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
            assert_eq!(Status::try_from(i as u32), Ok(*s));
        }
        assert_eq!(Status::try_from(9), Err(9));
        assert_eq!(Status::try_from(u32::MAX), Err(u32::MAX));
    }
}
