#!/usr/bin/env bash
# The whole test suite: formatting, lints, Rust unit and integration tests (the committed C header among them),
# the C ABI test under AddressSanitizer, and the Python suite (ctypes binding and the independent
# oracles: nibabel, scipy, cc3d, SimpleITK, onnxruntime, scikit-learn, pydicom).
# Installs what it needs: a Python venv (.venv) with the pinned versions of requirements-test.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "Python venv with pinned oracles"
if [ ! -x .venv/bin/python ]; then
    python3 -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-test.txt
export UPTAKE_PYTHON="$PWD/.venv/bin/python"
# libnvrtc from the nvidia-cuda-nvrtc wheel, for compiling CUDA kernels without a toolkit.
NVRTC_DIR="$(.venv/bin/python -c 'import nvidia.cuda_nvrtc, os; print(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], "lib"))' 2>/dev/null || true)"
if [ -n "$NVRTC_DIR" ]; then
    export LD_LIBRARY_PATH="$NVRTC_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

step "rustfmt, clippy and rustdoc"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "build (debug for the dlopen test, release for C and Python)"
cargo build
cargo build --release

step "the plugin links neither the command line, the phantom nor the training framework"
linked="$(cargo tree -p uptake -e normal,build --prefix none | grep -E '^(clap|indicatif|image|uptake-phantom|uptake-cli|burn) ' || true)"
if [ -n "$linked" ]; then
    echo "libuptake depends on:" >&2
    echo "$linked" >&2
    exit 1
fi

step "exported symbols: only uptake_*"
others="$(nm -D --defined-only target/release/libuptake.so | awk '{print $3}' | grep -v '^uptake_' || true)"
if [ -n "$others" ]; then
    echo "unexpected exported symbols:" >&2
    echo "$others" >&2
    exit 1
fi

step "Rust tests (the library and the uptake-train workspace member; UPTAKE_PYTHON is the oracle)"
cargo test --workspace

step "CUDA kernels through NVRTC and GPU parity (each prints 'skipped: no CUDA device' without one)"
# pipefail makes a failing cargo fail the step; grep only trims the output to what matters.
# --workspace as above: the same feature resolution, so the binaries built there are reused.
cargo test --workspace --test gpu_nvrtc --test gpu_device --test gpu_parity -- --nocapture 2>&1 |
    grep -E 'skipped|test result|panicked|FAILED|error'

step "C ABI test (-std=c11 -Wall -Wextra -Werror, AddressSanitizer + UBSan, leak check)"
mkdir -p target/c-tests
cc -std=c11 -Wall -Wextra -Werror -g -fsanitize=address,undefined -fno-omit-frame-pointer \
    -Iinclude tests/c/test_abi.c -Ltarget/release -luptake -Wl,-rpath,"$PWD/target/release" -lm -pthread \
    -o target/c-tests/test_abi
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1 target/c-tests/test_abi

step "Python tests (ctypes binding and oracles)"
.venv/bin/python -m pytest tests/python -q

step "Coverage-guided fuzzing under ASan: NIfTI, DICOM, model file, analyze (UPTAKE_FUZZ_SECONDS each)"
bash scripts/fuzz.sh

printf '\nall test stages passed\n'
