#!/usr/bin/env python3
"""Goldens for heads with several labels (LABEL_SHAPES of scripts/build_shape_models.py).

    python scripts/make_label_goldens.py [--models ROOT] [--pairs tests/golden/pairs.jsonl] \
        [--out tests/golden/labels/]

Needs the golden venv (torch, transformers, sentence-transformers; scripts/golden-venv.sh). ROOT holds
one folder per shape (default $XENC_CACHE/test-model/shapes, where scripts/fixtures.sh builds them).

Per shape, NAME.jsonl holds one line per pair (pairs 0-59 of pairs.jsonl and every pair whose note
starts with "edge:"; `index` into pairs.jsonl): input_ids and token_type_ids (transformers' fast
tokenizer, max_length 512, as tests/golden/README.md), `logits` (every label's logit,
AutoModelForSequenceClassification in float64, one pair per forward), `logits_fp32` (the same in
float32), and what sentence-transformers' CrossEncoder.predict returns for the same pairs:
`st_default` (its default activation for several labels, Identity) and `st_softmax`
(apply_softmax=True). meta.json: versions, labels, errors, and what CrossEncoder.rank does with such a
model (it refuses).
"""

import argparse
import json
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from build_shape_models import LABEL_SHAPES  # noqa: E402
from make_goldens import golden_selection, load_classifier, load_pairs, sha256_file  # noqa: E402

FIRST = 60
MAX_LENGTH = 512


def main():
    cache = os.environ.get("XENC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xenc")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(cache, "test-model", "shapes"))
    ap.add_argument("--pairs", default="tests/golden/pairs.jsonl")
    ap.add_argument("--out", default="tests/golden/labels/")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.pairs)
    selected = golden_selection(pairs, FIRST)
    os.makedirs(args.out, exist_ok=True)
    shapes_meta = {}
    for name in LABEL_SHAPES:
        model_dir = os.path.join(args.models, name)
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
        tok = AutoTokenizer.from_pretrained(model_dir)
        assert tok.is_fast, name
        encs = []
        for i in selected:
            e = tok([pairs[i]["query"]], [pairs[i]["document"]], truncation="longest_first",
                    max_length=MAX_LENGTH, padding=False)
            encs.append((list(e["input_ids"][0]), list(e["token_type_ids"][0])))

        model32, model64 = load_classifier(model_dir, name)
        assert model32.config.num_labels == len(labels), name

        def run(model, ids, tt):
            with torch.inference_mode():
                x = torch.tensor([ids], dtype=torch.long)
                out = model(input_ids=x, token_type_ids=torch.tensor([tt], dtype=torch.long),
                            attention_mask=torch.ones_like(x))
            return [float(v) for v in out.logits[0].double()]

        logits64 = np.array([run(model64, ids, tt) for ids, tt in encs])
        logits32 = np.array([run(model32, ids, tt) for ids, tt in encs])
        del model64
        err = float(np.max(np.abs(logits32 - logits64)))
        std = float(np.std(logits64))
        argmax = np.bincount(logits64.argmax(axis=1), minlength=len(labels)).tolist()
        print(f"{name}: {len(encs)} pairs, logits {logits64.min():.4f}..{logits64.max():.4f} std {std:.4f}, "
              f"fp32 err {err:.3e}, best label counts {argmax}", file=sys.stderr)
        assert std > 0.05, f"{name}: logits barely vary (std {std})"
        assert sum(c > 0 for c in argmax) >= 2, f"{name}: one label always wins ({argmax}); the test would be weak"

        ce = CrossEncoder(model_dir, device="cpu")
        act = type(ce.activation_fn).__name__
        texts = [(pairs[i]["query"], pairs[i]["document"]) for i in selected]
        st_default = ce.predict(texts, batch_size=16, show_progress_bar=False)
        st_softmax = ce.predict(texts, batch_size=16, show_progress_bar=False, apply_softmax=True)
        assert st_default.shape == (len(texts), len(labels)), st_default.shape
        st_diff = float(np.max(np.abs(st_default - logits32)))
        assert st_diff < 1e-4, f"{name}: sentence-transformers disagrees with transformers fp32 ({st_diff})"
        try:
            ce.rank(texts[0][0], [d for _, d in texts[:3]])
            rank_refusal = None
        except ValueError as e:
            rank_refusal = str(e)
        del ce, model32

        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for k, i in enumerate(selected):
                ids, tt = encs[k]
                f.write(json.dumps({"index": i, "input_ids": ids, "token_type_ids": tt,
                                    "logits": logits64[k].tolist(), "logits_fp32": logits32[k].tolist(),
                                    "st_default": [float(x) for x in st_default[k]],
                                    "st_softmax": [float(x) for x in st_softmax[k]]}) + "\n")
        shapes_meta[name] = {
            "labels": labels,
            "st_default_activation": act,
            "st_predict_vs_fp32_max_abs_diff": st_diff,
            "st_rank_refusal": rank_refusal,
            "model_safetensors_sha256": sha256_file(os.path.join(model_dir, "model.safetensors")),
            "num_pairs": len(encs),
            "fp32_max_abs_err": err,
            "logit_range": [float(logits64.min()), float(logits64.max())],
            "logit_std": std,
            "best_label_counts": argmax,
        }

    meta = {
        "generator": "scripts/make_label_goldens.py (checkpoints from scripts/build_shape_models.py)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "sentence-transformers": sentence_transformers.__version__, "numpy": np.__version__},
        "pairs": {"source": "tests/golden/pairs.jsonl",
                  "selection": f"indices 0-{FIRST - 1} and every pair whose note starts with 'edge:'"},
        "threads": args.threads,
        "shapes": shapes_meta,
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
