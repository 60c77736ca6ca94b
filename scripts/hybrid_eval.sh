#!/usr/bin/env bash
# The shipped model on hybrid studies (real CT + synthesised PET, docs/hybrid.md): generates
# PSMA and FDG studies from shared/data/real-ct with `uptake hybrid`, analyses them with
# `uptake-train predict` (the plugin's own analysis) and scores the findings with
# `uptake-train evaluate --as-reported`. Seeds 10000–10039 are the hybrid test split: a model
# or setting is never chosen by them (decisions use seeds 0–499).
# Usage: scripts/hybrid_eval.sh [OUT] [MODEL]   (defaults: out/hybrid-eval, the embedded model)
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-out/hybrid-eval}"
model="${2:-}"
data="${UPTAKE_REAL_CT:-../shared/data/real-ct}"
first="${UPTAKE_HYBRID_SEED:-10000}"
per_tracer="${UPTAKE_HYBRID_COUNT:-20}"

cargo build --release -q -p uptake-cli -p uptake-train
rm -rf "$out" && mkdir -p "$out/studies"
# PSMA takes the first per_tracer seeds, FDG the next.
for seed in $(seq "$first" $((first + 2 * per_tracer - 1))); do
    tracer=$([ "$seed" -lt $((first + per_tracer)) ] && echo psma || echo fdg)
    target/release/uptake hybrid --ct "$data/example_ct.nii.gz" --seg "$data/example_seg.nii.gz" \
        --classes "$data/classes.json" --seg-slice-offset 82 --tracer "$tracer" --seed "$seed" \
        --out "$out/studies/$tracer-$seed" >/dev/null
done
target/release/uptake-train predict ${model:+--model "$model"} --data "$out/studies" \
    --out "$out/predict" | tee "$out/predict.txt"
target/release/uptake-train evaluate --findings "$out/predict/findings.csv" --as-reported \
    | tee "$out/evaluate.txt"
