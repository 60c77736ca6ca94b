#!/usr/bin/env python3
"""Throughput of the CPU engine (DESIGN S7) side by side with onnxruntime on the same network,
the same weights and the same thread count, in one run. Prints regions/s, GFLOP/s and the
ratio ours / onnxruntime.

    cargo build --release
    .venv/bin/python scripts/bench_model.py [--model FILE] [--batches 1,64,256] [--threads 1,2]
"""

import argparse
import pathlib
import statistics
import sys
import time

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "python"))

from test_model_onnx import (  # noqa: E402
    DEFAULT_MODEL,
    Analyzer,
    build_onnx,
    ort_logits,
    ort_session,
    random_regions,
    read_safetensors,
    relative_l2,
)


def rates(ours, ort, regions, min_seconds):
    """Regions per second of both, as medians over rounds that alternate between them, so that
    load from other processes on the machine hits both alike."""
    ours()
    ort()
    wall = {ours: [], ort: []}
    cpu = {ours: [], ort: []}
    start = time.perf_counter()
    while time.perf_counter() - start < 2 * min_seconds or len(wall[ours]) < 5:
        for run in (ours, ort):
            t0, c0 = time.perf_counter(), time.process_time()
            run()
            wall[run].append(time.perf_counter() - t0)
            cpu[run].append(time.process_time() - c0)
    return [regions / statistics.median(t[run]) for t in (wall, cpu) for run in (ours, ort)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--model", default=str(DEFAULT_MODEL))
    ap.add_argument("--lib", default=str(ROOT / "target" / "release" / "libuptake.so"))
    ap.add_argument("--batches", default="1,64,256")
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--seconds", type=float, default=3.0, help="time per measurement")
    args = ap.parse_args()

    meta, tensors, _ = read_safetensors(args.model)
    onnx_model = build_onnx(meta, tensors)
    print(f"model {args.model}")
    print("Wall-clock medians; the cpu columns divide by the process's CPU time instead (robust"
          " to other load for 1 thread; with 2, idle workers spinning count too).")
    print(f"{'threads':>7} {'batch':>5} {'ours reg/s':>11} {'GFLOP/s':>8} "
          f"{'ort reg/s':>10} {'GFLOP/s':>8} {'ours/ort':>8} {'cpu ours':>9} {'cpu ort':>8} "
          f"{'ours/ort':>8} {'rel L2':>8}")
    for threads in map(int, args.threads.split(",")):
        ours = Analyzer(args.lib, args.model, threads=threads)
        flops = ours.info.flops_per_region
        session = ort_session(onnx_model, threads)
        for batch in map(int, args.batches.split(",")):
            x, bits = random_regions(batch, ours.info.input_channels, ours.info.plane_size, 1)
            err = relative_l2(ours.infer(x, bits), ort_logits(session, x, bits))
            r_ours, r_ort, c_ours, c_ort = rates(
                lambda: ours.infer(x, bits), lambda: ort_logits(session, x, bits), batch, args.seconds
            )
            print(f"{threads:>7} {batch:>5} {r_ours:>11.1f} {r_ours * flops / 1e9:>8.1f} "
                  f"{r_ort:>10.1f} {r_ort * flops / 1e9:>8.1f} {r_ours / r_ort:>8.2f} "
                  f"{c_ours:>9.1f} {c_ort:>8.1f} {c_ours / c_ort:>8.2f} {err:>8.1e}",
                  flush=True)
        ours.close()


if __name__ == "__main__":
    main()
