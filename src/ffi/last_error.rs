//! The thread-local last error message.
//!
//! Each failing `uptake_*` call stores its message here; success leaves it untouched, so the
//! message of the last failure on this thread stays readable until the next failure.

use std::cell::RefCell;
use std::ffi::{CString, c_char};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Stores `message` (interior NUL bytes are replaced) as this thread's last error.
pub fn set(message: &str) {
    let c = CString::new(message.replace('\0', "\u{FFFD}")).unwrap_or_default();
    LAST_ERROR.with(|e| *e.borrow_mut() = c);
}

/// Pointer to this thread's message; valid until the next failing call on this thread.
pub fn as_ptr() -> *const c_char {
    LAST_ERROR.with(|e| e.borrow().as_ptr())
}

/// Copies the message into a caller buffer. Returns (bytes of message, whether it fit).
pub fn copy_into(buf: &mut [u8]) -> (usize, bool) {
    LAST_ERROR.with(|e| {
        let e = e.borrow();
        let msg = e.as_bytes();
        if buf.is_empty() {
            return (msg.len(), false);
        }
        let mut n = msg.len().min(buf.len() - 1);
        // Never cut a UTF-8 sequence in half: back up to the start of the character.
        while n < msg.len() && n > 0 && (msg[n] & 0xC0) == 0x80 {
            n -= 1;
        }
        buf[..n].copy_from_slice(&msg[..n]);
        buf[n] = 0;
        (msg.len(), n == msg.len())
    })
}
