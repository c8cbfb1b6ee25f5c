#!/usr/bin/env bash
# The Python package's tests: a venv from PyPI (python/requirements-test.txt: maturin, numpy, pytest,
# Ray Data), the wheel built from python/ and installed into it, then pytest python/tests.
#
#   bash scripts/python-test.sh [pytest args...]
#
# Needs the f32 test checkpoint (bash scripts/fixtures.sh; scripts/test.sh runs that first). Reruns are
# quick: the venv is reused while its requirements are unchanged, cargo rebuilds only what changed,
# and the wheel is reinstalled only when it differs.
#
# Environment: XENC_CACHE (default $HOME/.cache/xenc), XENC_PYTHON_VENV (default
# $XENC_CACHE/python-venv), PYTHON (interpreter the venv is made from, default python3),
# CARGO_TARGET_DIR (default python/target).
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD

CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
VENV=${XENC_PYTHON_VENV:-$CACHE/python-venv}
REQS=python/requirements-test.txt
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$REPO/python/target}

case "$VENV/" in
    "$REPO"/*) echo "error: the python venv must live outside the repository ($VENV)" >&2; exit 1 ;;
esac

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "python-test: creating $VENV" >&2
    "${PYTHON:-python3}" -m venv "$VENV"
fi
VPY=$VENV/bin/python
# Install when the requirements changed since the last install (a stamp holds their hash).
STAMP=$VENV/.xenc-requirements
WANT=$(sha256sum "$REQS" | cut -d' ' -f1)
if [[ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    echo "python-test: installing $REQS into $VENV" >&2
    "$VPY" -m pip install --quiet --upgrade pip >&2
    "$VPY" -m pip install --quiet -r "$REQS" >&2
    echo "$WANT" > "$STAMP"
fi

# build.rs compiles the CUDA kernels with the NVRTC of the cuda venv when it is there (scripts/test.sh
# makes it); without it, the wheel's CUDA path compiles them at first use.
if [[ -z "${XENC_NVRTC_LIB:-}" && -x "$CACHE/cuda-venv/bin/python" ]]; then
    eval "$("$CACHE/cuda-venv/bin/python" scripts/cuda_env.py)"
fi

WHEELS=$CARGO_TARGET_DIR/wheels
rm -f "$WHEELS"/xenc-*.whl
(cd python && "$VENV/bin/maturin" build --release --quiet --interpreter "$VPY" --out "$WHEELS")
WHEEL=$(ls "$WHEELS"/xenc-*.whl)
# Reinstall only when the wheel changed (pip would otherwise keep an installed 0.1.0).
INSTALLED=$VENV/.xenc-wheel
HASH=$(sha256sum "$WHEEL" | cut -d' ' -f1)
if [[ "$(cat "$INSTALLED" 2>/dev/null)" != "$HASH" ]] || ! "$VPY" -c "import xenc" 2>/dev/null; then
    "$VPY" -m pip install --quiet --force-reinstall --no-deps "$WHEEL"
    echo "$HASH" > "$INSTALLED"
fi

# From outside python/, so that `import xenc` is the installed wheel, not the source folder.
cd "$REPO/python/tests"
exec "$VPY" -m pytest -p no:cacheprovider -q "$@" .
