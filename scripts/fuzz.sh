#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer through cargo-fuzz, AddressSanitizer) of the parsers that
# take outside bytes (NIfTI incl. gzip, DICOM series, model file) and of `Analyzer::analyze` on
# small volumes with fuzzed geometry (issue #28: a plugin must never take its host down).
# Each target runs UPTAKE_FUZZ_SECONDS (default 60) from the committed seeds in fuzz/corpus,
# with a fixed libFuzzer seed (UPTAKE_FUZZ_SEED, default 1, so a CI run can be repeated),
# under a 2 GiB RSS and single-allocation limit; any crash, abort, leak, OOM or timeout fails
# the script, its reproducer left in fuzz/artifacts/<target>/.
# Usage: scripts/fuzz.sh [target...]   (default: nifti dicom model analyze)
# Stable rustc: RUSTC_BOOTSTRAP=1 unlocks -Zsanitizer, as cargo-fuzz needs.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds="${UPTAKE_FUZZ_SECONDS:-60}"
seed="${UPTAKE_FUZZ_SEED:-1}"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(nifti dicom model analyze)
export RUSTC_BOOTSTRAP=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
fi
for t in "${targets[@]}"; do cargo fuzz build -O --debug-assertions "$t"; done

status=0
for t in "${targets[@]}"; do
    # Seeds stay as committed; what the run discovers goes to corpus-run (git-ignored), emptied
    # first so that every run starts where a clean clone does and, with the fixed seed, walks
    # the same inputs.
    rm -rf "corpus-run/$t"
    mkdir -p "corpus-run/$t" "artifacts/$t"
    printf '\n-- fuzz %s for %ss\n' "$t" "$seconds"
    if ! cargo fuzz run -O --debug-assertions "$t" "corpus-run/$t" "corpus/$t" -- \
        -max_total_time="$seconds" -seed="$seed" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=30 \
        -max_len=65536 -print_final_stats=1 2>"artifacts/$t.log"; then
        tail -n 60 "artifacts/$t.log" >&2
        echo "fuzz target $t failed; reproducer(s): $(ls "artifacts/$t")" >&2
        status=1
    fi
    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb' "artifacts/$t.log" || true
done
exit $status
