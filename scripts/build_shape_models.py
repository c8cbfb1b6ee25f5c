#!/usr/bin/env python3
"""Build synthetic BERT cross-encoder checkpoints of other shapes than the test model.

    python3 scripts/build_shape_models.py OUTROOT [--only NAME] [--tokenizer-from DIR]

For each shape below, OUTROOT/NAME/ receives a `BertForSequenceClassification`
checkpoint with one label: model.safetensors (f32, encoder tensors named
`bert.<name>`, plus `classifier.weight` [1, H] and `classifier.bias` [1]),
config.json, and the tokenizer files of an existing test checkpoint
(--tokenizer-from, default $XENC_CACHE/test-model/f32, XENC_CACHE defaulting to
$HOME/.cache/xenc; build it with scripts/fetch-test-model.sh).  The goldens in
tests/golden/shapes/ are made from these checkpoints by
scripts/make_shape_goldens.py; meta.json there records each model.safetensors
sha256, so a stale build is easy to tell.

Shapes (vocab 30522, type_vocab 2, hidden_act gelu, absolute positions):

  l2-h128-hd64    2 layers, hidden 128, 2 heads (head_dim 64), intermediate 512,
                  max_position_embeddings 512
  tinybert-h312   4 layers, hidden 312, 12 heads (head_dim 26), intermediate 1200,
                  max_position_embeddings 512
  l1-h64-pos128   1 layer, hidden 64, 4 heads (head_dim 16), intermediate 256,
                  max_position_embeddings 128, layer_norm_eps 1e-7, and
                  sbert_ce_default_activation_function = Identity (raw logits)

and a head with several labels (LABEL_SHAPES; goldens by scripts/make_label_goldens.py into
tests/golden/labels/):

  l2-h128-3labels l2-h128-hd64's encoder with a 3-label head (classifier.weight [3, H]),
                  id2label contradiction / entailment / neutral, as NLI cross-encoders

Weights are deterministic and exactly reproducible: no random generator and
no transcendental function (numpy's SIMD sin/exp may differ by an ulp between
CPUs and versions).  Each tensor gets a seed from sha256("<shape>/<tensor>");
element i takes splitmix64(seed, i), whose four 16-bit chunks are summed
(Irwin-Hall, roughly normal), centred, and scaled to the tensor's standard
deviation with one IEEE multiply in float64, then rounded to float32.
LayerNorm weights are 1 + that, biases small; see SCALES for every std.

Each NAME directory carries a stamp, .xenc-shape-model; when it matches
(generator version, shape spec and tokenizer files) the shape is skipped.
A shape is built in a temporary sibling directory and renamed into place, and
a non-empty directory without the stamp is never overwritten.  Needs only numpy.
"""

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from build_test_model import np, write_safetensors  # noqa: E402  (exits with a hint if numpy is missing)

GENERATOR_VERSION = 1
STAMP_FILE = ".xenc-shape-model"
TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"]
VOCAB_SIZE = 30522

# name -> config fields that differ between shapes
SHAPES = {
    "l2-h128-hd64": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                         intermediate_size=512, max_position_embeddings=512),
    "tinybert-h312": dict(num_hidden_layers=4, hidden_size=312, num_attention_heads=12,
                          intermediate_size=1200, max_position_embeddings=512),
    "l1-h64-pos128": dict(num_hidden_layers=1, hidden_size=64, num_attention_heads=4,
                          intermediate_size=256, max_position_embeddings=128, layer_norm_eps=1e-7,
                          sbert_ce_default_activation_function="torch.nn.modules.linear.Identity"),
}

# Heads with several labels: name -> config fields, as SHAPES.
NLI_LABELS = ["contradiction", "entailment", "neutral"]
LABEL_SHAPES = {
    "l2-h128-3labels": dict(num_hidden_layers=2, hidden_size=128, num_attention_heads=2,
                            intermediate_size=512, max_position_embeddings=512,
                            id2label={str(i): n for i, n in enumerate(NLI_LABELS)},
                            label2id={n: i for i, n in enumerate(NLI_LABELS)}),
}

# Embeddings: standard deviation.  "ln_weight": spread around 1.  Biases: standard deviation.
# Matrices ("gain"): standard deviation gain / sqrt(fan_in), so that every shape sees activations of
# about the same size (a fixed std would make attention nearly uniform in narrow models).
SCALES = {
    "word_embeddings": 0.05,
    "position_embeddings": 0.03,
    "token_type_embeddings": 0.03,
    "ln_weight": 0.1,
    "ln_bias": 0.02,
    "dense_bias": 0.02,
    "query_gain": 1.6,
    "key_gain": 1.6,
    "value_gain": 1.0,
    "attn_out_gain": 1.0,
    "intermediate_gain": 1.0,
    "ffn_out_gain": 1.0,
    "pooler_gain": 1.0,
    "classifier_gain": 2.0,
    "classifier_bias": 0.1,
}


def config_for(name):
    cfg = {
        "architectures": ["BertForSequenceClassification"],
        "attention_probs_dropout_prob": 0.1,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "id2label": {"0": "LABEL_0"},
        "initializer_range": 0.02,
        "label2id": {"LABEL_0": 0},
        "layer_norm_eps": 1e-12,
        "model_type": "bert",
        "pad_token_id": 0,
        "position_embedding_type": "absolute",
        "type_vocab_size": 2,
        "vocab_size": VOCAB_SIZE,
    }
    cfg.update(SHAPES[name] if name in SHAPES else LABEL_SHAPES[name])
    assert cfg["hidden_size"] % cfg["num_attention_heads"] == 0, name
    return cfg


M64 = (1 << 64) - 1


def splitmix64(seed, n):
    """splitmix64 outputs for counters seed + (i+1)*golden, i = 0..n-1 (uint64, wrapping)."""
    with np.errstate(over="ignore"):
        z = np.arange(1, n + 1, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(seed)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z


def tensor(shape_name, tensor_name, shape, std, mean=0.0):
    """Deterministic, roughly normal f32 tensor with the given mean and std."""
    seed = int.from_bytes(hashlib.sha256(f"{shape_name}/{tensor_name}".encode()).digest()[:8], "little")
    n = int(np.prod(shape))
    z = splitmix64(seed, n)
    m = np.uint64(0xFFFF)
    s = ((z & m) + ((z >> np.uint64(16)) & m) + ((z >> np.uint64(32)) & m) + (z >> np.uint64(48))).astype(np.float64)
    # s has mean 2*65535 and variance 4*(65536**2 - 1)/12 ~ 65536**2/3: all steps below are exact
    # except the final multiply and the f32 rounding, both correctly rounded IEEE operations.
    x = (s - 131070.0) * (std * 3.0 ** 0.5 / 65536.0)
    if mean:
        x = x + mean
    return x.astype(np.float32).reshape(shape)


def layer_spec(p, H, I):
    """One encoder layer's tensors under prefix p, as (name, shape, std, mean): shared by every family."""
    S = SCALES

    def g(kind, fan_in):
        return S[kind + "_gain"] / fan_in ** 0.5

    spec = []
    for part in ("query", "key", "value"):
        spec += [(f"{p}attention.self.{part}.weight", (H, H), g(part, H), 0.0),
                 (f"{p}attention.self.{part}.bias", (H,), S["dense_bias"], 0.0)]
    return spec + [
        (f"{p}attention.output.dense.weight", (H, H), g("attn_out", H), 0.0),
        (f"{p}attention.output.dense.bias", (H,), S["dense_bias"], 0.0),
        (f"{p}attention.output.LayerNorm.weight", (H,), S["ln_weight"], 1.0),
        (f"{p}attention.output.LayerNorm.bias", (H,), S["ln_bias"], 0.0),
        (f"{p}intermediate.dense.weight", (I, H), g("intermediate", H), 0.0),
        (f"{p}intermediate.dense.bias", (I,), S["dense_bias"], 0.0),
        (f"{p}output.dense.weight", (H, I), g("ffn_out", I), 0.0),
        (f"{p}output.dense.bias", (H,), S["dense_bias"], 0.0),
        (f"{p}output.LayerNorm.weight", (H,), S["ln_weight"], 1.0),
        (f"{p}output.LayerNorm.bias", (H,), S["ln_bias"], 0.0),
    ]


def build_tensors(name, cfg):
    H, I, P, T = cfg["hidden_size"], cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]
    L = len(cfg["id2label"])
    S = SCALES

    def g(kind, fan_in):
        return S[kind + "_gain"] / fan_in ** 0.5

    spec = [  # (name, shape, std, mean)
        ("bert.embeddings.word_embeddings.weight", (VOCAB_SIZE, H), S["word_embeddings"], 0.0),
        ("bert.embeddings.position_embeddings.weight", (P, H), S["position_embeddings"], 0.0),
        ("bert.embeddings.token_type_embeddings.weight", (T, H), S["token_type_embeddings"], 0.0),
        ("bert.embeddings.LayerNorm.weight", (H,), S["ln_weight"], 1.0),
        ("bert.embeddings.LayerNorm.bias", (H,), S["ln_bias"], 0.0),
    ]
    for n in range(cfg["num_hidden_layers"]):
        spec += layer_spec(f"bert.encoder.layer.{n}.", H, I)
    spec += [
        ("bert.pooler.dense.weight", (H, H), g("pooler", H), 0.0),
        ("bert.pooler.dense.bias", (H,), S["dense_bias"], 0.0),
        ("classifier.weight", (L, H), g("classifier", H), 0.0),
        ("classifier.bias", (L,), S["classifier_bias"], 0.0),
    ]
    out = []
    for tname, shape, std, mean in spec:
        arr = tensor(name, tname, shape, std, mean)
        out.append((tname, "F32", arr.shape, np.ascontiguousarray(arr, dtype="<f4").tobytes()))
    return out


def sha256_bytes(b):
    return hashlib.sha256(b).hexdigest()


def stamp_for(name, cfg, tok_dir):
    spec = json.dumps({"config": cfg, "scales": SCALES}, sort_keys=True, separators=(",", ":"))
    tok = hashlib.sha256()
    for f in TOKENIZER_FILES:
        with open(os.path.join(tok_dir, f), "rb") as fh:
            tok.update(f.encode() + b"\0" + hashlib.sha256(fh.read()).digest())
    return (f"xenc-shape-model generator={GENERATOR_VERSION} name={name} "
            f"spec_sha256={sha256_bytes(spec.encode())} tokenizer_sha256={tok.hexdigest()}")


def install_checkpoint(out_root, name, stamp, cfg, make_tensors, tok_dir, tok_files, tool, edit=None):
    """Builds OUT_ROOT/NAME unless its stamp says it is up to date: model.safetensors from
    make_tensors(), config.json, the tokenizer files copied from tok_dir (then edit(tmp_dir), if
    given) and the stamp, in a temporary sibling renamed into place. A non-empty folder without a
    stamp is never overwritten. Returns the tensors, or None when the folder was up to date."""
    d = os.path.join(out_root, name)
    sp = os.path.join(d, STAMP_FILE)
    if os.path.isfile(sp):
        with open(sp, encoding="utf-8") as f:
            if f.read().strip() == stamp:
                print(f"{tool}: {d} is up to date")
                return None
    if os.path.exists(d):
        if not os.path.isdir(d):
            raise SystemExit(f"error: {d} exists and is not a directory")
        if not os.path.isfile(sp) and os.listdir(d):
            raise SystemExit(f"error: {d} exists, is not empty and has no {STAMP_FILE} stamp; refusing to overwrite it")

    os.makedirs(out_root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{name}.tmp.", dir=out_root)
    old = None
    try:
        tensors = make_tensors()
        write_safetensors(os.path.join(tmp, "model.safetensors"), tensors, {"format": "pt"})
        with open(os.path.join(tmp, "config.json"), "w", encoding="utf-8") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
            f.write("\n")
        for fname in tok_files:
            shutil.copyfile(os.path.join(tok_dir, fname), os.path.join(tmp, fname))
        if edit:
            edit(tmp)
        with open(os.path.join(tmp, STAMP_FILE), "w", encoding="utf-8") as f:
            f.write(stamp + "\n")
        os.chmod(tmp, 0o755)
        if os.path.exists(d):
            old = os.path.join(out_root, f".{name}.old.{os.getpid()}")
            os.rename(d, old)
        os.rename(tmp, d)
        tmp = None
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        if old:
            shutil.rmtree(old, ignore_errors=True)
    return tensors


def build_one(name, out_root, tok_dir):
    cfg = config_for(name)
    tensors = install_checkpoint(out_root, name, stamp_for(name, cfg, tok_dir), cfg,
                                 lambda: build_tensors(name, cfg), tok_dir, TOKENIZER_FILES, "build_shape_models")
    if tensors is None:
        return
    d = os.path.join(out_root, name)
    with open(os.path.join(d, "model.safetensors"), "rb") as f:
        digest = sha256_bytes(f.read())
    n_params = sum(int(np.prod(t[2])) for t in tensors)
    print(f"build_shape_models: built {d}: {len(tensors)} tensors, {n_params} parameters, "
          f"model.safetensors sha256 {digest}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outroot", help="parent folder; each shape goes to OUTROOT/NAME")
    ap.add_argument("--only", choices=sorted(SHAPES) + sorted(LABEL_SHAPES), action="append",
                    help="build only this shape (repeatable)")
    cache = os.environ.get("XENC_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "xenc")
    ap.add_argument("--tokenizer-from", default=os.path.join(cache, "test-model", "f32"),
                    help="checkpoint folder whose tokenizer files are copied (default: %(default)s)")
    args = ap.parse_args()

    tok_dir = args.tokenizer_from
    missing = [f for f in TOKENIZER_FILES if not os.path.isfile(os.path.join(tok_dir, f))]
    if missing:
        raise SystemExit(f"error: {tok_dir} lacks {', '.join(missing)}; build the test checkpoint first "
                         f"(scripts/fetch-test-model.sh {tok_dir} f32) or pass --tokenizer-from DIR")
    with open(os.path.join(tok_dir, "vocab.txt"), encoding="utf-8") as f:
        n_vocab = sum(1 for _ in f)
    if n_vocab != VOCAB_SIZE:
        raise SystemExit(f"error: {tok_dir}/vocab.txt has {n_vocab} entries, expected {VOCAB_SIZE}")

    for name in args.only or list(SHAPES) + list(LABEL_SHAPES):
        build_one(name, args.outroot.rstrip("/") or "/", tok_dir)


if __name__ == "__main__":
    main()
