#!/usr/bin/env python3
"""Record sentence-transformers' CrossEncoder.predict and .rank on the test checkpoint, for the Python
package's tests (python/tests/), which run without torch.

    python scripts/make_rank_goldens.py --model DIR --pairs tests/golden/pairs.jsonl \
        --out tests/golden/python.json

Run it in the golden venv (scripts/golden-venv.sh creates it: torch, transformers,
sentence-transformers at the pinned versions of scripts/golden-pins.txt); DIR is the f32 test
checkpoint (scripts/fetch-test-model.sh DIR f32).

The model is loaded as a user would, CrossEncoder(DIR, device="cpu"), with every default (max_length
from tokenizer_config.json, the default activation), so the goldens are what a drop-in user sees.

Recorded (one JSON file):
  predict.default  predict(pairs) for every pair of pairs.jsonl (default activation: Sigmoid)
  predict.raw      predict(pairs, activation_fn=torch.nn.Identity())
  rank             cases of rank(query, documents, top_k, return_documents, activation_fn): the
                   queries and documents, and the list of {corpus_id, score, text} returned; one case
                   has repeated documents, whose equal scores must keep input order
  min_gap          per rank case, the smallest difference between two neighbouring unequal scores
                   (the order is only testable where it is well above the 1e-5 score tolerance)
"""

import argparse
import json
import platform


def load_pairs(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--pairs", default="tests/golden/pairs.jsonl")
    ap.add_argument("--out", default="tests/golden/python.json")
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import CrossEncoder

    torch.manual_seed(0)
    rows = load_pairs(args.pairs)
    pairs = [(r["query"], r["document"]) for r in rows]
    model = CrossEncoder(args.model, device="cpu")

    default = model.predict(pairs, batch_size=32)
    raw = model.predict(pairs, batch_size=32, activation_fn=torch.nn.Identity())
    assert default.dtype == np.float32 and raw.dtype == np.float32

    # Rank cases: queries of ordinary pairs (lines 0-159) against documents of ordinary pairs and a
    # few edge cases; one case with repeated documents (exact ties).
    ordinary = rows[:160]
    queries = [ordinary[i]["query"] for i in (0, 17, 42, 99, 151)]
    docs_a = [r["document"] for r in ordinary[:40]]
    docs_b = [r["document"] for r in rows[160:209]] + [ordinary[1]["document"]]
    docs_ties = [docs_a[0], docs_a[5], docs_a[0], docs_a[7], docs_a[5], docs_a[0]]
    cases = [
        dict(query=queries[0], documents=docs_a, top_k=None, return_documents=True, activation=None),
        dict(query=queries[1], documents=docs_a, top_k=5, return_documents=False, activation=None),
        dict(query=queries[2], documents=docs_a, top_k=10, return_documents=True, activation="identity"),
        dict(query=queries[3], documents=docs_b, top_k=None, return_documents=True, activation=None),
        dict(query=queries[4], documents=docs_ties, top_k=None, return_documents=True, activation="identity"),
    ]
    for case in cases:
        fn = torch.nn.Identity() if case["activation"] == "identity" else None
        result = model.rank(
            case["query"],
            case["documents"],
            top_k=case["top_k"],
            return_documents=case["return_documents"],
            batch_size=32,
            activation_fn=fn,
        )
        case["result"] = [
            {k: (float(v) if k == "score" else v) for k, v in r.items()} for r in result
        ]
        full = model.rank(case["query"], case["documents"], activation_fn=fn)
        s = sorted({r["score"] for r in full}, reverse=True)
        case["min_gap"] = min((a - b for a, b in zip(s, s[1:])), default=None)

    out = {
        "generator": "scripts/make_rank_goldens.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "numpy": np.__version__,
        },
        "model": "the f32 test checkpoint (scripts/fetch-test-model.sh DIR f32)",
        "call": "CrossEncoder(DIR, device='cpu'); predict(pairs, batch_size=32[, activation_fn=torch.nn.Identity()])",
        "max_length": model.max_length,
        "default_activation": type(model.activation_fn).__name__,
        "predict": {
            "default": [float(x) for x in default],
            "raw": [float(x) for x in raw],
        },
        "rank": cases,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=True, indent=1)
        f.write("\n")
    gaps = [c["min_gap"] for c in cases]
    print(f"wrote {args.out}: {len(pairs)} pairs, {len(cases)} rank cases, min gaps {gaps}")


if __name__ == "__main__":
    main()
