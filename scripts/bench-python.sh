#!/usr/bin/env bash
# xenc from Python vs sentence-transformers' CrossEncoder vs the Rust library end to end (`xenc
# bench`), on the same generated pairs, the same threads, in one run.
#
#   bash scripts/bench-python.sh [N_PAIRS (default 10000)] [THREADS (default: all cores)]
#
# Needs the golden venv (scripts/golden-venv.sh: torch, sentence-transformers), the xenc wheel
# (scripts/python-test.sh builds it into python/target/wheels), the xenc CLI (cargo build --release, or
# XENC_BIN) and the f32 test checkpoint. Installs the wheel into the golden venv (--no-deps).
# Environment: XENC_CACHE, XENC_BIN, XENC_BENCH_REPEATS (default 2), XENC_BENCH_DEVICE (cpu|cuda).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
N=${1:-10000}
THREADS=${2:-$(nproc)}
REPEATS=${XENC_BENCH_REPEATS:-2}
DEVICE=${XENC_BENCH_DEVICE:-cpu}
MODEL=${XENC_TEST_MODEL_DIR:-$CACHE/test-model}/f32
VPY=$CACHE/golden-venv/bin/python
XENC=${XENC_BIN:-target/release/xenc}
WHEEL=$(ls "${CARGO_TARGET_DIR:-python/target}"/wheels/xenc-*.whl)

"$VPY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$XENC" bench --model "$MODEL" --generate "$N" --seed 42 --write-pairs "$TMP/pairs.jsonl"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, $N pairs, $THREADS threads, $DEVICE, commit $(git rev-parse --short HEAD)"
"$VPY" scripts/bench_python.py --model "$MODEL" --input "$TMP/pairs.jsonl" --threads "$THREADS" \
    --repeats "$REPEATS" --device "$DEVICE"
"$XENC" bench --model "$MODEL" --input "$TMP/pairs.jsonl" --threads "$THREADS" --device "$DEVICE" \
    --repeats "$REPEATS" --rerank-runs 5 --json
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
