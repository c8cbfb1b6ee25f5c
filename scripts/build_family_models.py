#!/usr/bin/env python3
"""Build synthetic RoBERTa / XLM-RoBERTa cross-encoder checkpoints (the bge-reranker family's shapes).

    python3 scripts/build_family_models.py OUTROOT [--only NAME]

For each shape below, OUTROOT/NAME/ receives an `XLMRobertaForSequenceClassification` (or
`RobertaForSequenceClassification`) checkpoint with one label: model.safetensors (f32, encoder tensors
under `roberta.`, head `classifier.dense` + `classifier.out_proj`, no pooler), config.json, and the
committed XLM-R-style Unigram tokenizer (tests/fixtures/xlmr-tokenizer/, trained by
scripts/build_xlmr_tokenizer.py). Weights are made exactly as scripts/build_shape_models.py makes
them (deterministic, numpy only, no random generator); goldens come from
scripts/make_family_goldens.py into tests/golden/families/.

Shapes (vocab 4000, type_vocab 1, pad_token_id 1, so positions start at 2):

  xlmr-l2-h384-hd64      xlm-roberta, 2 layers, hidden 384, 6 heads (head_dim 64), intermediate
                         1536, 514 positions (bge-reranker-base/large's numbering: 512 usable)
  xlmr-l2-h128-pos8194   xlm-roberta, 2 layers, hidden 128, 2 heads (head_dim 64), intermediate 512,
                         8194 positions (bge-reranker-v2-m3's: 8192 usable), for long inputs
  roberta-l2-h128-hd32   roberta, 2 layers, hidden 128, 4 heads (head_dim 32), intermediate 512,
                         514 positions, sbert_ce_default_activation_function Identity
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from build_shape_models import (SCALES, install_checkpoint, layer_spec, np, sha256_bytes,  # noqa: E402
                                tensor)

GENERATOR_VERSION = 1
TOKENIZER_DIR = os.path.join(HERE, "..", "tests", "fixtures", "xlmr-tokenizer")
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"]
VOCAB_SIZE = 4000
PAD = 1

SHAPES = {
    "xlmr-l2-h384-hd64": dict(model_type="xlm-roberta", num_hidden_layers=2, hidden_size=384,
                              num_attention_heads=6, intermediate_size=1536, max_position_embeddings=514),
    "xlmr-l2-h128-pos8194": dict(model_type="xlm-roberta", num_hidden_layers=2, hidden_size=128,
                                 num_attention_heads=2, intermediate_size=512, max_position_embeddings=8194),
    "roberta-l2-h128-hd32": dict(model_type="roberta", num_hidden_layers=2, hidden_size=128,
                                 num_attention_heads=4, intermediate_size=512, max_position_embeddings=514,
                                 sbert_ce_default_activation_function="torch.nn.modules.linear.Identity"),
}
# tokenizer_config.json's model_max_length where it is not the fixture's 512 (v2-m3 ships 8192).
MODEL_MAX_LENGTH = {"xlmr-l2-h128-pos8194": 8192}
ARCHITECTURE = {"xlm-roberta": "XLMRobertaForSequenceClassification",
                "roberta": "RobertaForSequenceClassification"}


def config_for(name):
    shape = SHAPES[name]
    cfg = {
        "architectures": [ARCHITECTURE[shape["model_type"]]],
        "attention_probs_dropout_prob": 0.1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "id2label": {"0": "LABEL_0"},
        "initializer_range": 0.02,
        "label2id": {"LABEL_0": 0},
        "layer_norm_eps": 1e-5,
        "pad_token_id": PAD,
        "position_embedding_type": "absolute",
        "type_vocab_size": 1,
        "vocab_size": VOCAB_SIZE,
    }
    cfg.update(shape)
    assert cfg["hidden_size"] % cfg["num_attention_heads"] == 0, name
    return cfg


def build_tensors(name, cfg):
    H, I, P = cfg["hidden_size"], cfg["intermediate_size"], cfg["max_position_embeddings"]
    S = SCALES

    def g(kind, fan_in):
        return S[kind + "_gain"] / fan_in ** 0.5

    e = "roberta.embeddings."
    spec = [  # (name, shape, std, mean)
        (e + "word_embeddings.weight", (VOCAB_SIZE, H), S["word_embeddings"], 0.0),
        (e + "position_embeddings.weight", (P, H), S["position_embeddings"], 0.0),
        (e + "token_type_embeddings.weight", (1, H), S["token_type_embeddings"], 0.0),
        (e + "LayerNorm.weight", (H,), S["ln_weight"], 1.0),
        (e + "LayerNorm.bias", (H,), S["ln_bias"], 0.0),
    ]
    for n in range(cfg["num_hidden_layers"]):
        spec += layer_spec(f"roberta.encoder.layer.{n}.", H, I)
    spec += [
        ("classifier.dense.weight", (H, H), g("pooler", H), 0.0),
        ("classifier.dense.bias", (H,), S["dense_bias"], 0.0),
        ("classifier.out_proj.weight", (1, H), g("classifier", H), 0.0),
        ("classifier.out_proj.bias", (1,), S["classifier_bias"], 0.0),
    ]
    return [(t, "F32", shape, np.ascontiguousarray(tensor(name, t, shape, std, mean), dtype="<f4").tobytes())
            for t, shape, std, mean in spec]


def stamp_for(name, cfg):
    h = []
    for f in TOKENIZER_FILES:
        with open(os.path.join(TOKENIZER_DIR, f), "rb") as fh:
            h.append(sha256_bytes(fh.read()))
    spec = json.dumps({"config": cfg, "scales": SCALES, "tokenizer": h,
                       "model_max_length": MODEL_MAX_LENGTH.get(name)}, sort_keys=True, separators=(",", ":"))
    return f"xenc-family-model generator={GENERATOR_VERSION} name={name} spec_sha256={sha256_bytes(spec.encode())}"


def build_one(name, out_root):
    cfg = config_for(name)

    def edit(tmp):
        if name in MODEL_MAX_LENGTH:
            tc_path = os.path.join(tmp, "tokenizer_config.json")
            with open(tc_path, encoding="utf-8") as f:
                tc = json.load(f)
            tc["model_max_length"] = MODEL_MAX_LENGTH[name]
            with open(tc_path, "w", encoding="utf-8") as f:
                json.dump(tc, f, indent=2)
                f.write("\n")

    tensors = install_checkpoint(out_root, name, stamp_for(name, cfg), cfg, lambda: build_tensors(name, cfg),
                                 TOKENIZER_DIR, TOKENIZER_FILES, "build_family_models", edit)
    if tensors is not None:
        print(f"build_family_models: built {os.path.join(out_root, name)}: {len(tensors)} tensors")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outroot", help="parent folder; each shape goes to OUTROOT/NAME")
    ap.add_argument("--only", choices=sorted(SHAPES), action="append", help="build only this shape (repeatable)")
    args = ap.parse_args()
    for name in args.only or list(SHAPES):
        build_one(name, args.outroot.rstrip("/") or "/")


if __name__ == "__main__":
    main()
