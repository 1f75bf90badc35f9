"""Retrieval at the paper's sizes: 13,478 gallery x 4,322 queries x 2048-d (Table XII).

Times the vectorised search (L2 normalisation, one matrix product per query chunk, torch.topk) on all
queries, and the Python-loop baseline (one query, one gallery item at a time) on a subset of queries,
measured in the same run; checks both give the same neighbours on that subset and prints the per-query
speed ratio. Usage: python benchmarks/bench_retrieval.py [--gallery N] [--queries N] [--dim D]
[--loop-queries N] [--chunk N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mgfm.eval.retrieval import nearest, nearest_loop, retrieval_accuracy


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gallery", type=int, default=13478)
    ap.add_argument("--queries", type=int, default=4322)
    ap.add_argument("--dim", type=int, default=2048)
    ap.add_argument("--classes", type=int, default=32)
    ap.add_argument("--loop-queries", type=int, default=10)
    ap.add_argument("--chunk", type=int, default=1024)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    centres = 0.2 * rng.normal(size=(args.classes, args.dim)).astype(np.float32)
    yg = rng.integers(0, args.classes, args.gallery)
    yq = rng.integers(0, args.classes, args.queries)
    gallery = centres[yg] + 3 * rng.normal(size=(args.gallery, args.dim)).astype(np.float32)
    queries = centres[yq] + 3 * rng.normal(size=(args.queries, args.dim)).astype(np.float32)

    nearest(gallery, queries[:64], 5, args.chunk, args.device)          # warm-up
    t0 = time.perf_counter()
    idx, _ = nearest(gallery, queries, 5, args.chunk, args.device)
    if args.device == "cuda":
        torch.cuda.synchronize()
    t_vec = time.perf_counter() - t0
    acc = retrieval_accuracy(yg[idx], yq)

    n = args.loop_queries
    t0 = time.perf_counter()
    idx_loop = nearest_loop(gallery, queries[:n], 5)
    t_loop = time.perf_counter() - t0
    same = np.array_equal(idx_loop, idx[:n])

    per_vec, per_loop = t_vec / args.queries, t_loop / n
    print(f"retrieval benchmark: gallery {args.gallery} x queries {args.queries} x dim {args.dim}, "
          f"device {args.device}, {torch.get_num_threads()} threads")
    print(f"  vectorised (matmul + topk, chunk {args.chunk}): {t_vec:.3f} s for all {args.queries} queries "
          f"({1e3 * per_vec:.3f} ms/query); Top-1 {acc[1]:.2f}%, Top-5 {acc[5]:.2f}%")
    print(f"  python loop baseline: {t_loop:.3f} s for {n} queries ({1e3 * per_loop:.1f} ms/query); "
          f"same neighbours as vectorised: {same}")
    print(f"  speed-up per query (loop / vectorised): {per_loop / per_vec:.0f}x; the loop would need "
          f"~{per_loop * args.queries:.0f} s for all queries")
    if not same:
        raise SystemExit("vectorised and loop neighbours differ")


if __name__ == "__main__":
    main()
