#!/usr/bin/env bash
# Regenerate tests/golden/{goldens.jsonl,meta.json} with one command.
#
#   scripts/golden-venv.sh [extra make_goldens.py args...]
#
# 1. creates (or reuses) a throwaway virtualenv OUTSIDE the repository,
#    default $XENC_CACHE/golden-venv (XENC_CACHE defaults to $HOME/.cache/xenc),
#    and installs torch, transformers, sentence-transformers, safetensors and
#    numpy from PyPI (pinned to the versions the committed goldens were made
#    with; set XENC_GOLDEN_UNPINNED=1 for the latest releases instead);
# 2. builds the f32 test checkpoint with scripts/fetch-test-model.sh
#    (into $XENC_CACHE/test-model/f32 unless XENC_TEST_MODEL is set);
# 3. runs scripts/make_goldens.py, writing into tests/golden/;
# 4. builds the synthetic checkpoints of other shapes with
#    scripts/build_shape_models.py (into $XENC_CACHE/test-model/shapes/NAME unless
#    XENC_SHAPE_MODELS is set) and runs scripts/make_shape_goldens.py, writing
#    into tests/golden/shapes/, and scripts/make_label_goldens.py (the 3-label head) into
#    tests/golden/labels/.  XENC_GOLDEN_SHAPES=0 skips this step;
# 5. builds the RoBERTa / XLM-R checkpoints (scripts/build_family_models.py, into
#    $XENC_CACHE/test-model/families unless XENC_FAMILY_MODELS is set) and runs
#    scripts/make_family_goldens.py into tests/golden/families/.  XENC_GOLDEN_FAMILIES=0 skips it.
#
# Environment: XENC_CACHE, XENC_GOLDEN_VENV (venv path), XENC_TEST_MODEL
# (checkpoint dir), XENC_SHAPE_MODELS (parent of the shape checkpoints),
# PYTHON (interpreter used to create the venv, default python3),
# XENC_GOLDEN_UNPINNED, XENC_GOLDEN_SHAPES.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
VENV=${XENC_GOLDEN_VENV:-$CACHE/golden-venv}
MODEL=${XENC_TEST_MODEL:-$CACHE/test-model/f32}
SHAPE_MODELS=${XENC_SHAPE_MODELS:-$CACHE/test-model/shapes}
BASE_PY=${PYTHON:-python3}

case "$VENV/" in
    "$REPO"/*) echo "error: the golden venv must live outside the repository ($VENV)" >&2; exit 1 ;;
esac

# The python stack the goldens come from (shared with scripts/bench-venv.sh).
mapfile -t PINNED < "$REPO/scripts/golden-pins.txt"
UNPINNED=("${PINNED[@]%%==*}")

if [[ ! -x "$VENV/bin/python" ]]; then
    echo "golden-venv: creating $VENV" >&2
    "$BASE_PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python

if [[ -n "${XENC_GOLDEN_UNPINNED:-}" ]]; then
    WANT=("${UNPINNED[@]}")
else
    WANT=("${PINNED[@]}")
fi

# Install only if something is missing or (when pinned) at another version.
if ! "$VPY" "$REPO/scripts/pins_satisfied.py" "${WANT[@]}"
then
    echo "golden-venv: installing ${WANT[*]} into $VENV (torch is large; this takes a while)" >&2
    "$VPY" -m pip install --quiet --upgrade pip >&2
    "$VPY" -m pip install --quiet "${WANT[@]}" >&2
fi

PYTHON=$VPY "$REPO/scripts/fetch-test-model.sh" "$MODEL" f32

cd "$REPO"
"$VPY" scripts/make_goldens.py --model "$MODEL" --pairs tests/golden/pairs.jsonl --out tests/golden/ "$@"

if [[ "${XENC_GOLDEN_FAMILIES:-1}" != 0 ]]; then
    # RoBERTa / XLM-R: the Unigram tokenizer is committed (tests/fixtures/xlmr-tokenizer/); retrain it
    # with scripts/build_xlmr_tokenizer.py only on purpose (the goldens follow it).
    FAMILY_MODELS=${XENC_FAMILY_MODELS:-$CACHE/test-model/families}
    "$VPY" scripts/build_family_models.py "$FAMILY_MODELS" >&2
    "$VPY" scripts/make_family_goldens.py --models "$FAMILY_MODELS" --pairs tests/golden/pairs.jsonl \
        --out tests/golden/families/
fi

if [[ "${XENC_GOLDEN_SHAPES:-1}" != 0 ]]; then
    "$VPY" scripts/build_shape_models.py "$SHAPE_MODELS" --tokenizer-from "$MODEL" >&2
    "$VPY" scripts/make_shape_goldens.py --models "$SHAPE_MODELS" --pairs tests/golden/pairs.jsonl \
        --out tests/golden/shapes/
    # Heads with several labels (build_shape_models.py's LABEL_SHAPES, built just above).
    "$VPY" scripts/make_label_goldens.py --models "$SHAPE_MODELS" --pairs tests/golden/pairs.jsonl \
        --out tests/golden/labels/
fi
