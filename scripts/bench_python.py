#!/usr/bin/env python3
"""xenc from Python against sentence-transformers' CrossEncoder, on the same pairs in one process.

    python scripts/bench_python.py --model DIR --input pairs.jsonl --threads 2 [--repeats 2]
        [--engines xenc,st,st-onnx] [--device cpu|cuda]

Run it in a venv with torch + sentence-transformers (scripts/golden-venv.sh) and the xenc wheel
installed (scripts/bench-python.sh does all of it and adds `xenc bench` on the same pairs). Each
engine is warmed up on the first 256 pairs, then timed `--repeats` times over all pairs, engines
interleaved (A B A B); the median is reported. Timed: list of (query, document) tuples in, scores in
input order out (numpy), i.e. predict() as a user calls it. sentence-transformers runs with
batch_size 32 (its default; length-sorted batches) and torch.set_num_threads(threads).
"""

import argparse
import json
import os
import statistics
import sys
import time


def read_pairs(path):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["query"], r["document"]) for r in rows]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--input", required=True)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--engines", default="xenc,st")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = ap.parse_args()

    pairs = read_pairs(args.input)
    engines = {}
    versions = {}
    for name in args.engines.split(","):
        if name == "xenc":
            import xenc

            m = xenc.CrossEncoder(args.model, device=args.device, threads=args.threads)
            engines[name] = lambda p, m=m: m.predict(p)
            versions["xenc"] = f"{xenc.__version__} ({m.device_name})"
        elif name in ("st", "st-onnx"):
            import sentence_transformers
            import torch
            from sentence_transformers import CrossEncoder

            torch.set_num_threads(args.threads)
            kw = {"backend": "onnx"} if name == "st-onnx" else {}
            try:
                m = CrossEncoder(args.model, device=args.device, **kw)
            except Exception as e:  # onnx backend missing (optimum / onnxruntime)
                print(f"{name}: not run ({type(e).__name__}: {e})", file=sys.stderr)
                continue
            engines[name] = lambda p, m=m: m.predict(p, batch_size=32, show_progress_bar=False)
            versions["sentence-transformers"] = sentence_transformers.__version__
            versions["torch"] = torch.__version__
        else:
            raise SystemExit(f"unknown engine {name}")

    for name, fn in engines.items():
        fn(pairs[:256])
    times = {name: [] for name in engines}
    scores = {}
    for _ in range(args.repeats):
        for name, fn in engines.items():
            t0 = time.perf_counter()
            scores[name] = fn(pairs)
            times[name].append(time.perf_counter() - t0)

    import numpy as np

    ref = scores.get("xenc")
    for name, ts in times.items():
        med = statistics.median(ts)
        row = {
            "engine": name,
            "pairs": len(pairs),
            "threads": args.threads,
            "device": args.device,
            "seconds": [round(t, 3) for t in ts],
            "median_s": round(med, 3),
            "pairs_per_s": round(len(pairs) / med, 1),
        }
        if ref is not None and name != "xenc":
            row["max_abs_diff_vs_xenc"] = float(np.max(np.abs(np.asarray(scores[name], dtype=np.float64) - ref)))
        print(json.dumps(row))
    print(json.dumps({"versions": versions}))


if __name__ == "__main__":
    main()
