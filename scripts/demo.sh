#!/usr/bin/env bash
# The main job on the test checkpoint: build xenc, score pairs from JSON Lines, rerank documents.
set -euo pipefail
cd "$(dirname "$0")/.."
CACHE=${XENC_CACHE:-$HOME/.cache/xenc}
MODEL=${XENC_TEST_MODEL_DIR:-$CACHE/test-model}/f32
DEVICE=${XENC_DEVICE:-auto}

bash scripts/fixtures.sh --demo
cargo build --release --quiet
xenc=${CARGO_TARGET_DIR:-target}/release/xenc

echo "== xenc score: the first 5 golden pairs (JSON Lines in, one {\"score\"} per line out)"
head -n 5 tests/golden/pairs.jsonl | "$xenc" score --model "$MODEL" --device "$DEVICE"

echo "== xenc rerank: documents on stdin, best first"
echo "   (the test checkpoint's classifier head is synthetic, weights sin(j+1): its scores exercise the whole"
echo "   path exactly but are no relevance judgement, so this order means nothing)"
"$xenc" rerank --model "$MODEL" --device "$DEVICE" --query "how do vaccines work" --top-k 3 <<'DOCS'
Vaccines train the immune system to recognise a pathogen without causing the disease.
The Eiffel Tower was completed in 1889 for the World's Fair in Paris.
An mRNA vaccine carries instructions for cells to make a harmless piece of the spike protein.
Sourdough bread rises thanks to wild yeast and lactic acid bacteria.
Herd immunity protects people who cannot be vaccinated when most of the population is immune.
DOCS

echo "== with a real reranker instead, downloaded once (xenc itself never touches the network):"
echo "   huggingface-cli download cross-encoder/ms-marco-MiniLM-L-6-v2 --local-dir models/ms-marco-MiniLM-L-6-v2"
echo "   $xenc rerank --model models/ms-marco-MiniLM-L-6-v2 --query 'how do vaccines work' < documents.txt"
