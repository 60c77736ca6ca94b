//! Host log callback: the library logs through the `log` crate, and this logger forwards every
//! record to the function the host registered.

use std::ffi::{CString, c_char, c_void};
use std::sync::{Once, RwLock};

use log::{Level, LevelFilter, Log, Metadata, Record};

use super::guard;
use crate::error::Error;

/// Log levels passed to the callback (and accepted as `max_level`; 0 turns logging off).
pub const UPTAKE_LOG_OFF: u32 = 0;
pub const UPTAKE_LOG_ERROR: u32 = 1;
pub const UPTAKE_LOG_WARN: u32 = 2;
pub const UPTAKE_LOG_INFO: u32 = 3;
pub const UPTAKE_LOG_DEBUG: u32 = 4;
pub const UPTAKE_LOG_TRACE: u32 = 5;

/// Receives one log line: `level` is `UPTAKE_LOG_*`, `message` a NUL-terminated UTF-8 string
/// valid only during the call, `user_data` what was registered. May be called from any thread,
/// also concurrently, so it must be thread-safe.
pub type UptakeLogCallback =
    Option<unsafe extern "C" fn(level: u32, message: *const c_char, user_data: *mut c_void)>;

#[derive(Clone, Copy)]
struct Sink {
    callback: unsafe extern "C" fn(u32, *const c_char, *mut c_void),
    /// The host's pointer, kept as an integer: the host promised it may be used from any thread.
    user_data: usize,
}

struct HostLogger {
    sink: RwLock<Option<Sink>>,
}

static LOGGER: HostLogger = HostLogger {
    sink: RwLock::new(None),
};

impl Log for HostLogger {
    fn enabled(&self, metadata: &Metadata) -> bool {
        metadata.level() <= log::max_level()
    }

    fn log(&self, record: &Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let Some(sink) = self.sink.read().ok().and_then(|s| *s) else {
            return;
        };
        let level = match record.level() {
            Level::Error => UPTAKE_LOG_ERROR,
            Level::Warn => UPTAKE_LOG_WARN,
            Level::Info => UPTAKE_LOG_INFO,
            Level::Debug => UPTAKE_LOG_DEBUG,
            Level::Trace => UPTAKE_LOG_TRACE,
        };
        let text = format!("{}", record.args()).replace('\0', "\u{FFFD}");
        if let Ok(message) = CString::new(text) {
            // SAFETY: the host registered this function for exactly this signature and
            // vouched that user_data may be passed back from any thread.
            unsafe { (sink.callback)(level, message.as_ptr(), sink.user_data as *mut c_void) };
        }
    }

    fn flush(&self) {}
}

fn level_filter(max_level: u32) -> Option<LevelFilter> {
    Some(match max_level {
        UPTAKE_LOG_OFF => LevelFilter::Off,
        UPTAKE_LOG_ERROR => LevelFilter::Error,
        UPTAKE_LOG_WARN => LevelFilter::Warn,
        UPTAKE_LOG_INFO => LevelFilter::Info,
        UPTAKE_LOG_DEBUG => LevelFilter::Debug,
        UPTAKE_LOG_TRACE => LevelFilter::Trace,
        _ => return None,
    })
}

/// Routes the library's log lines up to `max_level` (`UPTAKE_LOG_*`) to `callback`; a NULL
/// callback (or `UPTAKE_LOG_OFF`) stops logging. Process-wide; replaces any earlier callback.
/// Fails with `UPTAKE_ERR_INTERNAL` if the host process already installed another Rust `log`
/// logger, and with `UPTAKE_ERR_INVALID_ARGUMENT` for an unknown level.
#[unsafe(no_mangle)]
pub extern "C" fn uptake_set_log_callback(
    callback: UptakeLogCallback,
    user_data: *mut c_void,
    max_level: u32,
) -> u32 {
    let user_data = user_data as usize;
    guard(|| {
        let filter = level_filter(max_level).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "max_level {max_level} is not an UPTAKE_LOG_* level"
            ))
        })?;
        static INSTALL: Once = Once::new();
        INSTALL.call_once(|| {
            // Fails only when the host process installed its own Rust logger first.
            let _ = log::set_logger(&LOGGER);
        });
        if !routed_to_host() {
            return Err(Error::Internal(
                "another Rust logger is already installed in this process".into(),
            ));
        }
        let sink = callback.map(|callback| Sink {
            callback,
            user_data,
        });
        if let Ok(mut slot) = LOGGER.sink.write() {
            *slot = sink;
        }
        log::set_max_level(if sink.is_some() {
            filter
        } else {
            LevelFilter::Off
        });
        Ok(())
    })
}

/// True when the `log` crate's global logger is ours.
fn routed_to_host() -> bool {
    std::ptr::addr_eq(
        log::logger() as *const dyn Log,
        &LOGGER as *const HostLogger,
    )
}
