#!/usr/bin/env bash
# The main job on the test checkpoint: build xenc, score pairs from JSON Lines, rerank documents.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
MODEL=${XENC_TEST_MODEL_DIR:-$CACHE/test-model}/f32
DEVICE=${XENC_DEVICE:-auto}

bash scripts/fixtures.sh
cargo build --release --quiet
xenc=./target/release/xenc

echo "== xenc score: the first 5 golden pairs (JSON Lines in, one {\"score\"} per line out)"
head -n 5 tests/golden/pairs.jsonl | "$xenc" score --model "$MODEL" --device "$DEVICE"

# The test checkpoint's classifier head is synthetic (weights sin(j+1)): its scores exercise the whole
# path exactly, but they are not a relevance judgement. Use a real reranker for that (see README).
echo "== xenc rerank: documents on stdin, best first"
"$xenc" rerank --model "$MODEL" --device "$DEVICE" --query "how do vaccines work" --top-k 3 <<'DOCS'
Vaccines train the immune system to recognise a pathogen without causing the disease.
The Eiffel Tower was completed in 1889 for the World's Fair in Paris.
An mRNA vaccine carries instructions for cells to make a harmless piece of the spike protein.
Sourdough bread rises thanks to wild yeast and lactic acid bacteria.
Herd immunity protects people who cannot be vaccinated when most of the population is immune.
DOCS
