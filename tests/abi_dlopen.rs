//! Loads the built shared library with `dlopen` (libloading) and drives it only through the
//! `uptake_plugin_v1()` function table, as a scanner's post-reconstruction hook would.

use std::ffi::{CStr, c_char, c_void};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

use uptake::ffi::analyzer::{UPTAKE_DEVICE_CPU, UptakeAnalyzer, UptakeAnalyzerOptions};
use uptake::ffi::plugin::UptakePluginV1;
use uptake::ffi::volume::UptakeVolume;
use uptake::ffi::{UPTAKE_ABI_VERSION, UPTAKE_ERR_INVALID_ARGUMENT, UPTAKE_OK};

/// The cdylib cargo built next to this test binary (target/<profile>/libuptake.so).
/// `cargo test` does not build it: `cargo build` must run first (scripts/test.sh does), and a
/// library older than the sources would test stale code, so that is an error too.
fn cdylib_path() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>");
    let lib = profile_dir.join(format!(
        "{}uptake{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    let built = std::fs::metadata(&lib)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("{}: {e}; run `cargo build` first", lib.display()));
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    if let Some(newer) = newest_file(&src).filter(|(t, _)| *t > built) {
        panic!(
            "{} is older than {}: run `cargo build` first",
            lib.display(),
            newer.1.display()
        );
    }
    lib
}

fn newest_file(dir: &std::path::Path) -> Option<(std::time::SystemTime, PathBuf)> {
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| {
            let path = e.path();
            if path.is_dir() {
                newest_file(&path)
            } else {
                Some((e.metadata().ok()?.modified().ok()?, path))
            }
        })
        .max()
}

static LOG_LINES: AtomicUsize = AtomicUsize::new(0);

unsafe extern "C" fn count_log(_level: u32, message: *const c_char, user_data: *mut c_void) {
    // SAFETY: the library passes a valid NUL-terminated message and our own user_data.
    let text = unsafe { CStr::from_ptr(message) };
    assert!(!text.to_bytes().is_empty());
    assert_eq!(user_data as usize, 0xC0FFEE);
    LOG_LINES.fetch_add(1, Ordering::SeqCst);
}

#[test]
fn vendor_hook_drives_the_library_through_the_plugin_table() {
    let path = cdylib_path();
    // SAFETY: loading our own library, whose initialisers have no preconditions.
    let lib = unsafe { libloading::Library::new(&path) }
        .unwrap_or_else(|e| panic!("dlopen {}: {e}", path.display()));
    // SAFETY: the symbol has exactly this signature in include/uptake.h.
    let entry: libloading::Symbol<unsafe extern "C" fn() -> *const UptakePluginV1> =
        unsafe { lib.get(b"uptake_plugin_v1\0") }.expect("uptake_plugin_v1 is exported");
    // SAFETY: the function returns a pointer to a static table.
    let plugin = unsafe { &*entry() };

    assert_eq!(plugin.abi_version, UPTAKE_ABI_VERSION);
    assert!(plugin.struct_size as usize >= std::mem::size_of::<UptakePluginV1>());
    // SAFETY: static NUL-terminated strings.
    let name = unsafe { CStr::from_ptr(plugin.name) }.to_str().unwrap();
    let version = unsafe { CStr::from_ptr(plugin.version) }.to_str().unwrap();
    assert_eq!(name, "uptake");
    assert_eq!(version, env!("CARGO_PKG_VERSION"));

    let st = (plugin.set_log_callback)(Some(count_log), 0xC0FFEE as *mut c_void, 3);
    assert_eq!(st, UPTAKE_OK);

    let mut options = UptakeAnalyzerOptions::default();
    // SAFETY: valid pointers to our own stack values throughout.
    unsafe {
        assert_eq!((plugin.analyzer_options_init)(&mut options), UPTAKE_OK);
        options.device = UPTAKE_DEVICE_CPU;
        let mut analyzer: *mut UptakeAnalyzer = std::ptr::null_mut();
        assert_eq!((plugin.analyzer_create)(&options, &mut analyzer), UPTAKE_OK);
        assert!(!analyzer.is_null());
        let mut device = 0u32;
        assert_eq!((plugin.analyzer_device)(analyzer, &mut device), UPTAKE_OK);
        assert_eq!(device, UPTAKE_DEVICE_CPU);
        (plugin.analyzer_free)(analyzer);
        (plugin.analyzer_free)(std::ptr::null_mut());

        let data = [0.5f32; 8];
        let mut volume = UptakeVolume::default();
        assert_eq!((plugin.volume_init)(&mut volume), UPTAKE_OK);
        volume.dims = [2, 2, 2];
        volume.spacing_mm = [4.0, 4.0, 3.0];
        volume.data = data.as_ptr();
        volume.data_len = 8;
        assert_eq!((plugin.volume_check)(&volume), UPTAKE_OK);
        volume.data_len = 9;
        assert_eq!((plugin.volume_check)(&volume), UPTAKE_ERR_INVALID_ARGUMENT);
        let msg = CStr::from_ptr((plugin.last_error)()).to_str().unwrap();
        assert!(msg.contains("data_len"), "{msg}");
        let mut buf = [0 as c_char; 128];
        let mut len = 0usize;
        assert_eq!(
            (plugin.last_error_copy)(buf.as_mut_ptr(), buf.len(), &mut len),
            UPTAKE_OK
        );
        assert_eq!(len, msg.len());
    }
    let (plugin_status_name, st) = (plugin.status_name, UPTAKE_ERR_INVALID_ARGUMENT);
    // SAFETY: static NUL-terminated string.
    let status = unsafe { CStr::from_ptr(plugin_status_name(st)) };
    assert_eq!(status.to_str().unwrap(), "invalid argument");
    assert!(
        LOG_LINES.load(Ordering::SeqCst) > 0,
        "the host callback received log lines"
    );
    assert_eq!(
        (plugin.set_log_callback)(None, std::ptr::null_mut(), 0),
        UPTAKE_OK
    );
}
