#!/usr/bin/env python3
"""Score (query, document) pairs on a Ray cluster with xenc: one model per actor, Ray Data batches.

    # a local cluster, 2 actors of 1 thread, 10,000 generated pairs, scores printed
    python ray_score.py --model ~/.cache/xenc/test-model/f32 --generate 10000 --actors 2 --threads 1

    # a real job: JSON Lines {"id", "query", "document"} in, Parquet with a `score` column out
    python ray_score.py --model models/ms-marco-MiniLM-L-6-v2 --input pairs.jsonl --output scored/ \
        --address auto --actors 16 --threads 4

Every machine that runs an actor needs the checkpoint directory at the same path (or a shared file
system) and the xenc wheel installed. Ray may return rows in any order: the `id` column joins them back.
"""

import argparse
import time

import ray

from xenc.ray import Scorer


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="checkpoint directory (config.json, model.safetensors, tokenizer.json)")
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help="JSON Lines with id, query and document fields (any path Ray reads)")
    src.add_argument("--generate", type=int, metavar="N", help="score N generated pairs instead")
    ap.add_argument("--output", help="write Parquet here (default: print a summary)")
    ap.add_argument("--address", default=None, help="Ray cluster address (default: start a local one)")
    ap.add_argument("--actors", type=int, default=2, help="actors, each holding one model")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (and Ray CPUs) per actor")
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (auto: a GPU when usable)")
    ap.add_argument("--gpus-per-actor", type=float, default=0, help="Ray GPUs each actor reserves (with --device cuda)")
    ap.add_argument("--batch-size", type=int, default=1024, help="rows per map_batches call")
    args = ap.parse_args()

    if args.address:
        ray.init(address=args.address)
    else:
        ray.init(num_cpus=args.actors * args.threads)

    if args.input:
        ds = ray.data.read_json(args.input)
    else:
        ds = ray.data.from_items(
            [{"id": i, "query": f"query {i % 97}", "document": f"document {i} about topic {i % 13}"} for i in range(args.generate)]
        )

    t0 = time.perf_counter()
    scored = ds.map_batches(
        Scorer,
        fn_constructor_kwargs={"model_dir": args.model, "device": args.device, "threads": args.threads},
        concurrency=args.actors,
        num_cpus=args.threads,
        num_gpus=args.gpus_per_actor,
        batch_size=args.batch_size,
    )
    if args.output:
        scored.write_parquet(args.output)
        print(f"wrote {args.output} in {time.perf_counter() - t0:.1f} s")
    else:
        rows = sorted(scored.take_all(), key=lambda r: r["id"])
        dt = time.perf_counter() - t0
        print(f"{len(rows)} pairs in {dt:.1f} s ({len(rows) / dt:.0f} pairs/s, {args.actors} actors)")
        for r in rows[:5]:
            print(f"{r['id']:>6}  {r['score']:+.5f}  {r['query']!r} / {r['document']!r}")


if __name__ == "__main__":
    main()
