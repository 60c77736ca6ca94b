#!/usr/bin/env bash
# For a machine WITH a CUDA device: runs the prebuilt binaries in gpu-carry/ (made by
# scripts/gpu_prepare.sh; this script builds nothing): the kernel compile check, the detection
# tests, the parity tests (a skip counts as a failure here: the device must be found; they include
# the whole analysis on CPU and device), and the stage benchmark, which prints the results table:
# per-stage device times with the CNN's regions/s and TFLOP/s against peak, then (tensor-core run
# only) the whole analysis of a clinical phantom with device = cpu and device = cuda side by side.
# Exits non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
CARRY=gpu-carry
if [ ! -d "$CARRY/bin" ]; then
    echo "no $CARRY/bin: run scripts/gpu_prepare.sh on the build machine first" >&2
    exit 2
fi
# NVRTC: the carried wheel's libraries (NVRTC 12.x; its cubins and PTX load on newer drivers).
NVRTC_DIR="${TMPDIR:-/tmp}/uptake-nvrtc"
mkdir -p "$NVRTC_DIR"
tar -C "$NVRTC_DIR" -xJf "$CARRY/nvrtc.tar.xz" || { echo "cannot unpack $CARRY/nvrtc.tar.xz" >&2; exit 2; }
export LD_LIBRARY_PATH="$NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export UPTAKE_KERNEL_CACHE="${TMPDIR:-/tmp}/uptake-kernels"
# The device tests look for their fake-driver sources relative to the manifest dir.
export CARGO_MANIFEST_DIR="$PWD"

nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.max.sm --format=csv 2>/dev/null || echo "(no nvidia-smi)"

failed=0
for t in gpu_nvrtc gpu_device gpu_parity; do
    echo
    echo "== $t"
    out="$(timeout 300 "$CARRY/bin/$t" --nocapture --test-threads=1 2>&1)"
    rc=$?
    echo "$out" | grep -E "^test |test result|skipped|panicked|error" | head -60
    if [ $rc -ne 0 ]; then
        echo "FAILED: $t (exit $rc)"
        echo "$out" | tail -40
        failed=1
    elif echo "$out" | grep -q "skipped: no CUDA device"; then
        echo "FAILED: $t skipped although this machine should have a CUDA device"
        failed=1
    fi
done

for conv in tensor simt; do
    echo
    echo "== stage benchmark (convolution: $conv)"
    if [ "$conv" = simt ]; then
        export UPTAKE_GPU_CONV=simt
        args=(--stages-only)
    else
        unset UPTAKE_GPU_CONV
        args=()
    fi
    timeout 300 "$CARRY/bin/gpu_stages" "${args[@]}" || { echo "FAILED: benchmark ($conv)"; failed=1; }
done
unset UPTAKE_GPU_CONV

echo
if [ $failed -eq 0 ]; then echo "gpu check: all passed"; else echo "gpu check: FAILURES above"; fi
exit $failed
