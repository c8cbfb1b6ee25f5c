#!/usr/bin/env bash
# `xenc serve` under load, beside `xenc bench` on the same pairs in the same run (issue 14):
#   1. `xenc bench` end to end and its 1 x 50 rerank (the library's figures);
#   2. `xenc serve` on 127.0.0.1 driven by benches/serve_load.rs (keep-alive HTTP/1.1 clients):
#      /predict with 50 pairs a request at concurrency 1, 8 and 64, and the 1 x 50 /rerank at concurrency 1;
#   3. with SOAK_SECONDS > 0, a soak at concurrency 64: errors, lost pairs, the server's RSS before and after.
# Usage: scripts/bench-serve.sh [MODEL_DIR]   (default: the test checkpoint)
# Environment: DEVICE (cpu), PAIRS_N (1000 generated pairs), SECONDS_PER_LEVEL (30), SOAK_SECONDS (0),
# CONCURRENCY ("1 8 64"), PREDICT_BATCH (50 pairs per /predict request), RERANK_RUNS (50, xenc bench's
# 1 x 50 reranks), OUT (target/bench-serve).
# A peer server already running on the same machine and model (e.g. Infinity: `infinity_emb v2 --model-id DIR
# --engine torch --device cpu --port 7997`): PEER_URL (http://127.0.0.1:7997), PEER_PATH (/rerank),
# PEER_MODEL (the model name it expects), PEER_BATCH (20 documents a request), PEER_CONCURRENCY ("1 8"):
# the same Cohere-style rerank requests go to xenc's /v1/rerank and to the peer, alternately per level. No timing is asserted; figures go to BENCHMARKS.md by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL=${1:-${XENC_TEST_MODEL_DIR:-$HOME/.cache/xenc/test-model}/f32}
DEVICE=${DEVICE:-cpu}
PAIRS_N=${PAIRS_N:-1000}
SECS=${SECONDS_PER_LEVEL:-30}
SOAK=${SOAK_SECONDS:-0}
LEVELS=${CONCURRENCY:-1 8 64}
BATCH=${PREDICT_BATCH:-50}
RERANK_RUNS=${RERANK_RUNS:-50}
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/bench-serve}
mkdir -p "$OUT"

cargo build --release --bin xenc
cargo bench --no-run --bench serve_load
XENC=$TARGET/release/xenc
load() { cargo bench -q --bench serve_load -- "$@"; }

echo "# $(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores, commit $(git rev-parse --short HEAD), device $DEVICE"
"$XENC" bench --model "$MODEL" --device "$DEVICE" --generate "$PAIRS_N" --write-pairs "$OUT/pairs.jsonl"
echo "## library: xenc bench --input pairs.jsonl ($PAIRS_N pairs)"
"$XENC" bench --model "$MODEL" --device "$DEVICE" --input "$OUT/pairs.jsonl" --repeats 3 --rerank-runs "$RERANK_RUNS" --json \
    | tee "$OUT/library.jsonl"

"$XENC" serve --model "$MODEL" --device "$DEVICE" --port 0 2> "$OUT/server.log" &
PID=$!
trap 'kill -TERM $PID 2>/dev/null || true' EXIT
URL=
for _ in $(seq 600); do
    URL=$(grep -o 'http://[0-9.:]*' "$OUT/server.log" || true)
    [ -n "$URL" ] && break
    sleep 0.1
done
[ -n "$URL" ] || { cat "$OUT/server.log"; exit 1; }
rss() { awk '/VmRSS/ {print $2}' "/proc/$PID/status"; }
echo "## server at $URL, RSS $(rss) kB; /predict requests of $BATCH pairs"

: > "$OUT/serve.jsonl"
for c in $LEVELS; do
    load --url "$URL" --pairs "$OUT/pairs.jsonl" --mode predict --batch "$BATCH" --concurrency "$c" \
        --seconds "$SECS" --warmup 3 | tee -a "$OUT/serve.jsonl"
done
load --url "$URL" --pairs "$OUT/pairs.jsonl" --mode rerank --batch 50 --concurrency 1 \
    --seconds "$SECS" --warmup 3 | tee -a "$OUT/serve.jsonl"

if [ -n "${PEER_URL:-}" ]; then
    PB=${PEER_BATCH:-20}
    : > "$OUT/peer.jsonl"
    for c in ${PEER_CONCURRENCY:-1 8}; do
        load --url "$URL" --pairs "$OUT/pairs.jsonl" --mode v1rerank --batch "$PB" --concurrency "$c" \
            --seconds "$SECS" --warmup 3 | sed 's/^{/{"server":"xenc",/' | tee -a "$OUT/peer.jsonl"
        load --url "$PEER_URL" --path "${PEER_PATH:-/rerank}" --model "${PEER_MODEL:-model}" \
            --pairs "$OUT/pairs.jsonl" --mode v1rerank --batch "$PB" --concurrency "$c" \
            --seconds "$SECS" --warmup 3 | sed 's/^{/{"server":"peer",/' | tee -a "$OUT/peer.jsonl"
    done
fi

if [ "$SOAK" -gt 0 ]; then
    before=$(rss)
    echo "## soak: $SOAK s at concurrency 64, RSS before $before kB"
    load --url "$URL" --pairs "$OUT/pairs.jsonl" --mode predict --batch "$BATCH" --concurrency 64 \
        --seconds "$SOAK" --warmup 0 | tee "$OUT/soak.jsonl"
    echo "## soak: RSS after $(rss) kB (before $before kB)"
fi

kill -TERM $PID
set +e
wait $PID
status=$?
set -e
trap - EXIT
echo "## server exit status after SIGTERM: $status"
curl -s "$URL/metrics" >/dev/null 2>&1 && echo "server still answering after SIGTERM" || true

python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
lib = {r["measure"]: r for r in map(json.loads, open(f"{out}/library.jsonl"))}
e2e, rr = lib["end_to_end"]["pairs_per_s"], lib["rerank_1x50"]
print(f"library end to end {e2e:.1f} pairs/s; rerank 1x50 p50 {rr['p50_ms']:.2f} ms p99 {rr['p99_ms']:.2f} ms")
for r in map(json.loads, open(f"{out}/serve.jsonl")):
    line = (f"serve {r['mode']:<7} c={r['concurrency']:<3} {r['pairs_per_s']:8.1f} pairs/s "
            f"p50 {r['p50_ms']:9.2f} ms p99 {r['p99_ms']:9.2f} ms  errors {r['errors']}")
    if r["mode"] == "predict":
        line += f"  {100 * r['pairs_per_s'] / e2e:5.1f}% of library"
    else:
        line += f"  p50 +{r['p50_ms'] - rr['p50_ms']:.2f} ms over library rerank"
    print(line)
import os
if os.path.exists(f"{out}/peer.jsonl"):
    rows = list(map(json.loads, open(f"{out}/peer.jsonl")))
    for x in (r for r in rows if r["server"] == "xenc"):
        for p in (r for r in rows if r["server"] == "peer" and r["concurrency"] == x["concurrency"]):
            print(f"rerank 1x{x['batch']} c={x['concurrency']}: xenc {x['pairs_per_s']:.1f} pairs/s "
                  f"p50 {x['p50_ms']:.1f} ms, peer {p['pairs_per_s']:.1f} pairs/s p50 {p['p50_ms']:.1f} ms "
                  f"(errors {x['errors']} / {p['errors']}): xenc {x['pairs_per_s'] / max(p['pairs_per_s'], 1e-9):.2f}x")
PY
