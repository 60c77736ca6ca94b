//! Device detection never panics: on a machine without CUDA (this CI), with a stub `libcuda`
//! (the toolkit's stubs folder on the library path), and with a driver that lacks entry points;
//! `device = auto` then falls back to the CPU and `device = cuda` is a typed error, both for the
//! backend alone and for the analyzer built on it.

use std::path::Path;
use std::process::Command;

use uptake::analyzer::{AnalyzeOptions, Analyzer, AnalyzerConfig, Device};
use uptake::gpu::{CudaBackend, GpuError, open_for};
use uptake::{Error, Geometry, Tracer, Volume};

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

fn analyzer(device: Device) -> Result<Analyzer, Error> {
    Analyzer::new(AnalyzerConfig {
        device,
        threads: 1,
        ..AnalyzerConfig::default()
    })
}

/// A PET with one hot sphere (SUV 8 in 0.5) and a soft-tissue CT, on small grids.
fn hot_spot_study() -> (Volume<f32>, Volume<f32>) {
    let g = Geometry::axis_aligned([24, 24, 24], [4.0; 3], [-46.0; 3]).unwrap();
    let pet = (0..g.len())
        .map(|i| {
            let [x, y, z] = g.coords(i);
            let r2 = [x, y, z]
                .iter()
                .map(|&c| (c as f64 - 12.0).powi(2))
                .sum::<f64>();
            if r2 <= 4.0 { 8.0 } else { 0.5 }
        })
        .collect();
    let ct = Geometry::axis_aligned([32, 32, 32], [3.0; 3], [-46.0; 3]).unwrap();
    (Volume::new(g, pet).unwrap(), Volume::filled(ct, 40.0f32))
}

#[test]
fn the_analyzer_uses_the_device_when_there_is_one_and_says_so() {
    let present = CudaBackend::open(0).is_ok();
    let auto = analyzer(Device::Auto).unwrap();
    let (pet, ct) = hot_spot_study();
    let report = auto
        .analyze(&pet, &ct, Tracer::Psma, &AnalyzeOptions::default())
        .unwrap();
    assert_eq!(report.findings.len(), 1);
    if present {
        assert_eq!(auto.device(), Device::Cuda);
        assert_eq!(report.device, "cuda");
        assert!(auto.cuda_device().is_some());
        assert_eq!(analyzer(Device::Cuda).unwrap().device(), Device::Cuda);
    } else {
        assert_eq!(auto.device(), Device::Cpu);
        assert_eq!(report.device, "cpu");
        assert!(auto.cuda_device().is_none());
        match analyzer(Device::Cuda) {
            Err(e @ Error::Gpu(_)) => assert!(e.to_string().contains("CUDA"), "{e}"),
            other => panic!("device = cuda without a device: {other:?}"),
        }
    }
    assert_eq!(analyzer(Device::Cpu).unwrap().device(), Device::Cpu);
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
    assert_eq!(analyzer(Device::Auto).unwrap().device(), Device::Cpu);
    match analyzer(Device::Cuda) {
        Err(Error::Gpu(e)) => assert!(e.to_string().contains("stub library"), "{e}"),
        other => panic!("device = cuda with a stub driver: {other:?}"),
    }
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
