#!/usr/bin/env bash
# Bounded fuzzing: each fuzz target (fuzz/fuzz_targets/) for FUZZ_SECONDS (default 60) with libFuzzer
# via cargo-fuzz, starting from the checked-in seeds (fuzz/corpus/<target>/, made by
# fuzz/make_corpus.py). New inputs go to fuzz/corpus-work/<target>/ (ignored), crashes to
# fuzz/artifacts/<target>/, logs to fuzz/logs/; the last lines are executions and findings per target.
#
#   bash scripts/fuzz.sh                      # loader, jsonl, tokenizer: 60 s each
#   FUZZ_SECONDS=600 bash scripts/fuzz.sh jsonl
#   FUZZ_SANITIZER=address bash scripts/fuzz.sh
#
# Stable Rust only. FUZZ_SANITIZER defaults to none: the code fuzzed here has no `unsafe`, and without
# AddressSanitizer the tokenizer target runs ~4.6x as many inputs (932 vs 204 per second on the 2-core
# VM) and the cold build takes 4.1 instead of 5.9 CPU-minutes; coverage instrumentation needs no
# nightly flag. With a sanitizer, cargo-fuzz passes -Zsanitizer=..., which a stable rustc takes with
# RUSTC_BOOTSTRAP=1 (set here). The loader target bounds every allocation itself (256 MiB), sanitizer
# or not. The tokenizer target needs the test checkpoint (scripts/fixtures.sh).
# Exit status: non-zero when a target found something (or failed to build).
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_PER=${FUZZ_SECONDS:-60}
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(loader jsonl tokenizer)
SANITIZER=${FUZZ_SANITIZER:-none}
[ "$SANITIZER" = none ] || export RUSTC_BOOTSTRAP=1
# One target dir per sanitizer: switching does not rebuild the other.
FUZZ=(-a -s "$SANITIZER" --target-dir "fuzz/target/$SANITIZER")
# The kernels are not fuzzed: build.rs embeds their sources without compiling them.
export XENC_KERNEL_COMPILER=none
unset XENC_NVRTC_LIB

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz (cargo install cargo-fuzz --locked)" >&2
    cargo install cargo-fuzz --locked
fi
if [[ " ${TARGETS[*]} " == *" tokenizer "* ]]; then
    tok=${XENC_FUZZ_TOKENIZER:-${XENC_TEST_MODEL_DIR:-$HOME/.cache/xenc/test-model}/f32/tokenizer.json}
    [ -f "$tok" ] || { echo "fuzz.sh: $tok missing: run scripts/fixtures.sh" >&2; exit 2; }
    export XENC_FUZZ_TOKENIZER=$tok
fi

# -a: debug assertions (overflow checks) on, as a test build has them.
cargo fuzz build "${FUZZ[@]}"
summary=()
status=0
for t in "${TARGETS[@]}"; do
    mkdir -p "fuzz/corpus-work/$t" fuzz/logs
    log=fuzz/logs/$t.log
    echo "fuzz.sh: $t for ${SECONDS_PER} s (log: $log)" >&2
    # -rss_limit_mb bounds the process; -malloc_limit_mb each allocation, where a sanitizer lets
    # libFuzzer see them.
    if cargo fuzz run "${FUZZ[@]}" "$t" "fuzz/corpus-work/$t" "fuzz/corpus/$t" -- \
        -max_total_time="$SECONDS_PER" -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10 \
        -print_final_stats=1 >"$log" 2>&1; then
        found=none
    else
        found="FOUND (see $log and fuzz/artifacts/$t/)"
        status=1
        # CI keeps only what is printed: the crash report and the reproducer's name.
        tail -n 40 "$log" >&2
    fi
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -n 1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
    summary+=("$t: ${execs:-?} executions in ${SECONDS_PER} s, ${cov:-cov: ?}, findings: $found")
done
printf '%s\n' "${summary[@]}"
exit $status
