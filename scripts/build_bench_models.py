#!/usr/bin/env python3
"""Build synthetic checkpoints in real rerankers' full shapes, for benchmarks only (not for CI).

    python3 scripts/build_bench_models.py [OUTROOT] [--only NAME]

OUTROOT defaults to $XENC_CACHE/bench-models (XENC_CACHE defaulting to $HOME/.cache/xenc); each shape
goes to OUTROOT/NAME. They are hundreds of MB in f32, so neither CI nor scripts/fixtures.sh builds them.

Shapes:

  xlmr-base-shape   BAAI/bge-reranker-base's encoder and head: xlm-roberta, 12 layers, hidden 768,
                    12 heads (head_dim 64), intermediate 3072, 514 positions (512 usable),
                    pad_token_id 1, type_vocab_size 1, XLMRobertaForSequenceClassification with
                    classifier.dense + classifier.out_proj and one label (~89 M parameters, ~356 MB).

The vocabulary is the committed test tokenizer's (tests/fixtures/xlmr-tokenizer/, 4,000 pieces), not
bge-reranker-base's 250,002: the vocabulary only sizes the embedding table, from which each token reads
one row, so the compute per token (and so pairs/s) does not depend on it; only the file size and the
resident memory do (the real table would add 246,002 x 768 f32 = ~721 MiB).

Everything else is scripts/build_family_models.py's, reused by import: its config fields, its weights
(deterministic, seeded by sha256 of "<shape>/<tensor>", numpy only), its stamp and
scripts/build_shape_models.py's install_checkpoint (skipped when the stamp matches; built in a temporary
sibling and renamed into place). Needs only numpy (e.g. $XENC_CACHE/fixture-venv/bin/python).
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import build_family_models as family  # noqa: E402  (exits with a hint if numpy is missing)

SHAPES = {
    "xlmr-base-shape": dict(model_type="xlm-roberta", num_hidden_layers=12, hidden_size=768,
                            num_attention_heads=12, intermediate_size=3072, max_position_embeddings=514),
}


def tokenizer_vocab_size():
    with open(os.path.join(family.TOKENIZER_DIR, "tokenizer.json"), encoding="utf-8") as f:
        tok = json.load(f)
    vocab = tok["model"]["vocab"]
    added = {t["id"] for t in tok.get("added_tokens", [])}
    return max(len(vocab), max(added, default=-1) + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cache = os.environ.get("XENC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xenc")
    ap.add_argument("outroot", nargs="?", default=os.path.join(cache, "bench-models"),
                    help="parent folder; each shape goes to OUTROOT/NAME (default: %(default)s)")
    ap.add_argument("--only", choices=sorted(SHAPES), action="append", help="build only this shape (repeatable)")
    args = ap.parse_args()

    n = tokenizer_vocab_size()
    if n != family.VOCAB_SIZE:
        raise SystemExit(f"error: {family.TOKENIZER_DIR}/tokenizer.json has {n} pieces, "
                         f"build_family_models.py writes vocab_size {family.VOCAB_SIZE}")
    for name in args.only or list(SHAPES):
        clash = family.SHAPES.get(name)
        if clash is not None and clash != SHAPES[name]:
            raise SystemExit(f"error: build_family_models.py has another shape named {name}")
        # The family builder works from its SHAPES table: the bench shapes join it for this process only.
        family.SHAPES[name] = SHAPES[name]
        family.build_one(name, args.outroot.rstrip("/") or "/")


if __name__ == "__main__":
    main()
