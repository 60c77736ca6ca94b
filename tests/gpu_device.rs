//! Device detection never panics: on a machine without CUDA (this CI), with a stub `libcuda`
//! (the toolkit's stubs folder on the library path), and with a driver that lacks entry points;
//! `device = auto` then falls back to the CPU and `device = cuda` is a typed error.

use std::path::Path;
use std::process::Command;

use uptake::analyzer::Device;
use uptake::gpu::{CudaBackend, GpuError, open_for};

/// Set in the child processes that load a fake driver.
const CHILD_ENV: &str = "UPTAKE_GPU_DEVICE_TEST_CHILD";

#[test]
fn cpu_never_probes_and_auto_falls_back_without_a_device() {
    assert!(open_for(Device::Cpu, 0).unwrap().is_none());
    match CudaBackend::open(0) {
        Ok(backend) => println!("a CUDA device is present: {:?}", backend.info()),
        Err(e) => {
            assert!(
                e.is_unavailable(),
                "no device must read as unavailable: {e}"
            );
            assert!(open_for(Device::Auto, 0).unwrap().is_none());
            let err = open_for(Device::Cuda, 0).unwrap_err();
            assert!(err.is_unavailable(), "{err}");
        }
    }
}

#[test]
fn an_ordinal_beyond_the_devices_is_an_error() {
    match CudaBackend::open(4096) {
        Err(e) => assert!(e.is_unavailable(), "{e}"),
        Ok(_) => panic!("device 4096 cannot exist"),
    }
}

/// Builds the fake driver `source` as libcuda.so.1 (and libcuda.so, the first name searched) in
/// a fresh folder, then reruns `test` of this binary with that folder on the library path.
/// Returns false (and says so) when no C compiler is available.
fn run_child_with_fake_driver(source: &str, defines: &[&str], test: &str) -> bool {
    let dir = std::env::temp_dir().join(format!("uptake-fake-cuda-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let lib = dir.join("libcuda.so.1");
    // At run time first: scripts/gpu_check.sh runs this binary from another checkout.
    let root =
        std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| env!("CARGO_MANIFEST_DIR").into());
    let src = Path::new(&root).join(source);
    let cc = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .args(defines)
        .status();
    match cc {
        Ok(s) if s.success() => {}
        other => {
            println!("skipped: no C compiler to build a fake libcuda ({other:?})");
            return false;
        }
    }
    std::fs::copy(&lib, dir.join("libcuda.so")).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("LD_LIBRARY_PATH", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child test did not run:\n{stdout}"
    );
    std::fs::remove_dir_all(&dir).ok();
    true
}

#[test]
fn a_stub_driver_is_reported_not_panicked() {
    run_child_with_fake_driver("tests/gpu_support/cuda_stub.c", &[], "child_stub_driver");
}

#[test]
fn child_stub_driver() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // runs only as the child of a_stub_driver_is_reported_not_panicked
    }
    let err = CudaBackend::open(0).unwrap_err();
    assert!(matches!(err, GpuError::NoDriver { .. }), "{err}");
    assert!(err.to_string().contains("stub library"), "{err}");
    assert!(open_for(Device::Auto, 0).unwrap().is_none());
}

#[test]
fn a_driver_missing_entry_points_is_reported_not_panicked() {
    // Only cuInit: every other symbol cudarc would look up is missing.
    run_child_with_fake_driver(
        "tests/gpu_support/cuda_partial.c",
        &[],
        "child_partial_driver",
    );
}

#[test]
fn child_partial_driver() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return; // runs only as the child of a_driver_missing_entry_points_is_reported_not_panicked
    }
    let err = CudaBackend::open(0).unwrap_err();
    assert!(matches!(err, GpuError::NoDriver { .. }), "{err}");
    assert!(err.to_string().contains("cuLaunchKernel"), "{err}");
}
