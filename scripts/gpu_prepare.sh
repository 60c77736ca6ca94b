#!/usr/bin/env bash
# Builds, on this (CPU) machine, everything scripts/gpu_check.sh runs on a GPU machine, and copies
# it into gpu-carry/ (git-ignored): the release test binaries of the GPU tests and the stage
# benchmark (stripped), and libnvrtc from the venv's nvidia-cuda-nvrtc wheel (xz-compressed: the
# device tool carries at most 64 MiB). Prints the `run` command.
set -euo pipefail
cd "$(dirname "$0")/.."

NVRTC_DIR="$(.venv/bin/python -c 'import nvidia.cuda_nvrtc, os; print(os.path.join(list(nvidia.cuda_nvrtc.__path__)[0], "lib"))')"
rm -rf gpu-carry
mkdir -p gpu-carry/bin
tar -C "$NVRTC_DIR" -cJf gpu-carry/nvrtc.tar.xz --dereference \
    "$(cd "$NVRTC_DIR" && ls libnvrtc.so.*)" "$(cd "$NVRTC_DIR" && ls libnvrtc-builtins.so.*)"

# Executables of the GPU tests and the benchmark, from cargo's JSON messages.
executables() {
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["target"]["name"], m["executable"])'
}
{
    cargo test --release --no-run --message-format=json --test gpu_parity --test gpu_device --test gpu_nvrtc
    cargo bench --no-run --message-format=json --bench gpu_stages
} | executables | while read -r name exe; do
    case "$name" in
        gpu_*) strip -o "gpu-carry/bin/$name" "$exe" ;;
    esac
done
# The device tests build a fake libcuda from this source when a C compiler exists there.
mkdir -p gpu-carry/tests/gpu_support
cp tests/gpu_support/*.c gpu-carry/tests/gpu_support/
ls -l gpu-carry/bin gpu-carry/nvrtc.tar.xz
size_kib=$(du -sk gpu-carry | cut -f1)
echo "gpu-carry: $((size_kib / 1024)) MiB (the device tool carries at most 64 MiB)"
[ "$size_kib" -lt $((64 * 1024)) ] || { echo "gpu-carry is too large to carry" >&2; exit 1; }
echo
echo "On the device tool: run(command=\"bash scripts/gpu_check.sh\", carry=[\"gpu-carry\"], timeout_s=420)"
