#!/usr/bin/env python3
"""Goldens for the synthetic checkpoints of other shapes (scripts/build_shape_models.py).

    python scripts/make_shape_goldens.py --models ROOT --pairs tests/golden/pairs.jsonl \
        --out tests/golden/shapes/ [--only NAME]

ROOT holds one folder per shape (ROOT/NAME, as build_shape_models.py writes
them; default $XENC_CACHE/test-model/shapes).  Needs the golden venv (torch,
transformers, sentence-transformers, tokenizers, numpy; see
scripts/golden-venv.sh, which runs this script after make_goldens.py).

Per shape, on pairs 0-59 of pairs.jsonl plus every pair whose note starts with
"edge:", with the tokenisation contract of tests/golden/README.md but
max_length = min(512, max_position_embeddings):

  NAME.jsonl  one line per selected pair, in pairs.jsonl order: index (into
              pairs.jsonl), input_ids, token_type_ids (unpadded), logit
              (transformers AutoModelForSequenceClassification, eval, float64,
              one pair per forward, attention mask all ones), logit_fp32 (the
              same model in float32)
  meta.json   versions, the selection, and per shape: config sizes, max_length,
              the model.safetensors sha256 and stamp, fp32-vs-f64 error, logit
              range and std, sentence-transformers' default activation
"""

import argparse
import json
import math
import os
import platform
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from make_goldens import golden_selection, load_classifier, load_pairs, sha256_file  # noqa: E402
from build_shape_models import SHAPES, STAMP_FILE  # noqa: E402

FIRST = 60
CONFIG_KEYS = ["num_hidden_layers", "hidden_size", "num_attention_heads", "intermediate_size",
               "max_position_embeddings", "type_vocab_size", "vocab_size", "layer_norm_eps"]


def parse_args():
    cache = os.environ.get("XENC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xenc")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(cache, "test-model", "shapes"),
                    help="folder holding one checkpoint folder per shape (default: %(default)s)")
    ap.add_argument("--pairs", default="tests/golden/pairs.jsonl")
    ap.add_argument("--out", default="tests/golden/shapes/")
    ap.add_argument("--only", choices=sorted(SHAPES), action="append",
                    help="regenerate only this shape (repeatable; meta.json keeps the others' entries)")
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1, for stable bits)")
    return ap.parse_args()


def main():
    args = parse_args()

    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    pairs = load_pairs(args.pairs)
    selected = golden_selection(pairs, FIRST)
    print(f"{len(selected)} of {len(pairs)} pairs selected", file=sys.stderr)

    # The MiniLM goldens were made with the same tokenizer files at max_length 512:
    # shapes with max_length 512 must tokenise exactly the same way.
    main_goldens = os.path.join(os.path.dirname(os.path.abspath(args.pairs)), "goldens.jsonl")
    ref_ids = None
    if os.path.isfile(main_goldens):
        with open(main_goldens, encoding="utf-8") as f:
            ref_ids = [json.loads(l)["input_ids"] for l in f if l.strip()]

    os.makedirs(args.out, exist_ok=True)
    meta_path = os.path.join(args.out, "meta.json")
    old_shapes = {}
    if args.only and os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as f:
            old_shapes = json.load(f).get("shapes", {})

    shapes_meta = {}
    for name in SHAPES:
        if args.only and name not in args.only:
            if name in old_shapes:
                shapes_meta[name] = old_shapes[name]
            continue
        model_dir = os.path.join(args.models, name)
        if not os.path.isfile(os.path.join(model_dir, "model.safetensors")):
            raise SystemExit(f"error: no checkpoint at {model_dir}; run scripts/build_shape_models.py {args.models}")
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        for k, v in SHAPES[name].items():
            assert cfg.get(k) == v, f"{name}: config.json {k}={cfg.get(k)!r}, expected {v!r} (stale build?)"
        max_len = min(512, cfg["max_position_embeddings"])

        # ---- tokenisation (contract of tests/golden/README.md) --------------
        tok = AutoTokenizer.from_pretrained(model_dir)
        assert tok.is_fast
        cls_id, sep_id, pad_id = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id
        raw = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        raw.no_padding()
        raw.enable_truncation(max_length=max_len, strategy="longest_first")
        encs = []
        for i in selected:
            p = pairs[i]
            e = tok([p["query"]], [p["document"]], truncation="longest_first", max_length=max_len, padding=False)
            ids, tt = list(e["input_ids"][0]), list(e["token_type_ids"][0])
            assert len(ids) == len(tt) <= max_len, (name, i, len(ids))
            assert all(m == 1 for m in e["attention_mask"][0]), (name, i)
            assert ids[0] == cls_id and ids[-1] == sep_id and pad_id not in ids, (name, i)
            first_sep = ids.index(sep_id)
            assert tt == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1), (name, i)
            r = raw.encode(p["query"], p["document"])
            assert r.ids == ids and r.type_ids == tt, f"{name} pair {i}: raw tokenizers disagrees"
            if max_len == 512 and ref_ids is not None:
                assert ref_ids[i] == ids, f"{name} pair {i}: differs from tests/golden/goldens.jsonl"
            encs.append((ids, tt))
        lens = [len(ids) for ids, _ in encs]

        # ---- transformers float64 / float32 ---------------------------------
        model32, model64 = load_classifier(model_dir, name)
        mc = model32.config
        assert mc.num_labels == 1
        for k in CONFIG_KEYS:
            assert getattr(mc, k) == cfg.get(k, getattr(mc, k)), (name, k)

        def run(model, ids, tt):
            with torch.inference_mode():
                x = torch.tensor([ids], dtype=torch.long)
                out = model(input_ids=x, token_type_ids=torch.tensor([tt], dtype=torch.long),
                            attention_mask=torch.ones_like(x))
            return float(out.logits[0, 0].double())

        logit64 = [run(model64, ids, tt) for ids, tt in encs]
        logit32 = [run(model32, ids, tt) for ids, tt in encs]
        del model64
        assert all(math.isfinite(v) for v in logit64 + logit32), name
        errs = [abs(a - b) for a, b in zip(logit32, logit64)]
        j = int(np.argmax(errs))
        std = float(np.std(np.array(logit64)))
        print(f"{name}: max_length {max_len}, logits {min(logit64):.4f}..{max(logit64):.4f} std {std:.4f}, "
              f"fp32 err {errs[j]:.3e} (pair {selected[j]})", file=sys.stderr)
        assert std > 0.05, f"{name}: logits barely vary across pairs (std {std}); the test would be weak"

        # ---- sentence-transformers: default activation ----------------------
        ce = CrossEncoder(model_dir, max_length=max_len, device="cpu")
        act = type(ce.activation_fn).__name__
        assert act in ("Identity", "Sigmoid"), (name, act)
        st = [float(x) for x in ce.predict([(pairs[i]["query"], pairs[i]["document"]) for i in selected],
                                           batch_size=16, show_progress_bar=False)]
        expect = logit32 if act == "Identity" else [1.0 / (1.0 + math.exp(-l)) for l in logit32]
        st_diff = max(abs(a - b) for a, b in zip(st, expect))
        assert st_diff < 1e-4, f"{name}: sentence-transformers disagrees with transformers fp32 ({st_diff})"
        if "sbert_ce_default_activation_function" in cfg:
            assert act == cfg["sbert_ce_default_activation_function"].rsplit(".", 1)[-1], (name, act)
        del ce, model32

        gpath = os.path.join(args.out, f"{name}.jsonl")
        with open(gpath, "w", encoding="utf-8") as f:
            for k, i in enumerate(selected):
                ids, tt = encs[k]
                f.write(json.dumps({"index": i, "input_ids": ids, "token_type_ids": tt,
                                    "logit": logit64[k], "logit_fp32": logit32[k]}) + "\n")

        stamp_path = os.path.join(model_dir, STAMP_FILE)
        stamp = open(stamp_path, encoding="utf-8").read().strip() if os.path.exists(stamp_path) else None
        shapes_meta[name] = {
            "config": {k: cfg[k] for k in CONFIG_KEYS},
            "head_dim": cfg["hidden_size"] // cfg["num_attention_heads"],
            "sbert_ce_default_activation_function": cfg.get("sbert_ce_default_activation_function"),
            "st_default_activation": act,
            "st_predict_vs_fp32_max_abs_diff": st_diff,
            "max_length": max_len,
            "built_by": f"scripts/build_shape_models.py OUTROOT --only {name}",
            "stamp": stamp,
            "model_safetensors_sha256": sha256_file(os.path.join(model_dir, "model.safetensors")),
            "num_pairs": len(selected),
            "max_tokens_seen": max(lens),
            "num_truncated_to_max_length": sum(l == max_len for l in lens),
            "fp32_max_abs_err": errs[j],
            "fp32_max_abs_err_index": selected[j],
            "logit_range": [min(logit64), max(logit64)],
            "logit_std": std,
        }

    meta = {
        "generator": "scripts/make_shape_goldens.py (checkpoints from scripts/build_shape_models.py)",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "numpy": np.__version__,
        },
        "pairs": {
            "source": "tests/golden/pairs.jsonl",
            "selection": f"indices 0-{FIRST - 1} and every pair whose note starts with 'edge:'",
            "count": len(selected),
        },
        "tokenization": "as tests/golden/meta.json (AutoTokenizer fast, tok([query], [document], "
                        "truncation='longest_first', max_length=L, padding=False), cross-checked against "
                        "tokenizers.Tokenizer.from_file with no_padding() + enable_truncation(L, longest_first)), "
                        "with L = min(512, max_position_embeddings)",
        "logit": "AutoModelForSequenceClassification eval(), float64, one pair per forward, attention_mask all "
                 "ones; logit_fp32 is the same model in float32",
        "threads": args.threads,
        "shapes": shapes_meta,
    }
    with open(meta_path, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"make_shape_goldens: wrote {', '.join(shapes_meta)} into {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
