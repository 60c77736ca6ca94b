//! The C ABI (DESIGN S10).
//!
//! Conventions every function follows:
//! - returns a `u32` status (`UPTAKE_OK` = 0) unless it is a getter or a `*_free`;
//! - never lets a panic cross the boundary: `guard` turns it into `UPTAKE_ERR_PANIC`;
//! - on failure stores a message for `uptake_last_error` on the calling thread;
//! - never modifies or frees memory the caller owns; library-owned results are freed by the
//!   matching `uptake_*_free`, and `uptake_*_free(NULL)` is a no-op;
//! - option structs begin with `struct_size`, so old and new callers both work (`read_sized`).

pub mod analyze;
pub mod analyzer;
pub mod last_error;
pub mod logging;
pub mod model;
pub mod plugin;
pub mod report;
pub mod status;
pub mod suv;
pub mod volume;

use std::ffi::{CStr, c_char};
use std::panic::{AssertUnwindSafe, catch_unwind};

use crate::error::{Error, panic_message};
use crate::tracer::Tracer;
pub use status::*;

/// Version of the C ABI described by `include/uptake.h`; bumped on any incompatible change.
pub const UPTAKE_ABI_VERSION: u32 = 1;

/// Largest `struct_size` accepted for an option struct: a guard against reading far past a
/// caller's struct when the field holds garbage.
pub const UPTAKE_MAX_STRUCT_SIZE: u32 = 4096;

/// Runs an entry point's body behind the panic boundary and maps its outcome to a status code.
pub(crate) fn guard(body: impl FnOnce() -> Result<(), Error>) -> u32 {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(())) => UPTAKE_OK,
        Ok(Err(e)) => {
            last_error::set(&e.to_string());
            Status::from(&e) as u32
        }
        Err(payload) => {
            last_error::set(&format!("panic: {}", panic_message(&*payload)));
            UPTAKE_ERR_PANIC
        }
    }
}

/// Like [`guard`] for functions without a status: a panic is recorded and swallowed.
pub(crate) fn guard_void(body: impl FnOnce()) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(body)) {
        last_error::set(&format!("panic: {}", panic_message(&*payload)));
    }
}

/// The error for a NULL argument.
pub(crate) fn null(name: &str) -> Error {
    Error::InvalidArgument(format!("{name} is NULL"))
}

/// The tracer of an `UPTAKE_TRACER_*` code.
pub(crate) fn tracer_of(code: u32) -> Result<Tracer, Error> {
    match code {
        analyze::UPTAKE_TRACER_PSMA => Ok(Tracer::Psma),
        analyze::UPTAKE_TRACER_FDG => Ok(Tracer::Fdg),
        other => Err(Error::InvalidArgument(format!(
            "tracer = {other} is not an UPTAKE_TRACER_* value"
        ))),
    }
}

/// Reads a caller's option struct whose first field is `struct_size: u32`.
///
/// - `struct_size` below `min_size` (the first ABI version's size) is rejected;
/// - an older, smaller struct is copied as far as it goes, the rest keeps `T::default()`;
/// - a newer, larger struct is accepted only when every byte we do not know is zero, so a
///   caller never silently loses an option it set.
///
/// # Safety
/// `ptr` must be NULL or point to at least `struct_size` readable bytes.
pub(crate) unsafe fn read_sized<T: Copy + Default>(
    ptr: *const T,
    min_size: usize,
    name: &str,
) -> Result<T, Error> {
    if ptr.is_null() {
        return Err(null(name));
    }
    // SAFETY: the caller guarantees at least the leading u32 is readable; read_unaligned
    // because a C caller may hand us any address.
    let size = unsafe { std::ptr::read_unaligned(ptr as *const u32) } as usize;
    if size < min_size || size > UPTAKE_MAX_STRUCT_SIZE as usize {
        return Err(Error::InvalidArgument(format!(
            "{name}->struct_size is {size}; expected at least {min_size} and at most \
             {UPTAKE_MAX_STRUCT_SIZE} (set it to sizeof the struct)"
        )));
    }
    let ours = std::mem::size_of::<T>();
    if size > ours {
        // SAFETY: the caller guarantees `size` readable bytes starting at `ptr`.
        let tail = unsafe { std::slice::from_raw_parts((ptr as *const u8).add(ours), size - ours) };
        if tail.iter().any(|&b| b != 0) {
            return Err(Error::InvalidArgument(format!(
                "{name} is {size} bytes and sets fields this library (which knows {ours}) \
                 does not support; upgrade the library"
            )));
        }
    }
    let mut out = T::default();
    // SAFETY: copies min(size, ours) bytes from the caller's struct into our own, both valid
    // for that many bytes; T is a repr(C) struct of integers, floats and raw pointers, for
    // which every bit pattern is valid.
    unsafe {
        std::ptr::copy_nonoverlapping(
            ptr as *const u8,
            &mut out as *mut T as *mut u8,
            size.min(ours),
        );
    }
    Ok(out)
}

/// Borrows an optional NUL-terminated UTF-8 string.
///
/// # Safety
/// `ptr` must be NULL or a valid NUL-terminated string that outlives the returned borrow.
pub(crate) unsafe fn opt_str<'a>(ptr: *const c_char, name: &str) -> Result<Option<&'a str>, Error> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str()
        .map(Some)
        .map_err(|_| Error::InvalidArgument(format!("{name} is not valid UTF-8")))
}

/// The library version as a static NUL-terminated string, e.g. "0.1.0".
#[unsafe(no_mangle)]
pub extern "C" fn uptake_version() -> *const c_char {
    VERSION_C.as_ptr() as *const c_char
}

/// `CARGO_PKG_VERSION` with its NUL terminator, shared with the plugin table.
pub(crate) const VERSION_C: &str = concat!(env!("CARGO_PKG_VERSION"), "\0");

/// The C ABI version this library implements (`UPTAKE_ABI_VERSION` of its header).
#[unsafe(no_mangle)]
pub extern "C" fn uptake_abi_version() -> u32 {
    UPTAKE_ABI_VERSION
}

/// A static description of a status code ("ok", "invalid argument", …); "unknown status" for
/// a value that is not a status. Never NULL; owned by the library.
#[unsafe(no_mangle)]
pub extern "C" fn uptake_status_name(status: u32) -> *const c_char {
    match Status::try_from(status) {
        Ok(s) => s.name().as_ptr(),
        Err(_) => c"unknown status".as_ptr(),
    }
}

/// The message of the last failed call on this thread ("" if none failed yet). Never NULL.
/// Owned by the library and valid until the next failing `uptake_*` call on this thread.
#[unsafe(no_mangle)]
pub extern "C" fn uptake_last_error() -> *const c_char {
    last_error::as_ptr()
}

/// Copies the last error message of this thread, NUL-terminated, into `buf` (`buf_len` bytes).
///
/// `*out_len` (optional) receives the message length in bytes, without the NUL. Returns
/// `UPTAKE_OK` when the whole message fit, `UPTAKE_ERR_INVALID_ARGUMENT` when `buf` is NULL with
/// `buf_len > 0` or when the message was truncated (the buffer then holds as much as fits,
/// cut at a UTF-8 character boundary). Does not change the stored message.
///
/// # Safety
/// `buf` must be NULL or point to `buf_len` writable bytes; `out_len` NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn uptake_last_error_copy(
    buf: *mut c_char,
    buf_len: usize,
    out_len: *mut usize,
) -> u32 {
    let result = catch_unwind(AssertUnwindSafe(|| {
        if buf.is_null() && buf_len > 0 {
            return UPTAKE_ERR_INVALID_ARGUMENT;
        }
        let slice: &mut [u8] = if buf_len == 0 {
            &mut []
        } else {
            // SAFETY: non-NULL and `buf_len` writable bytes by the caller's contract.
            unsafe { std::slice::from_raw_parts_mut(buf as *mut u8, buf_len) }
        };
        let (len, fit) = last_error::copy_into(slice);
        if !out_len.is_null() {
            // SAFETY: non-NULL and writable by the caller's contract.
            unsafe { out_len.write_unaligned(len) };
        }
        if fit {
            UPTAKE_OK
        } else {
            UPTAKE_ERR_INVALID_ARGUMENT
        }
    }));
    result.unwrap_or(UPTAKE_ERR_PANIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_maps_errors_and_panics() {
        assert_eq!(guard(|| Ok(())), UPTAKE_OK);
        assert_eq!(guard(|| Err(null("x"))), UPTAKE_ERR_INVALID_ARGUMENT);
        // SAFETY: the library returns a valid NUL-terminated string.
        let msg = unsafe { CStr::from_ptr(uptake_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "invalid argument: x is NULL");
        let status = guard(|| panic!("boom"));
        assert_eq!(status, UPTAKE_ERR_PANIC);
        // SAFETY: as above.
        let msg = unsafe { CStr::from_ptr(uptake_last_error()) };
        assert_eq!(msg.to_str().unwrap(), "panic: boom");
    }

    #[test]
    fn last_error_copy_truncates_on_char_boundary() {
        last_error::set("SUV ≥ 1");
        let mut buf = [0 as c_char; 7];
        let mut len = 0usize;
        // SAFETY: buf has 7 writable bytes, len is writable.
        let st = unsafe { uptake_last_error_copy(buf.as_mut_ptr(), buf.len(), &mut len) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
        assert_eq!(len, "SUV ≥ 1".len());
        // "SUV " is 4 bytes, '≥' is 3: 6 bytes fit, so the cut falls back to before '≥'.
        // SAFETY: the function NUL-terminated the buffer.
        let got = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(got.to_str().unwrap(), "SUV ");
        let mut big = [0 as c_char; 64];
        // SAFETY: 64 writable bytes; out_len may be NULL.
        let st = unsafe { uptake_last_error_copy(big.as_mut_ptr(), 64, std::ptr::null_mut()) };
        assert_eq!(st, UPTAKE_OK);
        // SAFETY: NUL-terminated by the function.
        assert_eq!(
            unsafe { CStr::from_ptr(big.as_ptr()) }.to_str().unwrap(),
            "SUV ≥ 1"
        );
        // SAFETY: NULL buffer with a non-zero length is reported, not dereferenced.
        let st = unsafe { uptake_last_error_copy(std::ptr::null_mut(), 5, std::ptr::null_mut()) };
        assert_eq!(st, UPTAKE_ERR_INVALID_ARGUMENT);
    }
}
