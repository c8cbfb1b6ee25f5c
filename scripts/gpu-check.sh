#!/usr/bin/env bash
# GPU checks in two steps, because the GPU machine has no Rust toolchain and no network.
#
#   scripts/gpu-check.sh prepare    here: build the release GPU test binary and the xenc CLI (kernels as
#                                   cubins when the pip NVRTC is in $XENC_CACHE/cuda-venv), strip them,
#                                   build the fp16 test checkpoint, and pack all of it with the goldens
#                                   into .gpu-bundle/bundle.tar.xz (must stay under 60 MiB with the tree).
#   scripts/gpu-check.sh run [--quick]   (--quick: without bench-compare's baselines)
#                                   on the GPU machine, from the repository root with .gpu-bundle/ carried
#                                   along: nvidia-smi, the GPU tests (ignored by a plain `cargo test`, run
#                                   here with --include-ignored), the model against the goldens under each
#                                   A/B candidate, a short throughput run of the CLI (the default kernels
#                                   plain and with --profile, then each candidate), the kernel benches,
#                                   compute-sanitizer memcheck and racecheck on a small `xenc score --device
#                                   cuda`, bench-compare, all within ~5 minutes; writes a dated report to $OUT (if set)
#                                   or ./gpu-report/, and prints its summary. Exit 1 if any step failed.
#
# Environment: XENC_CACHE (default $HOME/.cache/xenc), XENC_GPU_BUNDLE (bundle path for `run`),
# XENC_GPU_CHECK_SECONDS (time budget of `run`, default 290), XENC_GPU_BASELINE=REV (`prepare` also builds
# the xenc CLI of git revision REV, in a worktree with its own target dir under $XENC_CACHE, and `run` then
# benchmarks it right after this tree's CLI: a before/after on the same card in the same run).
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
BUNDLE_DIR=$ROOT/.gpu-bundle
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
LIMIT_MIB=60

die() { echo "gpu-check: $*" >&2; exit 1; }

# The A/B candidates: kernels not yet verified on a GPU (README, "GPU"; kernels/VERIFIED.tsv lists the
# defaults that were), as the variables the CLI and the GPU tests read, each with what it is. `run` checks
# each against the goldens and benches it beside the defaults; a candidate becomes a default only after a
# run passed it and measured it at least as fast.
CANDIDATES=(
    "XENC_ATTENTION=mma-v3|attention v3: ~40% fewer instructions per K/V tile"
    "XENC_ATTENTION=mma-s4|attention v3 with a 4-stage K/V ring"
    "XENC_POOLER=v4|pooler v4: four outputs per warp at once"
    "XENC_FFN_IN=fused|FFN-in GEMM, bias and erf GELU in one kernel (gemm_bias_gelu, 8 warps of 64 x 32)"
    "XENC_FFN_IN=fused-w64|the same with 4 warps of 64 x 64"
    "XENC_RESIDUAL=gemm|GEMMs add bias and residual, LayerNorm reads one row"
)
# All candidates of different kinds at once, to see whether they add up.
ALL_CANDIDATES="XENC_ATTENTION=mma-v3 XENC_POOLER=v4 XENC_FFN_IN=fused XENC_RESIDUAL=gemm"

# cargo_executable TARGET CARGO_ARGS...: builds with cargo and prints the path of TARGET's executable.
cargo_executable() {
    local target=$1 bin
    shift
    bin=$(cargo "$@" --message-format=json-render-diagnostics |
        python3 -c 'import json, sys
for line in sys.stdin:
    try:
        m = json.loads(line)
    except ValueError:
        continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == sys.argv[1]:
        print(m["executable"])' "$target")
    [[ -x $bin ]] || die "cargo did not report the $target executable"
    echo "$bin"
}

prepare() {
    set -e
    command -v cargo >/dev/null || die "cargo is missing (prepare runs on the build machine)"
    if [[ -z ${XENC_NVRTC_LIB:-} && -x $CACHE/cuda-venv/bin/python ]]; then
        eval "$("$CACHE/cuda-venv/bin/python" scripts/cuda_env.py)"
    fi
    if [[ -n ${XENC_NVRTC_LIB:-} ]]; then
        echo "gpu-check: kernels compiled at build time with $XENC_NVRTC_LIB"
    else
        echo "gpu-check: WARNING: no NVRTC here; the GPU machine will compile the kernels at first use" >&2
    fi
    local tests_bin bench_bin host_bin
    tests_bin=$(cargo_executable gpu test --release --no-run --test gpu)
    bench_bin=$(cargo_executable gpu_kernels bench --no-run --bench gpu_kernels)
    host_bin=$(cargo_executable host_path bench --no-run --bench host_path)
    cargo build --release --bin xenc
    local model_dir=${XENC_TEST_MODEL_DIR:-$CACHE/test-model}/f16
    bash scripts/fixtures.sh   # numpy venv + test checkpoints (the f16 one travels)

    rm -rf "$BUNDLE_DIR"
    local stage=$BUNDLE_DIR/stage
    mkdir -p "$stage/bin" "$stage/golden" "$stage/test-model"
    strip -o "$stage/bin/gpu-tests" "$tests_bin"
    strip -o "$stage/bin/gpu-kernel-bench" "$bench_bin"
    strip -o "$stage/bin/host-path-bench" "$host_bin"
    strip -o "$stage/bin/xenc" target/release/xenc
    if [[ -n ${XENC_GPU_BASELINE:-} ]]; then
        local rev tree=$CACHE/baseline-tree
        rev=$(git rev-parse --short "$XENC_GPU_BASELINE")
        git worktree remove --force "$tree" 2>/dev/null || rm -rf "$tree"
        git worktree add --detach "$tree" "$rev" >/dev/null
        (cd "$tree" && CARGO_TARGET_DIR=$CACHE/baseline-target cargo build --release --bin xenc)
        strip -o "$stage/bin/xenc-baseline" "$CACHE/baseline-target/release/xenc"
        echo "$rev $(git log -1 --format=%s "$rev")" >"$stage/BASELINE"
        git worktree remove --force "$tree"
    fi
    cp -r "$model_dir" "$stage/test-model/f16"   # with vocab.txt: `run` builds the 3-label shape from it
    cp tests/golden/pairs.jsonl tests/golden/goldens.jsonl tests/golden/meta.json "$stage/golden/"
    # The unverified shapes' goldens; their checkpoints (random weights, ~50 MB, incompressible) are built
    # on the GPU machine by `run` from the tree's numpy scripts instead of travelling.
    cp -r tests/golden/families tests/golden/labels "$stage/golden/"
    {
        echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -srm)"
        echo "rustc: $(rustc --version)"
        echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo 'no commit') $(git status --porcelain 2>/dev/null | wc -l) changed files"
        if [[ -n ${XENC_NVRTC_LIB:-} ]]; then
            echo "kernels: NVRTC cubins sm_80/86/89/90 + compute_90 PTX ($(basename "$XENC_NVRTC_LIB"))"
        else
            echo "kernels: sources only (NVRTC at first use)"
        fi
    } >"$stage/MANIFEST"
    XZ_OPT="-6 -T0" tar -C "$stage" -cJf "$BUNDLE_DIR/bundle.tar.xz" .
    rm -rf "$stage"

    local bundle_b tree_b
    bundle_b=$(stat -c %s "$BUNDLE_DIR/bundle.tar.xz")
    tree_b=$(git ls-files -co --exclude-standard -z | xargs -0 stat -c %s 2>/dev/null | awk '{s += $1} END {print s + 0}')
    python3 - "$bundle_b" "$tree_b" "$LIMIT_MIB" <<'EOF'
import sys
bundle, tree, limit = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
mib = lambda b: b / 2**20
total = bundle + tree
print(f"gpu-check: .gpu-bundle/bundle.tar.xz {mib(bundle):.1f} MiB + working tree {mib(tree):.1f} MiB "
      f"= {mib(total):.1f} MiB (limit {limit} MiB)")
sys.exit(0 if total < limit * 2**20 else 1)
EOF
    echo "gpu-check: on the GPU machine run: scripts/gpu-check.sh run   (carry .gpu-bundle)"
}

# racecheck_xenc SANITIZER CMD...: racecheck over every kernel of CMD; prints the hazard lines (counted per
# kernel) and fails if CMD fails or any hazard names a kernel other than cuBLAS's nvjet_*.
racecheck_xenc() {
    local sanitizer=$1 out rc
    shift
    out=$("$sanitizer" --tool racecheck --print-limit 1000 "$@" 2>&1)
    rc=$?
    printf '%s\n' "$out" | grep -vE '^\{' | grep -vE 'Race reported|and (Read|Write) access|^=========[[:space:]]*$' || true
    local hazards
    hazards=$(printf '%s\n' "$out" | grep -E 'Race reported|and (Read|Write) access' | sed -E 's/.* at ([A-Za-z0-9_]+).*/\1/' | sort | uniq -c)
    [[ -n $hazards ]] && printf 'hazard lines per kernel:\n%s\n' "$hazards"
    if printf '%s\n' "$out" | grep -qE 'Internal Sanitizer Error|Target application returned an error'; then
        echo "racecheck: the sanitizer or the program failed"
        return 1
    fi
    if printf '%s\n' "$hazards" | grep -vE '^\s*$' | grep -qv ' nvjet_'; then
        echo "racecheck: hazards in kernels other than cuBLAS's nvjet_*"
        return 1
    fi
    ((rc == 0)) || { echo "racecheck: exit $rc"; return 1; }
    echo "racecheck: no hazard in xenc's kernels"
}

# ---- run: on the GPU machine ------------------------------------------------------------------------

# Directories holding libcublas/libcublasLt/libnvrtc: the CUDA toolkit first, then pip's nvidia wheels
# (torch's dependencies), printed colon-separated.
cuda_lib_dirs() {
    local d dirs=()
    for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib /usr/local/cuda-*/lib64; do
        compgen -G "$d/libcublas.so*" >/dev/null && dirs+=("$d")
    done
    local py
    py=$(python3 - 2>/dev/null <<'EOF'
import glob, importlib.util, os
roots = []
for mod in ("nvidia", "torch"):
    spec = importlib.util.find_spec(mod)
    if spec and spec.submodule_search_locations:
        roots += list(spec.submodule_search_locations)
out = []
for r in roots:
    for pat in ("*/lib/libcublas.so*", "*/lib/libnvrtc.so*", "lib/libcublas.so*", "lib/libnvrtc.so*"):
        for f in sorted(glob.glob(os.path.join(r, pat))):
            if os.path.dirname(f) not in out:
                out.append(os.path.dirname(f))
print(":".join(out))
EOF
)
    local IFS=:
    echo "${dirs[*]}${py:+${dirs[*]:+:}$py}"
}

run_checks() {
    local quick=0
    [[ ${1:-} == --quick ]] && quick=1
    local bundle=${XENC_GPU_BUNDLE:-$BUNDLE_DIR/bundle.tar.xz}
    [[ -f $bundle ]] || die "$bundle not found: run 'scripts/gpu-check.sh prepare' on the build machine and carry .gpu-bundle"
    local budget=${XENC_GPU_CHECK_SECONDS:-290} start=$SECONDS
    local work
    work=$(mktemp -d "${TMPDIR:-/tmp}/xenc-gpu-check.XXXXXX")
    python3 -c 'import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2])' "$bundle" "$work" ||
        die "cannot unpack $bundle"
    local report_dir=${OUT:-$ROOT/gpu-report}
    mkdir -p "$report_dir"
    local stamp report summary
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    report=$report_dir/gpu-check-$stamp.md
    summary=$(mktemp)
    local figures
    figures=$(mktemp)

    # Paths in the report: the unpacked bundle as $WORK, the checkout as ".".
    tidy() { local t=${1//$work/\$WORK}; printf '%s\n' "${t//$ROOT\//}"; }

    local libs
    libs=$(cuda_lib_dirs)
    if ! ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; then
        for d in /usr/lib/x86_64-linux-gnu /usr/local/nvidia/lib64 /usr/lib64; do
            [[ -e $d/libcuda.so.1 ]] && libs=${libs:+$libs:}$d && break
        done
    fi
    export LD_LIBRARY_PATH=${libs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    [[ -f /usr/local/cuda/include/cuda_fp16.h ]] && export XENC_CUDA_INCLUDE=/usr/local/cuda/include
    export XENC_REQUIRE_GPU=1 XENC_TEST_MODEL_DIR=$work/test-model XENC_GOLDEN_DIR=$work/golden
    export RUST_BACKTRACE=1
    local sanitizer
    sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda/bin/compute-sanitizer /usr/local/cuda-*/bin/compute-sanitizer 2>/dev/null | head -1)
    local card
    card=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)

    {
        echo "# xenc GPU check: ${card:-unknown card}, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo
        echo "- host: $(uname -srm); bundle: $(tidy "$bundle"), unpacked to \$WORK"
        sed 's/^/- bundle /' "$work/MANIFEST"
        [[ -f $work/BASELINE ]] && echo "- baseline CLI: $(cat "$work/BASELINE")"
        echo "- LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
        echo "- compute-sanitizer: ${sanitizer:-not found}"
        echo
    } >"$report"

    # step TITLE MAX_SECONDS CMD...: runs CMD with a timeout (capped by what is left of the budget),
    # appends command, exit status, time and output to the report. Returns CMD's status.
    step() {
        local title=$1 max=$2
        shift 2
        local left=$((budget - (SECONDS - start)))
        ((left < max)) && max=$left
        if ((max < 5)); then
            echo "| $title | skipped: out of time | 0 |" >>"$summary"
            printf '## %s\n\nskipped: the %s s budget is spent\n\n' "$title" "$budget" >>"$report"
            return 124
        fi
        local t0=$SECONDS out rc
        out=$(timeout --kill-after=5 "$max" "$@" 2>&1)
        rc=$?
        local took=$((SECONDS - t0)) status=ok
        ((rc == 124 || rc == 137)) && status="TIMEOUT after ${max}s"
        ((rc != 0 && rc != 124 && rc != 137)) && status="FAILED (exit $rc)"
        echo "| $title | $status | $took |" >>"$summary"
        # xenc bench's lines "model N pairs T tokens X pairs/s ...", end_to_end, rerank_1x50 (p50_ms): one row
        # per step that printed them, so the A/Bs can be read side by side at the end.
        printf '%s\n' "$out" | awk -v t="$title" '
            $1 == "model" && $7 == "pairs/s" && !m { m = $6 }
            $1 == "end_to_end" && $7 == "pairs/s" && !e { e = $6 }
            $1 == "rerank_1x50" && match($0, /"p50_ms":[0-9.]+/) && !r { r = substr($0, RSTART + 9, RLENGTH - 9) }
            END { if (m != "") printf "| %s | %s | %s | %s |\n", t, m, e, r }' >>"$figures"
        {
            printf '## %s\n\n```\n$ %s\n```\n\nexit %s after %s s (limit %s s)\n\n```text\n' "$title" "$(tidy "$*")" "$rc" "$took" "$max"
            tidy "$out" | tail -n 700
            printf '```\n\n'
        } >>"$report"
        printf '%s\n' "$out" | tail -n 40
        echo "gpu-check: $title: $status (${took}s)"
        return $rc
    }

    step "nvidia-smi" 20 nvidia-smi --query-gpu=name,driver_version --format=csv
    # Checkpoints no GPU has verified yet (RoBERTa / XLM-R, a 3-label head), built here with numpy in ~2 s;
    # unverified_families_and_label_heads_match_float64_goldens checks them against their goldens.
    step "build the RoBERTa / XLM-R and 3-label checkpoints (numpy)" 60 bash -c \
        'python3 scripts/build_family_models.py "$0/families" &&
         python3 scripts/build_shape_models.py "$0/shapes" --tokenizer-from "$0/f16" --only l2-h128-3labels' \
        "$work/test-model"
    # The GPU tests are #[ignore]d so that a machine without a GPU reports them as not run; here they run,
    # all but throughput_of_the_backend (a measurement, run below when the CLI cannot reach CUDA).
    local tests=("$work/bin/gpu-tests" --include-ignored --test-threads=1 --nocapture)
    step "GPU tests (kernels vs CPU twins, model vs goldens)" 110 "${tests[@]}" --skip throughput_of_the_backend
    # The A/B candidates at model level against the goldens (the choices are read once per process).
    local c
    for c in "${CANDIDATES[@]}" "$ALL_CANDIDATES|all of them together"; do
        step "model vs goldens under the A/B candidate $(cut -d'|' -f1 <<<"$c") ($(cut -d'|' -f2 <<<"$c"))" 30 \
            env $(cut -d'|' -f1 <<<"$c") "${tests[@]}" model_matches_float64_goldens a_batch_scores_like_each_pair_alone
    done

    # A small input for the sanitizers: pairs of very different lengths.
    local small=$work/small.jsonl model=$work/test-model/f16
    sed -n '1p;30p;60p;90p;120p;150p;175p;200p' "$work/golden/pairs.jsonl" >"$small"
    local target=("$work/bin/xenc" score --model "$model" --device cuda --input "$small")
    if step "xenc score --device cuda (8 pairs)" 40 "${target[@]}"; then
        if "$work/bin/xenc" bench --help >/dev/null 2>&1; then
            step "throughput: xenc bench --device cuda" 60 "$work/bin/xenc" bench --model "$model" --device cuda \
                --generate 2000 --repeats 3 --rerank-runs 20
            if [[ -x $work/bin/xenc-baseline ]]; then
                step "baseline $(cut -d' ' -f1 "$work/BASELINE"): the same bench with the CLI of that commit" 60 \
                    "$work/bin/xenc-baseline" bench --model "$model" --device cuda --generate 2000 --repeats 3 \
                    --rerank-runs 20
                step "this tree again (after the baseline, for drift)" 60 "$work/bin/xenc" bench --model "$model" \
                    --device cuda --generate 2000 --repeats 3 --rerank-runs 20
            fi
            # The XLM-R shape with head_dim 64 (opted in: not yet a default), and the 8k-token one.
            step "throughput: XLM-R h384 head_dim 64 (unverified), xenc bench --device cuda" 60 \
                "$work/bin/xenc" bench --model "$work/test-model/families/xlmr-l2-h384-hd64" --device cuda \
                --cuda-unverified --generate 2000 --repeats 3 --rerank-runs 20
            step "where the time goes: xenc bench --device cuda --profile" 60 "$work/bin/xenc" bench --model "$model" \
                --device cuda --generate 2000 --repeats 3 --rerank-runs 20 --profile
            for c in "${CANDIDATES[@]}" "$ALL_CANDIDATES|all of them together"; do
                step "A/B: $(cut -d'|' -f1 <<<"$c") ($(cut -d'|' -f2 <<<"$c")) xenc bench --device cuda" 60 \
                    env $(cut -d'|' -f1 <<<"$c") "$work/bin/xenc" bench --model "$model" --device cuda \
                    --generate 2000 --repeats 3 --rerank-runs 20
            done
            # Hardware counters of one layer's kernels (Nsight Compute; clocks left alone, METHOD.md).
            if [[ $quick == 0 ]] && command -v ncu >/dev/null; then
                step "ncu: one layer's kernels of a full batch (attention, GELU, LayerNorm, GEMMs)" 90 ncu \
                    --clock-control none --launch-skip 9 --launch-count 8 \
                    --section SpeedOfLight --section Occupancy --section WarpStateStats \
                    --section MemoryWorkloadAnalysis "$work/bin/xenc" bench --model "$model" --device cuda \
                    --generate 400 --repeats 1 --rerank-runs 1
                # Each candidate's own kernel: name regex, the candidate, launches to skip (warm-up).
                local k regex var skip
                for k in "^attention_mma_v3_hd32_f16$|XENC_ATTENTION=mma-v3|9" \
                    "^attention_mma_v3_s4_hd32_f16$|XENC_ATTENTION=mma-s4|9" \
                    "^pooler_classifier_v4_f16$|XENC_POOLER=v4|2" "^gemm_bias_gelu_f16$|XENC_FFN_IN=fused|2" \
                    "^gemm_bias_gelu_w64_f16$|XENC_FFN_IN=fused-w64|2" "^layernorm_f16$|XENC_RESIDUAL=gemm|4"; do
                    IFS='|' read -r regex var skip <<<"$k"
                    step "ncu: $regex under $var" 45 env "$var" ncu --clock-control none -k "regex:$regex" \
                        --launch-skip "$skip" --launch-count 1 --section SpeedOfLight --section Occupancy \
                        --section WarpStateStats --section MemoryWorkloadAnalysis "$work/bin/xenc" bench \
                        --model "$model" --device cuda --generate 400 --repeats 1 --rerank-runs 1
                done
                step "ncu: the pooler (default)" 60 ncu --clock-control none \
                    -k 'regex:^pooler_classifier_f16$' --launch-skip 2 --launch-count 1 \
                    --section SpeedOfLight --section Occupancy --section WarpStateStats \
                    "$work/bin/xenc" bench --model "$model" --device cuda --generate 400 --repeats 1 --rerank-runs 1
            fi
        else
            local big=$work/big.jsonl
            for _ in $(seq 10); do cat "$work/golden/pairs.jsonl"; done >"$big"
            step "throughput: xenc score --device cuda (2090 pairs)" 60 \
                bash -c 'time "$0" score --model "$1" --device cuda --input "$2" | wc -l' "$work/bin/xenc" "$model" "$big"
        fi
    else
        echo "gpu-check: the CLI cannot run on CUDA; sanitizers and throughput use the test binary instead"
        target=("$work/bin/gpu-tests" --include-ignored --exact small_forward_for_sanitizers --nocapture)
        step "throughput: CudaBackend on the goldens x10 (test binary)" 60 \
            "$work/bin/gpu-tests" --ignored --exact throughput_of_the_backend --nocapture
    fi
    if [[ -x $work/bin/gpu-kernel-bench ]]; then
        step "criterion: each kernel on a 16k-token batch (benches/gpu_kernels.rs)" 60 \
            "$work/bin/gpu-kernel-bench" --bench --warm-up-time 0.5 --measurement-time 1 --noplot
    fi
    if [[ -x $work/bin/host-path-bench ]]; then
        step "criterion: rerank's host steps and tokenisation on this machine's cores (benches/host_path.rs)" 90 \
            "$work/bin/host-path-bench" --bench --warm-up-time 0.3 --measurement-time 0.7 --noplot rerank_tokenize
    fi
    if [[ -n $sanitizer ]]; then
        step "compute-sanitizer memcheck" 75 "$sanitizer" --tool memcheck --error-exitcode 1 --print-limit 20 "${target[@]}"
        # cuBLAS's own Hopper GEMM kernels (nvjet_*) draw racecheck reports (480 "hazards" each on an H200,
        # 2026-11-26) in NVIDIA's code, none in xenc's; excluding them with --kernel-name-exclude made the
        # sanitizer itself fail ("failed to handle a hardware exception"). So racecheck sees every kernel and
        # the step fails on any hazard in a kernel that is not nvjet_*, or if the program fails.
        export -f racecheck_xenc   # `timeout` runs programs, not shell functions
        step "compute-sanitizer racecheck (hazards outside cuBLAS's nvjet_* kernels fail)" 75 \
            bash -c 'racecheck_xenc "$@"' racecheck "$sanitizer" "${target[@]}"
        step "compute-sanitizer synccheck" 75 "$sanitizer" --tool synccheck --error-exitcode 1 --print-limit 20 "${target[@]}"
    else
        echo "| compute-sanitizer | not found | 0 |" >>"$summary"
    fi
    # Baselines on the same pairs (the GPU machine's own torch / onnxruntime); last, as it is the longest.
    if [[ $quick == 1 ]]; then
        echo "| bench-compare | skipped (--quick) | 0 |" >>"$summary"
    elif command -v python3 >/dev/null; then
        step "bench-compare: xenc vs ONNX Runtime / sentence-transformers (cuda)" 120 \
            env XENC_BIN="$work/bin/xenc" XENC_BENCH_PY=python3 XENC_CACHE="$work/cache" \
            bash scripts/bench-compare.sh --device cuda --model "$model" --generate 10000 --repeats 3
    fi

    local failed=0
    grep -qE '\| (FAILED|TIMEOUT)' "$summary" && failed=1
    {
        echo "## Summary ($((SECONDS - start)) s)"
        echo
        echo "| step | status | seconds |"
        echo "|---|---|---|"
        cat "$summary"
        if [[ -s $figures ]]; then
            echo
            echo "### xenc bench figures by step (model and end-to-end pairs/s, rerank 1x50 p50 ms)"
            echo
            echo "| step | model | end to end | rerank p50 |"
            echo "|---|---:|---:|---:|"
            cat "$figures"
        fi
    } >>"$report"
    rm -rf "$work" "$summary" "$figures"
    echo
    sed -n '/^## Summary/,$p' "$report"
    echo "gpu-check: report written to $report"
    return $failed
}

case "${1:-}" in
    prepare) prepare ;;
    run) shift; run_checks "$@" ;;
    *) echo "usage: $0 prepare | run [--quick]" >&2; exit 2 ;;
esac
