#!/usr/bin/env bash
# Create (or reuse) the virtualenv used by the baseline benchmarks
# (scripts/bench_baselines.py, scripts/export_onnx.py, scripts/bench-compare.sh).
#
#   scripts/bench-venv.sh            # prints the venv's python on stdout when done
#
# Same pins as scripts/golden-venv.sh (torch, transformers, sentence-transformers,
# tokenizers, safetensors, numpy) plus onnx and ONNX Runtime. The venv lives
# OUTSIDE the repository, default $XENC_CACHE/bench-venv (XENC_CACHE defaults to
# $HOME/.cache/xenc).
#
# ONNX Runtime flavour: XENC_BENCH_ORT=cpu|gpu|auto (default auto: the
# onnxruntime-gpu wheel, which has the CUDA execution provider, when nvidia-smi
# finds a GPU; otherwise the plain CPU onnxruntime wheel). Both wheels provide
# the same `onnxruntime` module, so the other one is removed when switching.
#
# Environment: XENC_CACHE, XENC_BENCH_VENV (venv path), PYTHON (interpreter used
# to create the venv, default python3), XENC_BENCH_ORT.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
VENV=${XENC_BENCH_VENV:-$CACHE/bench-venv}
BASE_PY=${PYTHON:-python3}

case "$VENV/" in
    "$REPO"/*) echo "error: the bench venv must live outside the repository ($VENV)" >&2; exit 1 ;;
esac

ORT_VERSION=1.31.1
FLAVOUR=${XENC_BENCH_ORT:-auto}
if [[ "$FLAVOUR" == auto ]]; then
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
        FLAVOUR=gpu
    else
        FLAVOUR=cpu
    fi
fi
case "$FLAVOUR" in
    cpu) ORT_PKG=onnxruntime; ORT_OTHER=onnxruntime-gpu ;;
    gpu) ORT_PKG=onnxruntime-gpu; ORT_OTHER=onnxruntime ;;
    *) echo "error: XENC_BENCH_ORT must be cpu, gpu or auto (got '$FLAVOUR')" >&2; exit 2 ;;
esac

# The goldens' python stack, plus ONNX Runtime.
mapfile -t PINNED < "$REPO/scripts/golden-pins.txt"
PINNED+=("onnx==1.23.2" "$ORT_PKG==$ORT_VERSION")

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "bench-venv: creating $VENV" >&2
    "$BASE_PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python

if "$VPY" -m pip show --quiet "$ORT_OTHER" >/dev/null 2>&1; then
    echo "bench-venv: removing $ORT_OTHER (switching to $ORT_PKG)" >&2
    "$VPY" -m pip uninstall --quiet --yes "$ORT_OTHER" "$ORT_PKG" >&2 || true
fi

# Install only if something is missing or at another version (or onnxruntime is half-removed).
if ! "$VPY" "$REPO/scripts/pins_satisfied.py" "${PINNED[@]}" || ! "$VPY" -c 'import onnxruntime' 2>/dev/null
then
    echo "bench-venv: installing ${PINNED[*]} into $VENV (torch is large; this takes a while)" >&2
    "$VPY" -m pip install --quiet --upgrade pip >&2
    "$VPY" -m pip install --quiet "${PINNED[@]}" >&2
fi

echo "$VPY"
