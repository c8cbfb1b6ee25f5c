#!/usr/bin/env bash
# Sets up, idempotently, what the tests and the demo need beyond cargo:
#   - a small python venv with numpy (builds the test checkpoint; no torch),
#   - the test checkpoint in f32, f16 and bf16 under $XENC_TEST_MODEL_DIR, the synthetic
#     checkpoints of other shapes under $XENC_TEST_MODEL_DIR/shapes and of the RoBERTa family under
#     $XENC_TEST_MODEL_DIR/families,
#   - with --cuda-compilers: a venv with NVRTC, ptxas and the CUDA headers from PyPI, for
#     scripts/check-kernels.sh and for build.rs to compile the kernels (no GPU needed);
#   - with --demo instead: only the f32 test checkpoint (what scripts/demo.sh runs).
# Everything lives under $XENC_CACHE (default $HOME/.cache/xenc), so a second run costs seconds.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
MODELS=${XENC_TEST_MODEL_DIR:-$CACHE/test-model}
FIXTURE_VENV=$CACHE/fixture-venv
CUDA_VENV=$CACHE/cuda-venv
CUDA_PKGS="nvidia-cuda-nvrtc-cu12==12.9.86 nvidia-cuda-nvcc-cu12==12.9.86 nvidia-cuda-runtime-cu12==12.9.79"

venv() { # venv DIR IMPORT PACKAGES...
    local dir=$1 probe=$2; shift 2
    if ! "$dir/bin/python" -c "import $probe" >/dev/null 2>&1; then
        echo "fixtures: creating $dir ($*)" >&2
        python3 -m venv "$dir"
        "$dir/bin/python" -m pip install --quiet --disable-pip-version-check "$@"
    fi
}

venv "$FIXTURE_VENV" numpy "numpy==2.*"
if [[ "${1:-}" == "--demo" ]]; then
    PYTHON=$FIXTURE_VENV/bin/python XENC_CACHE=$CACHE scripts/fetch-test-model.sh "$MODELS/f32" f32 >&2
    exit 0
fi
for dtype in f32 f16 bf16; do
    PYTHON=$FIXTURE_VENV/bin/python XENC_CACHE=$CACHE scripts/fetch-test-model.sh "$MODELS/$dtype" "$dtype" >&2
done
# Synthetic checkpoints of other BERT shapes (head_dim 64, TinyBERT's 312/26, 128 positions, a 3-label
# head), numpy only.
"$FIXTURE_VENV/bin/python" scripts/build_shape_models.py "$MODELS/shapes" --tokenizer-from "$MODELS/f32" >&2
# RoBERTa / XLM-RoBERTa checkpoints with the committed Unigram tokenizer (tests/fixtures/), numpy only.
"$FIXTURE_VENV/bin/python" scripts/build_family_models.py "$MODELS/families" >&2

if [[ "${1:-}" == "--cuda-compilers" ]]; then
    venv "$CUDA_VENV" "nvidia.cuda_nvrtc, nvidia.cuda_nvcc, nvidia.cuda_runtime" $CUDA_PKGS
fi
