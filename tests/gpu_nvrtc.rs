//! Every kernel file compiles through NVRTC, as cubin for the H200's sm_90 and as PTX for an
//! older architecture (the fallback path), and exports the kernels the wrappers look up; a broken
//! kernel is reported with NVRTC's log. Runs wherever libnvrtc loads (CI puts the
//! nvidia-cuda-nvrtc wheel on LD_LIBRARY_PATH); elsewhere prints `skipped: no NVRTC`.

use uptake::gpu::nvrtc::{ALL_SOURCES, KernelSource, Target, compile};
use uptake::gpu::{GpuError, NvrtcInfo, probe_nvrtc};

fn nvrtc() -> Option<NvrtcInfo> {
    match probe_nvrtc() {
        Ok(info) => Some(info),
        Err(e) => {
            println!("skipped: no NVRTC ({e})");
            None
        }
    }
}

#[test]
fn every_kernel_compiles_to_an_sm_90_cubin() {
    let Some(info) = nvrtc() else { return };
    assert!(
        info.architectures.contains(&90),
        "NVRTC {:?} lacks sm_90: {:?}",
        info.version,
        info.architectures
    );
    for source in ALL_SOURCES {
        let image = compile(source, Target::Cubin(90), &info).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            &image.bytes[..4],
            b"\x7fELF",
            "{}: a cubin is an ELF file",
            source.name
        );
        for entry in source.entries {
            let found = image
                .bytes
                .windows(entry.len() + 1)
                .any(|w| &w[..entry.len()] == entry.as_bytes() && w[entry.len()] == 0);
            assert!(found, "{}: no symbol {entry} in the cubin", source.name);
        }
    }
}

#[test]
fn every_kernel_compiles_to_ptx_for_the_fallback_path() {
    let Some(info) = nvrtc() else { return };
    // compute_75 predates the tensor-core kernels' mma.m16n8k16: they compile to a trap there.
    for arch in [75, 90] {
        for source in ALL_SOURCES {
            let image = compile(source, Target::Ptx(arch), &info).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(
                image.bytes.last(),
                Some(&0),
                "PTX is NUL-terminated for cuModuleLoadData"
            );
            let ptx = std::str::from_utf8(&image.bytes[..image.bytes.len() - 1]).unwrap();
            assert!(
                ptx.contains(&format!(".target sm_{arch}")),
                "{}: {ptx:.400}",
                source.name
            );
            for entry in source.entries {
                assert!(
                    ptx.contains(&format!(".entry {entry}(")),
                    "{}: no .entry {entry}",
                    source.name
                );
            }
        }
    }
    let cnn = compile(uptake::gpu::nvrtc::CNN, Target::Ptx(90), &info).unwrap();
    let ptx = String::from_utf8_lossy(&cnn.bytes);
    assert!(
        ptx.contains("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32"),
        "the convolution uses tensor cores on sm_90"
    );
}

#[test]
fn a_broken_kernel_is_an_error_with_the_nvrtc_log() {
    let Some(info) = nvrtc() else { return };
    let broken = KernelSource {
        name: "broken",
        code: "extern \"C\" __global__ void broken(float* x) { x[0] = undefined_name; }",
        entries: &["broken"],
    };
    match compile(broken, Target::Cubin(90), &info) {
        Err(GpuError::Compile {
            kernel, arch, log, ..
        }) => {
            assert_eq!(kernel, "broken");
            assert_eq!(arch, "sm_90");
            assert!(log.contains("undefined_name"), "log: {log}");
        }
        other => panic!("expected a compile error, got {other:?}"),
    }
}

#[test]
fn the_best_target_prefers_the_device_cubin_and_falls_back_to_ptx() {
    let info = NvrtcInfo {
        library: String::new(),
        version: (12, 9),
        architectures: vec![75, 80, 86, 89, 90, 100, 120],
    };
    assert_eq!(Target::for_device(90, &info).unwrap(), Target::Cubin(90));
    // A newer device than NVRTC knows runs the newest PTX NVRTC can write.
    assert_eq!(Target::for_device(130, &info).unwrap(), Target::Ptx(120));
    assert_eq!(Target::for_device(87, &info).unwrap(), Target::Ptx(86));
    assert!(matches!(
        Target::for_device(70, &info),
        Err(GpuError::Unsupported { .. })
    ));
}
