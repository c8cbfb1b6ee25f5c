#!/usr/bin/env python3
"""Goldens for the RoBERTa / XLM-RoBERTa checkpoints of scripts/build_family_models.py.

    python scripts/make_family_goldens.py --models ROOT --pairs tests/golden/pairs.jsonl \
        --out tests/golden/families/

Needs the golden venv (torch, transformers, sentence-transformers, tokenizers, numpy; see
scripts/golden-venv.sh). ROOT holds one folder per shape (default $XENC_CACHE/test-model/families).

Per shape, NAME.jsonl holds one line per pair: pairs 0-59 of pairs.jsonl and every pair whose note
starts with "edge:" (`index` into pairs.jsonl), and for the 8,194-position shape also long pairs
(`query` and `document` given in the line: documents of pairs.jsonl joined until the pair holds
~4,100, ~6,000 and over 8,192 tokens, the last one truncated). Each line: input_ids (transformers'
fast tokenizer, AutoTokenizer, tok([q], [d], truncation='longest_first', max_length=L, padding=False)
with L the tokenizer's model_max_length, cross-checked against tokenizers.Tokenizer.from_file), logit
(AutoModelForSequenceClassification, eval, float64, one pair per forward, no token_type_ids, as
sentence-transformers calls it), logit_fp32 (the same in float32).

fuzz.json: token-id parity on 20,000 generated pairs per tokenizer (the generator is spelled out in
fuzz_pairs() below and again in tests/families.rs): an FNV-1a 64 digest of the ids of each block of
1,000 pairs, at max_length 512.

meta.json: versions, sizes, errors, sentence-transformers' default activation per shape.
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
from build_family_models import SHAPES  # noqa: E402

FIRST = 60
LONG_TARGETS = [4100, 6000, 9000]  # tokens before truncation; the last is cut to 8,192
LONG_SHAPE = "xlmr-l2-h128-pos8194"
FUZZ_PAIRS, FUZZ_BLOCK, FUZZ_MAX_LENGTH = 20000, 1000, 512
# Pieces of text the generator mixes into the words: accents (composed and not), CJK, emoji,
# compatibility forms NFKC rewrites, zero-width and control characters, punctuation.
TRICKY = ["é", "e\u0301", "日本語", "😀", "ß", "İ", "\t", "  ", "-", "'", "ﬁ", "Ⅻ", "①", "\u200b",
          "Ǆ", "ﾟ", "Ω", "½", "…", "\u00a0", "«", "»", "x²", "ＡＢＣ", "<s>", "</s>", "<unk>"]
M64 = (1 << 64) - 1


class SplitMix64:
    def __init__(self, seed):
        self.s = seed & M64

    def next(self):
        self.s = (self.s + 0x9E3779B97F4A7C15) & M64
        z = self.s
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
        return z ^ (z >> 31)


def words_of(pairs):
    """Every whitespace-separated word of pairs.jsonl's queries and documents, first appearance order."""
    seen, out = set(), []
    for p in pairs:
        for text in (p["query"], p["document"]):
            for w in text.split():
                if w not in seen:
                    seen.add(w)
                    out.append(w)
    return out


def fuzz_pairs(words, n, seed=20261202):
    rng = SplitMix64(seed)

    def text(count):
        parts = []
        for _ in range(count):
            if rng.next() % 5 == 0:
                parts.append(TRICKY[rng.next() % len(TRICKY)])
            else:
                parts.append(words[rng.next() % len(words)])
        sep = "" if rng.next() % 7 == 0 else " "
        return sep.join(parts)

    for _ in range(n):
        q = text(1 + rng.next() % 12)
        d = text(rng.next() % 200)
        yield q, d


def fnv1a(ids_list):
    h = 0xCBF29CE484222325
    for ids in ids_list:
        for x in list(ids) + [0xFFFFFFFF]:
            for b in int(x).to_bytes(4, "little"):
                h = ((h ^ b) * 0x100000001B3) & M64
    return f"{h:016x}"


def main():
    cache = os.environ.get("XENC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xenc")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=os.path.join(cache, "test-model", "families"))
    ap.add_argument("--pairs", default="tests/golden/pairs.jsonl")
    ap.add_argument("--out", default="tests/golden/families/")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()

    import numpy as np
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    torch.set_num_threads(args.threads)
    pairs = load_pairs(args.pairs)
    selected = golden_selection(pairs, FIRST)
    os.makedirs(args.out, exist_ok=True)
    shapes_meta = {}
    fuzz_meta = None
    for name in SHAPES:
        model_dir = os.path.join(args.models, name)
        with open(os.path.join(model_dir, "config.json"), encoding="utf-8") as f:
            cfg = json.load(f)
        tok = AutoTokenizer.from_pretrained(model_dir)
        assert tok.is_fast, name
        max_len = tok.model_max_length
        usable = cfg["max_position_embeddings"] - cfg["pad_token_id"] - 1
        assert max_len <= usable, (name, max_len, usable)
        raw = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
        raw.no_padding()
        raw.enable_truncation(max_length=max_len, strategy="longest_first")

        items = [(i, pairs[i]["query"], pairs[i]["document"], False) for i in selected]
        if name == LONG_SHAPE:
            docs = [p["document"] for p in pairs]
            full = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
            full.no_padding()
            full.no_truncation()
            for target in LONG_TARGETS:
                parts, k = [], 0
                while len(full.encode(pairs[0]["query"], " ".join(parts)).ids) < target:
                    parts.append(docs[k % len(docs)])
                    k += 1
                items.append((None, pairs[0]["query"], " ".join(parts), True))

        encs = []
        for i, q, d, _ in items:
            e = tok([q], [d], truncation="longest_first", max_length=max_len, padding=False)
            ids = list(e["input_ids"][0])
            assert "token_type_ids" not in e or set(e["token_type_ids"][0]) == {0}, (name, i)
            assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id, (name, i)
            assert raw.encode(q, d).ids == ids, f"{name} pair {i}: raw tokenizers disagrees"
            encs.append(ids)
        lens = [len(ids) for ids in encs]

        model32, model64 = load_classifier(model_dir, name)

        def run(model, ids):
            with torch.inference_mode():
                x = torch.tensor([ids], dtype=torch.long)
                return float(model(input_ids=x, attention_mask=torch.ones_like(x)).logits[0, 0].double())

        logit64 = [run(model64, ids) for ids in encs]
        logit32 = [run(model32, ids) for ids in encs]
        del model64
        errs = [abs(a - b) for a, b in zip(logit32, logit64)]
        std = float(np.std(np.array(logit64)))
        print(f"{name}: max_length {max_len}, {len(encs)} pairs up to {max(lens)} tokens, logits "
              f"{min(logit64):.4f}..{max(logit64):.4f} std {std:.4f}, fp32 err {max(errs):.3e}", file=sys.stderr)
        assert std > 0.05, f"{name}: logits barely vary across pairs (std {std})"

        ce = CrossEncoder(model_dir, device="cpu")
        act = type(ce.activation_fn).__name__
        short = [(q, d) for i, q, d, long in items if not long]
        st = [float(x) for x in ce.predict(short, batch_size=16, show_progress_bar=False)]
        expect = [l if act == "Identity" else 1.0 / (1.0 + math.exp(-l)) for l in logit32[:len(short)]]
        st_diff = max(abs(a - b) for a, b in zip(st, expect))
        assert st_diff < 1e-4, f"{name}: sentence-transformers disagrees with transformers fp32 ({st_diff})"
        del ce, model32

        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for (i, q, d, long), ids, l64, l32 in zip(items, encs, logit64, logit32):
                line = {"index": i} if not long else {"query": q, "document": d}
                line.update({"input_ids": ids, "logit": l64, "logit_fp32": l32})
                f.write(json.dumps(line, ensure_ascii=False) + "\n")
        shapes_meta[name] = {
            "config": {k: cfg[k] for k in ("model_type", "num_hidden_layers", "hidden_size", "num_attention_heads",
                                           "intermediate_size", "max_position_embeddings", "pad_token_id",
                                           "type_vocab_size", "vocab_size", "layer_norm_eps")},
            "head_dim": cfg["hidden_size"] // cfg["num_attention_heads"],
            "max_length": max_len,
            "st_default_activation": act,
            "st_predict_vs_fp32_max_abs_diff": st_diff,
            "model_safetensors_sha256": sha256_file(os.path.join(model_dir, "model.safetensors")),
            "num_pairs": len(encs),
            "max_tokens_seen": max(lens),
            "fp32_max_abs_err": max(errs),
            "logit_range": [min(logit64), max(logit64)],
            "logit_std": std,
        }

        if fuzz_meta is None:  # one tokenizer for every shape: the fuzz digests once
            raw.enable_truncation(max_length=FUZZ_MAX_LENGTH, strategy="longest_first")
            gen = list(fuzz_pairs(words_of(pairs), FUZZ_PAIRS))
            blocks = []
            for b in range(0, FUZZ_PAIRS, FUZZ_BLOCK):
                chunk = gen[b:b + FUZZ_BLOCK]
                enc = tok([q for q, _ in chunk], [d for _, d in chunk], truncation="longest_first",
                          max_length=FUZZ_MAX_LENGTH, padding=False)["input_ids"]
                for (q, d), ids in zip(chunk[:50], enc[:50]):
                    assert raw.encode(q, d).ids == list(ids), "raw tokenizers disagrees on a fuzz pair"
                blocks.append(fnv1a(enc))
            fuzz_meta = {"tokenizer": "tests/fixtures/xlmr-tokenizer", "pairs": FUZZ_PAIRS, "block": FUZZ_BLOCK,
                         "max_length": FUZZ_MAX_LENGTH, "seed": 20261202, "digests": blocks}

    with open(os.path.join(args.out, "fuzz.json"), "w", encoding="utf-8") as f:
        json.dump(fuzz_meta, f, indent=1)
        f.write("\n")
    meta = {
        "generator": "scripts/make_family_goldens.py (checkpoints from scripts/build_family_models.py)",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "transformers": transformers.__version__,
                     "sentence-transformers": sentence_transformers.__version__,
                     "tokenizers": tokenizers.__version__, "numpy": np.__version__},
        "pairs": {"source": "tests/golden/pairs.jsonl",
                  "selection": f"indices 0-{FIRST - 1} and every pair whose note starts with 'edge:'; "
                               f"{LONG_SHAPE} also long pairs of ~{LONG_TARGETS} tokens"},
        "threads": args.threads,
        "shapes": shapes_meta,
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")


if __name__ == "__main__":
    main()
