#!/usr/bin/env python3
"""Export a BERT or RoBERTa / XLM-RoBERTa cross-encoder checkpoint to ONNX, optimised for ONNX Runtime
(a baseline for xenc).

    python scripts/export_onnx.py --model DIR [--out FILE.onnx] [--fp16]

1. torch.onnx export of AutoModelForSequenceClassification (fp32, eager attention), output logits, inputs
   (int64, dynamic batch and sequence axes) by the config's model_type:
     bert                  input_ids / attention_mask / token_type_ids;
     roberta, xlm-roberta  input_ids / attention_mask: transformers' *RobertaForSequenceClassification
                           takes no token types here (every one is 0) and numbers positions inside the
                           model from input_ids (pad_token_id + 1 onwards, padding keeps pad_token_id),
                           so a padded batch must be padded with the checkpoint's pad_token_id;
2. ONNX Runtime's transformer optimizer (onnxruntime.transformers.optimizer.optimize_model) with
   model_type "bert" for every family (its MODEL_TYPES has no RoBERTa entry; "bert" is the optimizer
   for BERT-like encoders): fuses embedding+layernorm, attention, layernorm, gelu (+bias),
   skip-layernorm (+bias). For RoBERTa / XLM-R every fusion but the embedding one applies: ORT's
   EmbedLayerNormalization numbers positions from 0, so its optimizer leaves RoBERTa's position ids
   (from pad_token_id + 1) unfused, as Gather + Add + LayerNormalization (onnxruntime 1.31.1:
   Attention, BiasGelu and SkipLayerNormalization per layer, one LayerNormalization);
3. with --fp16, conversion to float16 weights/activations (inputs and logits stay int64 / float32), meant
   for the CUDA execution provider;
4. verification: logits of the optimised model on ~20 pairs (one padded batch) against transformers fp32
   (each pair alone, unpadded; the batch padded by the tokenizer, i.e. with its pad token); the max abs
   diff is printed and must be < 1e-4 (fp32) or < 2e-2 (fp16).

The result is cached under $XENC_CACHE/onnx/ (XENC_CACHE defaults to $HOME/.cache/xenc), keyed by a hash of
model.safetensors, config.json, this script's export settings and the torch / transformers / onnx /
onnxruntime versions; --out gets a copy. Needs the venv of scripts/bench-venv.sh.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# Bump when anything that changes the exported or optimised graph changes.
EXPORT_VERSION = 1
OPSET = 17
FP32_TOL = 1e-4
FP16_TOL = 2e-2
REPO = Path(__file__).resolve().parent.parent
DEFAULT_VERIFY_PAIRS = REPO / "tests" / "golden" / "pairs.jsonl"
# model_type -> the graph's inputs, in this order.
INPUT_NAMES = {
    "bert": ["input_ids", "attention_mask", "token_type_ids"],
    "roberta": ["input_ids", "attention_mask"],
    "xlm-roberta": ["input_ids", "attention_mask"],
}
# model_type -> onnxruntime.transformers.optimizer's model_type.
ORT_MODEL_TYPE = {"bert": "bert", "roberta": "bert", "xlm-roberta": "bert"}


def input_names(cfg: dict) -> list[str]:
    mt = cfg.get("model_type", "bert")
    if mt not in INPUT_NAMES:
        raise SystemExit(f"export_onnx: model_type {mt!r} is not supported (expected {', '.join(INPUT_NAMES)})")
    return INPUT_NAMES[mt]


def quiet_hf() -> None:
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except Exception:
        pass


def log(msg: str) -> None:
    print(f"export_onnx: {msg}", file=sys.stderr, flush=True)


def cache_root() -> Path:
    return Path(os.environ.get("XENC_CACHE", Path.home() / ".cache" / "xenc")) / "onnx"


def versions() -> dict[str, str]:
    from importlib import metadata

    out = {}
    for name in ("torch", "transformers", "onnx", "onnxruntime", "onnxruntime-gpu"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def cache_key(model_dir: Path, fp16: bool) -> str:
    h = hashlib.sha256()
    for name in ("model.safetensors", "config.json"):
        h.update(name.encode())
        h.update(sha256_file(model_dir / name).encode())
    settings = {"export_version": EXPORT_VERSION, "opset": OPSET, "fp16": fp16, "versions": versions()}
    if fp16:  # the optimizer runs for the GPU when the CUDA execution provider is there
        settings["cuda_ep"] = cuda_ep_available()
    h.update(json.dumps(settings, sort_keys=True).encode())
    return h.hexdigest()[:20]


def cuda_ep_available() -> bool:
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def load_pairs(path: Path | None, n: int) -> list[tuple[str, str]]:
    """n pairs spread evenly over the file (so short, long and truncated pairs are all in)."""
    if path is not None and path.is_file():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        pairs = [(r["query"], r["document"]) for r in rows]
    else:
        pairs = []
    if not pairs:
        base = "the quick brown fox jumps over the lazy dog while the cat sleeps in the warm sun "
        pairs = [(f"what does the fox do {i}", base * (1 + 3 * i)) for i in range(n)]
    if len(pairs) <= n:
        return pairs
    longest = max(range(len(pairs)), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    step = len(pairs) / (n - 1)
    picked = sorted({int(i * step) for i in range(n - 1)} | {longest})
    return [pairs[i] for i in picked]


def torch_export(model_dir: Path, path: Path, cfg: dict) -> str:
    """Exports fp32 logits(input_ids, attention_mask[, token_type_ids]); returns the exporter used."""
    import torch
    from transformers import AutoModelForSequenceClassification

    names = input_names(cfg)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, dtype=torch.float32, attn_implementation="eager"
    ).eval()

    class Logits(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.m(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).logits

    class LogitsNoTypes(torch.nn.Module):  # RoBERTa / XLM-R: no token types, as transformers runs them
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, input_ids, attention_mask):
            return self.m(input_ids=input_ids, attention_mask=attention_mask).logits

    wrapped = (Logits if "token_type_ids" in names else LogitsNoTypes)(model).eval()
    b, s = 2, 16
    # Ids from 1000 up (2000 in BERT's 30,522), clear of the special and pad ids below 1000.
    hi = min(2000, int(cfg.get("vocab_size", 30522)))
    args = (
        torch.randint(min(1000, hi // 2), hi, (b, s), dtype=torch.int64),
        torch.ones((b, s), dtype=torch.int64),
        torch.zeros((b, s), dtype=torch.int64),
    )[:len(names)]
    with torch.no_grad():
        try:
            # The TorchScript exporter (no longer the default since torch 2.9) gives the graph shapes
            # ONNX Runtime's BERT fusions were written for.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapped, args, str(path), dynamo=False, input_names=names, output_names=["logits"],
                    opset_version=OPSET,
                    dynamic_axes={n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}},
                )
            return "torchscript"
        except Exception as e:  # a torch without the legacy exporter: the torch.export-based one
            log(f"TorchScript exporter failed ({type(e).__name__}: {e}); using the dynamo exporter")
            batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=4096)
            torch.onnx.export(
                wrapped, args, str(path), dynamo=True, external_data=False, input_names=names,
                output_names=["logits"], opset_version=max(OPSET, 18),
                dynamic_shapes={n: {0: batch, 1: seq} for n in names},
            )
            return "dynamo"


def optimise(raw: Path, out: Path, cfg: dict, fp16: bool) -> dict[str, int]:
    from onnxruntime.transformers.optimizer import optimize_model

    opt = optimize_model(
        str(raw), model_type=ORT_MODEL_TYPE[cfg.get("model_type", "bert")], num_heads=cfg["num_attention_heads"],
        hidden_size=cfg["hidden_size"], use_gpu=fp16 and cuda_ep_available(),
    )
    stats = {k: v for k, v in opt.get_fused_operator_statistics().items() if v}
    if fp16:
        opt.convert_float_to_float16(keep_io_types=True)
    opt.save_model_to_file(str(out))
    return stats


def ort_session(path: Path, device: str, threads: int | None = None):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    if threads:
        so.intra_op_num_threads = threads
    so.log_severity_level = 3
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), so, providers=providers)


def verify(model_dir: Path, onnx_path: Path, fp16: bool, pairs_path: Path | None, n: int) -> dict:
    import numpy as np
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    pairs = load_pairs(pairs_path, n)
    tok = AutoTokenizer.from_pretrained(model_dir)
    ref_model = AutoModelForSequenceClassification.from_pretrained(model_dir, dtype=torch.float32).eval()
    ref = []
    with torch.no_grad():
        for q, d in pairs:
            enc = tok([q], [d], truncation="longest_first", max_length=512, return_tensors="pt")
            ref.append(ref_model(**enc).logits[0].double().numpy())
    ref = np.stack(ref)

    device = "cuda" if fp16 and cuda_ep_available() else "cpu"
    if fp16 and device == "cpu":
        return {"skipped": "fp16 model and no CUDAExecutionProvider in this onnxruntime", "pairs": len(pairs)}
    sess = ort_session(onnx_path, device)
    enc = tok([q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first", max_length=512,
              padding=True, return_tensors="np")
    # The graph's own inputs (RoBERTa / XLM-R: no token_type_ids); the tokenizer pads with its pad id.
    feeds = {k: enc[k].astype(np.int64) for k in (i.name for i in sess.get_inputs())}
    got = sess.run(["logits"], feeds)[0].astype(np.float64)
    diff = float(np.abs(got - ref).max())
    tol = FP16_TOL if fp16 else FP32_TOL
    lens = enc["attention_mask"].sum(axis=1)
    return {
        "pairs": len(pairs), "inputs": list(feeds), "pad_token_id": tok.pad_token_id,
        "padded_shape": list(enc["input_ids"].shape),
        "lengths": [int(lens.min()), int(lens.max())], "device": device,
        "providers": sess.get_providers(), "max_abs_diff": diff, "tolerance": tol, "ok": diff < tol,
    }


def ensure_onnx(model_dir: Path, fp16: bool = False, verify_pairs: Path | None = DEFAULT_VERIFY_PAIRS,
                n_verify: int = 20, force: bool = False, reverify: bool = False) -> tuple[Path, dict]:
    """Returns (path of the cached optimised model, info); builds and verifies it if not cached."""
    model_dir = Path(model_dir)
    cfg = json.loads((model_dir / "config.json").read_text())
    key = cache_key(model_dir, fp16)
    entry = cache_root() / f"{'fp16' if fp16 else 'fp32'}-{key}"
    onnx_path, info_path = entry / "model.onnx", entry / "info.json"
    if not force and onnx_path.is_file() and info_path.is_file():
        info = json.loads(info_path.read_text())
        info["cached"] = True
        if reverify:
            info["verification"] = verify(model_dir, onnx_path, fp16, verify_pairs, n_verify)
        return onnx_path, info

    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{entry.name}.", dir=entry.parent))
    try:
        t0 = time.perf_counter()
        exporter = torch_export(model_dir, tmp / "raw.onnx", cfg)
        t1 = time.perf_counter()
        fusions = optimise(tmp / "raw.onnx", tmp / "model.onnx", cfg, fp16)
        t2 = time.perf_counter()
        for f in tmp.iterdir():
            if f.name != "model.onnx":
                f.unlink()
        info = {
            "model": str(model_dir), "model_safetensors_sha256": sha256_file(model_dir / "model.safetensors"),
            "fp16": fp16, "opset": OPSET, "exporter": exporter, "export_version": EXPORT_VERSION,
            "versions": versions(), "fusions": fusions,
            "seconds": {"export": round(t1 - t0, 2), "optimise": round(t2 - t1, 2)},
        }
        info["verification"] = verify(model_dir, tmp / "model.onnx", fp16, verify_pairs, n_verify)
        if info["verification"].get("ok") is False:
            raise SystemExit(
                f"export_onnx: verification FAILED: max abs diff {info['verification']['max_abs_diff']:.3g} "
                f">= {info['verification']['tolerance']:g} (model left uncached)"
            )
        (tmp / "info.json").write_text(json.dumps(info, indent=2) + "\n")
        tmp.chmod(0o755)
        if entry.exists():
            shutil.rmtree(entry)
        tmp.rename(entry)
        tmp = None
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    info["cached"] = False
    return onnx_path, info


def describe(info: dict) -> str:
    fus = ", ".join(f"{k}×{v}" for k, v in sorted(info["fusions"].items())) or "none"
    v = info.get("verification", {})
    if "max_abs_diff" in v:
        ver = (f"max abs diff vs transformers fp32 = {v['max_abs_diff']:.3g} on {v['pairs']} pairs "
               f"(padded batch {v['padded_shape'][0]}x{v['padded_shape'][1]}, lengths {v['lengths'][0]}-"
               f"{v['lengths'][1]}, {v['device']}; tolerance {v['tolerance']:g}: {'ok' if v['ok'] else 'FAILED'})")
    else:
        ver = f"verification skipped: {v.get('skipped', 'not run')}"
    return (f"{'fp16' if info['fp16'] else 'fp32'}, {info['exporter']} exporter, opset {info['opset']}"
            f"{' (cached)' if info.get('cached') else ''}\n  fusions: {fus}\n  {ver}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path, help="checkpoint dir (config.json, model.safetensors)")
    ap.add_argument("--out", type=Path, help="copy the optimised model here (default: only the cache)")
    ap.add_argument("--fp16", action="store_true", help="convert to float16 (for the CUDA execution provider)")
    ap.add_argument("--verify-pairs", type=Path, default=DEFAULT_VERIFY_PAIRS,
                    help="JSON Lines {query, document} to verify on (default tests/golden/pairs.jsonl)")
    ap.add_argument("--n-verify", type=int, default=20, help="pairs to verify on (default 20)")
    ap.add_argument("--force", action="store_true", help="rebuild even if cached")
    ap.add_argument("--reverify", action="store_true", help="verify again a cached model")
    ap.add_argument("--json", action="store_true", help="print the info as one JSON object on stdout")
    a = ap.parse_args()
    quiet_hf()

    path, info = ensure_onnx(a.model, a.fp16, a.verify_pairs, a.n_verify, a.force, a.reverify)
    if a.out is not None:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, a.out)
        path = a.out
    info["path"] = str(path)
    if a.json:
        print(json.dumps(info))
    else:
        print(f"{path}\n  {describe(info)}")
    v = info.get("verification", {})
    return 1 if v.get("ok") is False else 0


if __name__ == "__main__":
    sys.exit(main())
