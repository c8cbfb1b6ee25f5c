#!/usr/bin/env bash
# xenc from Python vs sentence-transformers' CrossEncoder vs the Rust library end to end (`xenc
# bench`), on the same generated pairs, the same threads, in one run.
#
#   bash scripts/bench-python.sh [N_PAIRS (default 10000)] [THREADS (default: all cores)]
#
# Needs the golden venv (scripts/golden-venv.sh: torch, sentence-transformers), the xenc wheel
# (scripts/python-test.sh builds it into python/target/wheels), the xenc CLI (cargo build --release, or
# XENC_BIN) and the f32 test checkpoint. Installs the wheel into the golden venv (--no-deps).
# Environment: XENC_CACHE, XENC_BIN, XENC_BENCH_REPEATS (default 2), XENC_BENCH_DEVICE (cpu|cuda),
# XENC_BENCH_MODEL (default: the f32 test checkpoint), XENC_BENCH_ENGINES (default xenc,st),
# XENC_BENCH_ROUNDS (default 1: Python and library alternately, medians over the rounds at the end).
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
N=${1:-10000}
THREADS=${2:-$(nproc)}
REPEATS=${XENC_BENCH_REPEATS:-2}
DEVICE=${XENC_BENCH_DEVICE:-cpu}
MODEL=${XENC_BENCH_MODEL:-${XENC_TEST_MODEL_DIR:-$CACHE/test-model}/f32}
ENGINES=${XENC_BENCH_ENGINES:-xenc,st}
ROUNDS=${XENC_BENCH_ROUNDS:-1}
VPY=$CACHE/golden-venv/bin/python
XENC=${XENC_BIN:-target/release/xenc}
WHEEL=$(ls "${CARGO_TARGET_DIR:-python/target}"/wheels/xenc-*.whl)

"$VPY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
"$XENC" bench --model "$MODEL" --generate "$N" --seed 42 --write-pairs "$TMP/pairs.jsonl"
echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, model $(basename "$MODEL"), $N pairs, $THREADS threads, $DEVICE, commit $(git rev-parse --short HEAD)"
# ROUNDS alternations (Python, then the Rust library) so that a drift of the machine hits both sides.
for round in $(seq "$ROUNDS"); do
    "$VPY" scripts/bench_python.py --model "$MODEL" --input "$TMP/pairs.jsonl" --threads "$THREADS" \
        --repeats "$REPEATS" --device "$DEVICE" --engines "$ENGINES" | tee -a "$TMP/python.jsonl"
    "$XENC" bench --model "$MODEL" --input "$TMP/pairs.jsonl" --threads "$THREADS" --device "$DEVICE" \
        --repeats "$REPEATS" --rerank-runs 5 --json | tee -a "$TMP/library.jsonl"
done
"$VPY" - "$TMP/python.jsonl" "$TMP/library.jsonl" <<'PY'
import json, statistics, sys
rows = lambda f: [json.loads(l) for l in open(f) if l.startswith("{")]
py = [r["pairs_per_s"] for r in rows(sys.argv[1]) if r.get("engine") == "xenc"]
lib = [r["pairs_per_s"] for r in rows(sys.argv[2]) if r.get("measure") == "end_to_end"]
if py and lib:
    p, l = statistics.median(py), statistics.median(lib)
    print(f"# xenc from Python {p:.1f} pairs/s (rounds: {', '.join(f'{x:.1f}' for x in py)}); "
          f"Rust library end to end {l:.1f} (rounds: {', '.join(f'{x:.1f}' for x in lib)}); "
          f"Python overhead {100 * (l / p - 1):+.2f}% of the library's time")
PY
echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
