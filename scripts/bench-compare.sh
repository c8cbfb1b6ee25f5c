#!/usr/bin/env bash
# xenc against the baselines (ONNX Runtime, sentence-transformers) on the same pairs, in one run;
# prints one Markdown table.
#
#   scripts/bench-compare.sh [--device cpu|cuda] [--input PAIRS.jsonl | --generate N | --prose N] [--threads N]
#                            [--model DIR] [--seed S] [--repeats R] [--warmup-s S] [--batch-size B]
#                            [--rerank-runs N] [--engines ort,st] [--raw FILE]
#
# --device     cpu (default) or cuda (xenc --device cuda; ONNX Runtime fp16 on the CUDA execution provider;
#              sentence-transformers fp16)
# --input      JSON Lines {"query", "document"}; default: --generate N (N = 128 on cpu, 20000 on cuda),
#              written by `xenc bench --generate N --seed S --write-pairs FILE`
# --prose N    N pairs of real prose: the ordinary pairs of tests/golden/pairs.jsonl (relevant, irrelevant,
#              hard negatives, short documents; no edge cases, no long documents; ~93 tokens per pair with
#              BERT's WordPiece, ~191 with the XLM-R test tokenizer of tests/fixtures/xlmr-tokenizer), cycled
# --threads    CPU threads of every engine (default: nproc)
# --model      checkpoint dir (default: $XENC_TEST_MODEL, else $HOME/.cache/xenc/test-model/f32): BERT, or
#              RoBERTa / XLM-RoBERTa on the CPU (ONNX Runtime then gets input_ids and attention_mask only,
#              padded with the checkpoint's pad id; scripts/build_bench_models.py makes an XLM-R base shape)
# --repeats    timed passes per measurement, median reported (default 3 on cpu, 5 on cuda); --warmup-s:
#              baselines' warm-up (default 2 s, at least one pass; xenc does one warm-up pass);
#              --batch-size: baselines' batch size (default 32); --rerank-runs: xenc's 1x50 rerank
#              latency runs (default 10 on cpu, 50 on cuda)
# --engines    baselines to run (default ort,st); an engine whose packages are missing is skipped
# --raw FILE   also keep every engine's JSON lines in FILE
#
# Agreement: the logits of xenc (`xenc score --raw`, the whole-process warm-up pass) and of ONNX Runtime
# (its last end-to-end pass) on the same pairs; the table's notes give the max abs difference.
#
# xenc: $XENC_BIN when set (a prebuilt binary, e.g. on a machine without cargo), else
# `cargo build --release` and target/release/xenc.
# Python for the baselines: $XENC_BENCH_PY, else $HOME/.cache/xenc/bench-venv/bin/python when present
# (scripts/bench-venv.sh makes it), else python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
COMMAND="$(printf '%q ' "$0" "$@")"
COMMAND=${COMMAND% }

DEVICE=cpu INPUT="" GENERATE="" PROSE="" THREADS="" SEED=42 REPEATS="" WARMUP=2 BATCH=32 ENGINES=ort,st RAW="" RERANK_RUNS=""
MODEL=${XENC_TEST_MODEL:-$CACHE/test-model/f32}
usage() { sed -n '2,31p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2; exit 2; }
need() { [[ $# -ge 2 && -n "$2" ]] || { echo "error: $1 needs a value" >&2; exit 2; }; }
while [[ $# -gt 0 ]]; do
    case "$1" in
        --device) need "$@"; DEVICE=$2; shift 2 ;;
        --input) need "$@"; INPUT=$2; shift 2 ;;
        --generate) need "$@"; GENERATE=$2; shift 2 ;;
        --prose) need "$@"; PROSE=$2; shift 2 ;;
        --threads) need "$@"; THREADS=$2; shift 2 ;;
        --model) need "$@"; MODEL=$2; shift 2 ;;
        --seed) need "$@"; SEED=$2; shift 2 ;;
        --repeats) need "$@"; REPEATS=$2; shift 2 ;;
        --rerank-runs) need "$@"; RERANK_RUNS=$2; shift 2 ;;
        --warmup-s) need "$@"; WARMUP=$2; shift 2 ;;
        --batch-size) need "$@"; BATCH=$2; shift 2 ;;
        --engines) need "$@"; ENGINES=$2; shift 2 ;;
        --raw) need "$@"; RAW=$2; shift 2 ;;
        -h|--help) usage ;;
        *) echo "error: unknown argument '$1'" >&2; usage ;;
    esac
done
case "$DEVICE" in cpu|cuda) ;; *) echo "error: --device must be cpu or cuda (got '$DEVICE')" >&2; exit 2 ;; esac
[[ -z "$INPUT" || -z "$GENERATE" ]] || { echo "error: give --input or --generate, not both" >&2; exit 2; }
if [[ $DEVICE == cuda ]]; then DEF_N=20000 DEF_R=5 DEF_RR=50; else DEF_N=128 DEF_R=3 DEF_RR=10; fi
[[ -n "$INPUT" ]] || GENERATE=${GENERATE:-$DEF_N}
REPEATS=${REPEATS:-$DEF_R}
RERANK_RUNS=${RERANK_RUNS:-$DEF_RR}
THREADS=${THREADS:-$(nproc)}
[[ -d "$MODEL" ]] || { echo "error: model dir $MODEL not found (scripts/fixtures.sh builds the test checkpoint)" >&2; exit 1; }
MODEL=$(cd "$MODEL" && pwd)
[[ -z "$INPUT" ]] || INPUT=$(cd "$(dirname "$INPUT")" && pwd)/$(basename "$INPUT")

say() { echo "bench-compare: $*" >&2; }
T_START=$(date +%s)

# ---- xenc binary ---------------------------------------------------------------------------------------
if [[ -n "${XENC_BIN:-}" ]]; then
    BIN=$XENC_BIN
elif command -v cargo >/dev/null 2>&1; then
    say "cargo build --release"
    BIN=$REPO/target/release/xenc
    if ! (cd "$REPO" && cargo build --release --quiet --bin xenc) >&2; then
        [[ -x "$BIN" ]] || { echo "error: cargo build --release failed" >&2; exit 1; }
        say "cargo build --release FAILED; measuring the existing $BIN (it may be stale)"
        BUILD_NOTE="xenc: cargo build failed, an older target/release/xenc was measured"
    fi
else
    echo "error: no cargo here; set XENC_BIN to a prebuilt xenc binary" >&2; exit 1
fi
[[ -x "$BIN" ]] || { echo "error: xenc binary $BIN is missing or not executable" >&2; exit 1; }

# ---- python ---------------------------------------------------------------------------------------------
if [[ -n "${XENC_BENCH_PY:-}" ]]; then
    PY=$XENC_BENCH_PY
elif [[ -x "$CACHE/bench-venv/bin/python" ]]; then
    PY=$CACHE/bench-venv/bin/python
else
    PY=python3
fi
# Any python3 renders the table (only json is needed).
RENDER_PY=$(command -v python3 || echo "$PY")

WORK=$(mktemp -d "${TMPDIR:-/tmp}/xenc-bench-compare.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROWS=$WORK/rows.jsonl
NOTES=$WORK/notes.txt
: > "$ROWS"; : > "$NOTES"
[[ -z "${BUILD_NOTE:-}" ]] || echo "$BUILD_NOTE" >> "$NOTES"

# ---- the pairs -----------------------------------------------------------------------------------------
if [[ -n "$PROSE" ]]; then
    INPUT=$WORK/pairs.jsonl
    "$RENDER_PY" - "$REPO/tests/golden/pairs.jsonl" "$PROSE" "$INPUT" <<'EOF'
import json, sys
keep = ("relevant:", "irrelevant:", "hard negative", "partially relevant", "short doc")
src = [r for r in (json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip())
       if r["note"].startswith(keep)]
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for i in range(int(sys.argv[2])):
        r = src[i % len(src)]
        f.write(json.dumps({"query": r["query"], "document": r["document"]}) + "\n")
EOF
    echo "pairs: $PROSE pairs of prose (the ordinary pairs of tests/golden/pairs.jsonl, cycled)" >> "$NOTES"
elif [[ -z "$INPUT" ]]; then
    INPUT=$WORK/pairs.jsonl
    if ! "$BIN" bench --model "$MODEL" --generate "$GENERATE" --seed "$SEED" --write-pairs "$INPUT" >&2 \
        || [[ ! -s "$INPUT" ]]; then
        # An xenc without `bench --write-pairs`: repeat the golden pairs (with a counter in the query).
        say "xenc could not write generated pairs; using tests/golden/pairs.jsonl repeated to $GENERATE pairs"
        echo "pairs: tests/golden/pairs.jsonl repeated to $GENERATE (xenc bench --write-pairs unavailable)" >> "$NOTES"
        "$RENDER_PY" - "$REPO/tests/golden/pairs.jsonl" "$GENERATE" "$INPUT" <<'EOF'
import json, sys
src = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8") if l.strip()]
n = int(sys.argv[2])
with open(sys.argv[3], "w", encoding="utf-8") as f:
    for i in range(n):
        r = src[i % len(src)]
        q = r["query"] if i < len(src) else f"{r['query']} {i // len(src)}"
        f.write(json.dumps({"query": q, "document": r["document"]}) + "\n")
EOF
    else
        echo "pairs: xenc bench --generate $GENERATE --seed $SEED" >> "$NOTES"
    fi
else
    echo "pairs: $(basename "$INPUT")" >> "$NOTES"
fi
NPAIRS=$(grep -c . "$INPUT" || true)
"$RENDER_PY" - "$MODEL/config.json" "$(basename "$MODEL")" >> "$NOTES" <<'EOF' || true
import json, sys
c = json.load(open(sys.argv[1]))
print(f"model: {sys.argv[2]} ({c.get('model_type', 'bert')}, {c.get('num_hidden_layers')} layers, hidden "
      f"{c.get('hidden_size')}, {c.get('num_attention_heads')} heads, intermediate {c.get('intermediate_size')}, "
      f"vocab {c.get('vocab_size')}, {c.get('max_position_embeddings')} positions)")
EOF
say "$NPAIRS pairs, device $DEVICE, $THREADS threads"

# ---- xenc ----------------------------------------------------------------------------------------------
say "xenc bench"
t0=$(date +%s)
if "$BIN" bench --model "$MODEL" --device "$DEVICE" --input "$INPUT" --threads "$THREADS" \
        --repeats "$REPEATS" --rerank-runs "$RERANK_RUNS" --json > "$WORK/xenc.out" 2> "$WORK/xenc.err"; then
    grep '^{' "$WORK/xenc.out" | "$RENDER_PY" -c '
import json, sys
threads = int(sys.argv[1])
for line in sys.stdin:
    r = json.loads(line)
    r.setdefault("threads", threads)
    print(json.dumps(r))' "$THREADS" >> "$ROWS"
    say "xenc: $(( $(date +%s) - t0 )) s"
else
    say "xenc bench failed:"; tail -5 "$WORK/xenc.err" >&2
    echo "xenc: bench failed ($(tail -1 "$WORK/xenc.err"))" >> "$NOTES"
fi

# The CLI as a user runs it: one whole process per pass (load the checkpoint, tokenise, score, print).
say "xenc score as a whole process"
"$RENDER_PY" - "$BIN" "$MODEL" "$DEVICE" "$THREADS" "$INPUT" "$REPEATS" "$ROWS" "$WORK/xenc.logits" <<'EOF' || say "xenc score failed"
import json, statistics, subprocess, sys, time
binary, model, device, threads, pairs, repeats, rows, logits = sys.argv[1:9]
cmd = [binary, "score", "--model", model, "--device", device, "--threads", threads, "--input", pairs]
xenc = [json.loads(l) for l in open(rows) if '"xenc"' in l and '"end_to_end"' in l]
times = []
# /dev/null opened write-only, as a shell's `> /dev/null`: xenc takes a read-write /dev/null on its stdout
# (what subprocess.DEVNULL opens) for a closed stdout and refuses to run.
devnull = open("/dev/null", "w")
for i in range(int(repeats) + 1):  # the first pass warms the page cache and is not counted
    t = time.perf_counter()
    if i:
        subprocess.run(cmd, check=True, stdout=devnull)
        times.append(time.perf_counter() - t)
    else:  # its logits are compared with ONNX Runtime's
        with open(logits, "w") as out:
            subprocess.run(cmd + ["--raw"], check=True, stdout=out)
secs = statistics.median(times)
n = sum(1 for l in open(pairs) if l.strip())
tokens = xenc[0]["tokens"] if xenc else None
print(json.dumps({"engine": "xenc", "device": device, "measure": "cli_process", "pairs": n,
                  "tokens": tokens, "seconds": secs, "pairs_per_s": n / secs,
                  "tokens_per_s": tokens / secs if tokens else None, "threads": int(threads),
                  "includes": "whole process: model load, tokenisation, scoring, output"}), file=open(rows, "a"))
EOF

# ---- baselines -----------------------------------------------------------------------------------------
engine_check() {  # prints why the engine cannot run here, or nothing
    "$PY" - "$1" "$DEVICE" <<'EOF' 2>/dev/null || echo "python '$PY' does not start"
import importlib.util, sys
engine, device = sys.argv[1], sys.argv[2]
mods = {"ort": ["onnxruntime", "onnx", "torch", "transformers"],
        "st": ["sentence_transformers", "torch", "transformers"]}[engine]
missing = [m for m in mods if importlib.util.find_spec(m) is None]
if missing:
    print("python packages missing: " + ", ".join(missing) + " (scripts/bench-venv.sh installs them)")
elif device == "cuda" and engine == "ort":
    import onnxruntime as ort
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        print(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider (needs onnxruntime-gpu)")
elif device == "cuda" and engine == "st":
    import torch
    if not torch.cuda.is_available():
        print(f"torch {torch.__version__} sees no CUDA device")
EOF
}
IFS=, read -r -a ENGINE_LIST <<< "$ENGINES"
for e in "${ENGINE_LIST[@]}"; do
    case "$e" in ort) name=onnxruntime ;; st) name=sentence-transformers ;;
        *) echo "error: unknown engine '$e' (expected ort, st)" >&2; exit 2 ;; esac
    why=$(engine_check "$e")
    if [[ -n "$why" ]]; then
        say "skipping $name: $why"
        echo "$name: skipped: $why" >> "$NOTES"
        continue
    fi
    say "$name ($PY)"
    t0=$(date +%s)
    logits=()
    [[ $e != ort ]] || logits=(--logits "$WORK/ort.logits")
    if "$PY" "$REPO/scripts/bench_baselines.py" --model "$MODEL" --input "$INPUT" --engines "$e" \
            --device "$DEVICE" --threads "$THREADS" --batch-size "$BATCH" --warmup-s "$WARMUP" \
            --repeats "$REPEATS" --json "${logits[@]}" > "$WORK/$e.out" 2> "$WORK/$e.err"; then
        grep '^{' "$WORK/$e.out" >> "$ROWS" || true
        say "$name: $(( $(date +%s) - t0 )) s"
    else
        say "$name failed:"; tail -5 "$WORK/$e.err" >&2
        echo "$name: failed ($(tail -1 "$WORK/$e.err"))" >> "$NOTES"
    fi
done
if [[ -s "$WORK/xenc.logits" && -s "$WORK/ort.logits" ]]; then
    "$RENDER_PY" - "$WORK/xenc.logits" "$WORK/ort.logits" "$ROWS" <<'EOF' || say "logit comparison failed"
import json, sys
x = [json.loads(l)["score"] for l in open(sys.argv[1]) if l.strip()]
o = [json.loads(l) for l in open(sys.argv[2]) if l.strip()]
if len(x) != len(o):
    raise SystemExit(f"xenc gave {len(x)} logits, onnxruntime {len(o)}")
d = [abs(a - b) for a, b in zip(x, o)]
i = max(range(len(d)), key=d.__getitem__)
print(json.dumps({"engine": "onnxruntime", "measure": "agreement", "pairs": len(d), "max_abs_logit_diff": d[i],
                  "at_pair": i, "mean_abs_logit_diff": sum(d) / len(d)}), file=open(sys.argv[3], "a"))
EOF
fi
[[ -z "$RAW" ]] || cp "$ROWS" "$RAW"

# ---- the table -----------------------------------------------------------------------------------------
CPU_MODEL=$(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)
CPU_MODEL=${CPU_MODEL:-$(uname -m)}
GPU=""
if command -v nvidia-smi >/dev/null 2>&1; then
    GPU=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
fi
MACHINE="$CPU_MODEL, $(nproc) cores"
[[ -z "$GPU" ]] || MACHINE="$MACHINE; GPU $GPU"
LOAD=$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null || echo "?")
ELAPSED=$(( $(date +%s) - T_START ))

"$RENDER_PY" - "$ROWS" "$NOTES" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$MACHINE" "$COMMAND" "$LOAD" "$ELAPSED" <<'EOF'
import json, sys
rows_path, notes_path, date, machine, command, load, elapsed = sys.argv[1:8]
rows = [json.loads(l) for l in open(rows_path) if l.strip()]
notes = [l.rstrip("\n") for l in open(notes_path) if l.strip()]
measures = ["model", "end_to_end"]
xenc = {r["measure"]: r for r in rows if r.get("engine") == "xenc"}
first = rows[0] if rows else {}
print(f"**xenc bench-compare** — {date} — {machine} — load average at the end {load} — {elapsed} s")
print()
print(f"Command: `{command}`")
print()
if first:
    notes.insert(0, f"{first['pairs']} pairs, {first['tokens']} tokens ({first['tokens'] / first['pairs']:.1f} per pair)")
for n in notes:
    print(f"- {n}")
if notes:
    print()
print("| engine | device | measure | precision | threads | pairs/s | tokens/s | xenc ÷ engine |")
print("|---|---|---|---|---|---:|---:|---:|")
for m in measures:
    for r in rows:
        if r.get("measure") != m or not r.get("pairs_per_s"):
            continue
        x = xenc.get(m)
        ratio = f"{x['pairs_per_s'] / r['pairs_per_s']:.2f}" if x else "–"
        prec = r.get("precision", "fp16" if r.get("device") == "cuda" else "fp32")
        print(f"| {r['engine']} | {r['device']} | {m} | {prec} | {r.get('threads', '')} | "
              f"{r['pairs_per_s']:.1f} | {r['tokens_per_s']:.0f} | {ratio} |")
for r in rows:
    if r.get("engine") == "xenc" and r.get("measure") == "rerank_1x50":
        print(f"\nxenc rerank 1 query x 50 documents: p50 {r.get('p50_ms', 0):.1f} ms, p99 {r.get('p99_ms', 0):.1f} ms")
    if r.get("engine") == "xenc" and r.get("measure") == "peak_memory" and r.get("host_peak_rss_mib"):
        print(f"xenc peak host memory: {r['host_peak_rss_mib']:.0f} MiB")
agree = next((r for r in rows if r.get("measure") == "agreement"), None)
if agree:
    print(f"\nlogits, xenc (`xenc score --raw`) vs ONNX Runtime (end to end) on the same {agree['pairs']} pairs: "
          f"max abs diff {agree['max_abs_logit_diff']:.3g} (pair {agree['at_pair']}), "
          f"mean {agree['mean_abs_logit_diff']:.3g}")
cli = xenc.get("cli_process")
ort_e2e = next((r for r in rows if r.get("engine") == "onnxruntime" and r.get("measure") == "end_to_end"), None)
if cli:
    line = f"\nxenc CLI as a whole process (`xenc score`: model load, tokenisation, scoring, output): {cli['pairs_per_s']:.1f} pairs/s"
    if ort_e2e:
        line += f", {cli['pairs_per_s'] / ort_e2e['pairs_per_s']:.2f}x ONNX Runtime end-to-end (its session creation excluded)"
    print(line)
if not xenc:
    print("\n(no xenc rows: see the notes above)")
EOF
