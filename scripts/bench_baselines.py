#!/usr/bin/env python3
"""Throughput of the baseline engines on the same pairs as `xenc bench`: ONNX Runtime and
sentence-transformers' CrossEncoder.

    python scripts/bench_baselines.py --model DIR --input PAIRS.jsonl [--engines ort,st] [--device cpu|cuda]
        [--threads N] [--batch-size 32] [--warmup-s 2] [--repeats 5] [--json] [--logits FILE]

Both engines get the pairs sorted by token length and cut into batches of --batch-size, padded only
within a batch. Two measures per engine, each the median of --repeats passes over all pairs after at
least --warmup-s seconds of warm-up passes:

  model       tokens (already tokenised, padded and, on CUDA, not yet copied) → logits; tokenisation and
              session / model creation are excluded;
  end_to_end  texts in input order → scores (sigmoid of the one logit, as xenc and CrossEncoder.predict
              give them) in input order, tokenisation included.

onnxruntime: the model from scripts/export_onnx.py (fp32 on CPU; fp16 with the CUDA execution provider
when --device cuda), intra_op_num_threads=N, inter_op_num_threads=1, ORT_ENABLE_ALL, sequential execution;
tokenisation with the HF fast tokenizer (AutoTokenizer; truncation longest_first, max_length 512). It is
fed the graph's own inputs: input_ids, attention_mask and, for BERT, token_type_ids (RoBERTa / XLM-RoBERTa
graphs have none); batches are padded with the tokenizer's pad id (0 for BERT; 1 for XLM-R, whose
position ids transformers computes from input_ids). --logits FILE: the logits of ONNX Runtime's last
end-to-end pass, one JSON number per line in input order (bench-compare.sh compares them with xenc's).
sentence-transformers: CrossEncoder(DIR, max_length=512) in fp32 on CPU (torch.set_num_threads(N)), fp16
on CUDA; model = CrossEncoder.forward on batches from CrossEncoder.preprocess, end_to_end =
CrossEncoder.predict(pairs, batch_size) (which sorts by length itself).

tokens = sum of the unpadded pair lengths after truncation (the same definition as xenc's). Each engine
runs in its own child process, so the thread pools of one do not disturb the other. Output: one JSON
object per measurement (--json) with the keys of `xenc bench --json`, else a short table.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENGINES = {"ort": "onnxruntime", "st": "sentence-transformers"}
MAX_LENGTH = 512


def log(msg: str) -> None:
    print(f"bench_baselines: {msg}", file=sys.stderr, flush=True)


def versions(names) -> dict[str, str]:
    from importlib import metadata

    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            pass
    return out


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "cpu"


def read_pairs(path: Path) -> list[tuple[str, str]]:
    pairs = []
    for i, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        r = json.loads(line)
        if not isinstance(r.get("query"), str) or not isinstance(r.get("document"), str):
            raise SystemExit(f"bench_baselines: {path}:{i}: needs string fields query and document")
        pairs.append((r["query"], r["document"]))
    if not pairs:
        raise SystemExit(f"bench_baselines: {path}: no pairs")
    return pairs


def timed(fn, warmup_s: float, repeats: int) -> tuple[float, list[float]]:
    """Runs fn until warmup_s has passed (at least once), then `repeats` timed runs; (median, all)."""
    t0 = time.perf_counter()
    while True:
        fn()
        if time.perf_counter() - t0 >= warmup_s:
            break
    times = []
    for _ in range(max(1, repeats)):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), times


class Workload:
    """The pairs, their HF fast-tokenizer encodings and the length-sorted batch plan."""

    def __init__(self, model_dir: Path, pairs, batch_size: int):
        from transformers import AutoTokenizer

        self.tok = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
        assert self.tok.is_fast, "the HF fast tokenizer is needed"
        # Padding: the tokenizer's pad id (BERT 0; RoBERTa / XLM-R 1, which their position ids skip).
        self.pad_id = self.tok.pad_token_id if self.tok.pad_token_id is not None else 0
        self.pairs = pairs
        self.batch_size = batch_size
        enc = self.encode(pairs)
        self.lengths = [len(ids) for ids in enc["input_ids"]]
        self.tokens = sum(self.lengths)
        # Sort by token length (stable), cut into batches; padding only within a batch.
        order = sorted(range(len(pairs)), key=lambda i: self.lengths[i])
        self.batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
        self.enc = enc

    def encode(self, pairs):
        return self.tok([q for q, _ in pairs], [d for _, d in pairs], truncation="longest_first",
                        max_length=MAX_LENGTH, padding=False, return_attention_mask=False)

    def pad(self, enc, idx):
        """input_ids, attention_mask and, where the tokenizer gives them (BERT), token_type_ids."""
        import numpy as np

        width = max(len(enc["input_ids"][i]) for i in idx)
        ids = np.full((len(idx), width), self.pad_id, dtype=np.int64)
        types = "token_type_ids" in enc
        tt = np.zeros((len(idx), width), dtype=np.int64) if types else None
        mask = np.zeros((len(idx), width), dtype=np.int64)
        for r, i in enumerate(idx):
            n = len(enc["input_ids"][i])
            ids[r, :n] = enc["input_ids"][i]
            if types:
                tt[r, :n] = enc["token_type_ids"][i]
            mask[r, :n] = 1
        feed = {"input_ids": ids, "attention_mask": mask}
        if types:
            feed["token_type_ids"] = tt
        return feed


# ---------------------------------------------------------------------------------------------------------
def bench_ort(a, work: Workload):
    import numpy as np
    import onnxruntime as ort

    cuda = a.device == "cuda"
    if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
        raise SystemExit(f"onnxruntime {ort.__version__} has no CUDAExecutionProvider "
                         f"(available: {ort.get_available_providers()}; install onnxruntime-gpu)")
    fp16 = cuda
    # Export in a child process (torch stays out of this one); cached after the first time.
    cmd = [sys.executable, str(HERE / "export_onnx.py"), "--model", str(a.model), "--json"] + (["--fp16"] if fp16 else [])
    res = subprocess.run(cmd, stdout=subprocess.PIPE, text=True)
    if res.returncode != 0:
        raise SystemExit(f"export_onnx.py failed (exit {res.returncode})")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    log(f"onnx model {info['path']} ({'fp16' if fp16 else 'fp32'}, fusions {info['fusions']})")

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.intra_op_num_threads = a.threads
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if cuda else ["CPUExecutionProvider"]
    sess = ort.InferenceSession(info["path"], so, providers=providers)
    if cuda and sess.get_providers()[0] != "CUDAExecutionProvider":
        raise SystemExit(f"onnxruntime did not take the CUDA execution provider: {sess.get_providers()}")

    # Only the graph's inputs (a RoBERTa / XLM-R graph has no token_type_ids).
    inputs = [i.name for i in sess.get_inputs()]
    missing = [n for n in inputs if n not in ("input_ids", "attention_mask", "token_type_ids")]
    if missing:
        raise SystemExit(f"the ONNX model wants inputs this script cannot make: {missing}")

    def feed(enc, idx):
        f = work.pad(enc, idx)
        if "token_type_ids" in inputs and "token_type_ids" not in f:
            f["token_type_ids"] = np.zeros_like(f["input_ids"])
        return {n: f[n] for n in inputs}

    feeds = [feed(work.enc, idx) for idx in work.batches]
    last_logits = {}

    def model_pass():
        for f in feeds:
            sess.run(["logits"], f)

    def end_to_end_pass():
        enc = work.encode(work.pairs)
        lengths = [len(ids) for ids in enc["input_ids"]]
        order = sorted(range(len(lengths)), key=lengths.__getitem__)
        scores = np.empty(len(lengths), dtype=np.float32)
        all_logits = np.empty(len(lengths), dtype=np.float32)
        for s in range(0, len(order), work.batch_size):
            idx = order[s:s + work.batch_size]
            logits = sess.run(["logits"], feed(enc, idx))[0][:, 0]
            scores[idx] = 1.0 / (1.0 + np.exp(-logits))
            all_logits[idx] = logits
        last_logits["end_to_end"] = all_logits
        return scores

    extra = {"precision": "fp16" if fp16 else "fp32", "providers": sess.get_providers(),
             "fusions": info["fusions"], "exporter": info.get("exporter"), "inputs": inputs,
             "versions": versions(["onnxruntime", "onnxruntime-gpu", "onnx", "tokenizers", "transformers",
                                   "torch"])}
    yield "model", model_pass, extra
    yield "end_to_end", end_to_end_pass, extra
    if a.logits is not None and "end_to_end" in last_logits:
        with open(a.logits, "w", encoding="utf-8") as f:
            for x in last_logits["end_to_end"]:
                f.write(json.dumps(float(x)) + "\n")


def bench_st(a, work: Workload):
    import torch
    from sentence_transformers import CrossEncoder
    from sentence_transformers.util import batch_to_device

    cuda = a.device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise SystemExit("torch sees no CUDA device")
    torch.set_num_threads(a.threads)
    device = "cuda" if cuda else "cpu"
    ce = CrossEncoder(str(a.model), max_length=MAX_LENGTH, device=device)
    if cuda:
        ce = ce.half()
    ce.eval()
    dtype = next(ce.parameters()).dtype
    sync = torch.cuda.synchronize if cuda else (lambda: None)

    feats = [batch_to_device(ce.preprocess([work.pairs[i] for i in idx]), device) for idx in work.batches]
    sync()

    @torch.inference_mode()
    def model_pass():
        for f in feats:
            ce(dict(f))["scores"]
        sync()

    def end_to_end_pass():
        return ce.predict(work.pairs, batch_size=work.batch_size, show_progress_bar=False, convert_to_numpy=True)

    extra = {"precision": str(dtype).replace("torch.", "").replace("float32", "fp32").replace("float16", "fp16"),
             "attn_implementation": getattr(getattr(ce[0], "model", None), "config", None)
             and ce[0].model.config._attn_implementation,
             "versions": versions(["sentence-transformers", "torch", "transformers", "tokenizers"])}
    yield "model", model_pass, extra
    yield "end_to_end", end_to_end_pass, extra


def device_name(device: str) -> str:
    if device == "cuda":
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader", "-i", "0"],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, timeout=20)
            if out.returncode == 0 and out.stdout.strip():
                return out.stdout.strip().splitlines()[0]
        except (OSError, subprocess.SubprocessError):
            pass
        return "cuda"
    return cpu_name()


def run_engine(a, key: str) -> int:
    engine = ENGINES[key]
    work = Workload(a.model, read_pairs(a.input), a.batch_size)
    log(f"{engine} on {a.device}: {len(work.pairs)} pairs, {work.tokens} tokens "
        f"({work.tokens / len(work.pairs):.1f} per pair), {len(work.batches)} batches of <= {a.batch_size}, "
        f"{a.threads} threads")
    gen = bench_ort(a, work) if key == "ort" else bench_st(a, work)
    for measure, fn, extra in gen:
        t0 = time.perf_counter()
        secs, times = timed(fn, a.warmup_s, a.repeats)
        row = {"engine": engine, "device": a.device, "device_name": device_name(a.device), "measure": measure,
               "pairs": len(work.pairs), "tokens": work.tokens, "seconds": secs,
               "pairs_per_s": len(work.pairs) / secs, "tokens_per_s": work.tokens / secs,
               "threads": a.threads, "batch_size": a.batch_size, "repeats": len(times),
               "min_seconds": min(times), "max_seconds": max(times),
               "wall_s": round(time.perf_counter() - t0, 2), **extra}
        emit(a, row)
    return 0


def emit(a, row: dict) -> None:
    if a.json:
        print(json.dumps(row), flush=True)
    else:
        print(f"{row['engine']:<22} {row['device']:<5} {row['measure']:<11} {row['pairs']:>6} pairs "
              f"{row['pairs_per_s']:>10.1f} pairs/s {row['tokens_per_s']:>11.0f} tokens/s  "
              f"({row['precision']}, {row['threads']} threads, batch {row['batch_size']})", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True, type=Path)
    ap.add_argument("--input", required=True, type=Path, help="JSON Lines {query, document}")
    ap.add_argument("--engines", default="ort,st", help="comma list of ort, st (default both)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--warmup-s", type=float, default=2.0)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--json", action="store_true", help="one JSON object per measurement")
    ap.add_argument("--logits", type=Path, help="onnxruntime: write its end-to-end logits here, in input order")
    a = ap.parse_args()
    keys = [k.strip() for k in a.engines.split(",") if k.strip()]
    for k in keys:
        if k not in ENGINES:
            ap.error(f"unknown engine {k!r} (expected {', '.join(ENGINES)})")
    if a.threads < 1 or a.batch_size < 1:
        ap.error("--threads and --batch-size must be >= 1")

    if len(keys) == 1 and os.environ.get("XENC_BENCH_CHILD") == "1":
        return run_engine(a, keys[0])

    # One child process per engine: thread counts set before any library starts its pools.
    env = dict(os.environ, XENC_BENCH_CHILD="1", OMP_NUM_THREADS=str(a.threads),
               MKL_NUM_THREADS=str(a.threads), RAYON_NUM_THREADS=str(a.threads),
               TOKENIZERS_PARALLELISM="true", HF_HUB_DISABLE_PROGRESS_BARS="1", TRANSFORMERS_VERBOSITY="error",
               HF_HUB_OFFLINE="1")
    rc = 0
    for k in keys:
        argv = [sys.executable, str(Path(__file__).resolve())] + [x for x in sys.argv[1:]]
        i = argv.index("--engines") if "--engines" in argv else None
        if i is not None:
            del argv[i:i + 2]
        argv = [x for x in argv if not x.startswith("--engines=")] + ["--engines", k]
        r = subprocess.run(argv, env=env)
        if r.returncode != 0:
            log(f"{ENGINES[k]}: failed (exit {r.returncode})")
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
