"""Spotting speed: end-to-end real-time factor (video seconds per wall second) on raw video files with decode
(ffmpeg normalisation), pose and model split out, and the classifier alone in windows/s, batched against one
window at a time, measured in the same run.

Needs a models folder made by the workflow (``snakemake --cores all results/models/spotter.json``) and raw
videos (the demo's are under results/demo/raw/). Usage:
python benchmarks/bench_infer.py --models results/models --videos results/demo/raw/demo030.mp4 [--threads 2]
[--windows 2048] [--batch 256]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
import torch

from mgfm.core.layout import NUM_JOINTS
from mgfm.infer.bundle import load_members, load_spotter
from mgfm.infer.run import infer_videos
from mgfm.infer.score import fused_probs, member_probs


def classifier_rate(models: str, n: int, batch: int) -> tuple[float, float]:
    """(windows/s batched, windows/s one at a time) of every member + fusion on random clips."""
    spotter = load_spotter(models)
    members = load_members(models, spotter)
    T = int(spotter["clip_params"].get("num_frames", members[0].card["num_frames"]))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3, T, NUM_JOINTS)).astype(np.float32)
    vl = np.full(n, T, np.int64)
    member_probs(members, x[:batch], vl[:batch], batch)                 # warm-up
    t0 = time.perf_counter()
    fused_probs(member_probs(members, x, vl, batch), spotter["weights"])
    batched = n / (time.perf_counter() - t0)
    k = min(n, 64)
    t0 = time.perf_counter()
    fused_probs(member_probs(members, x[:k], vl[:k], 1), spotter["weights"])
    single = k / (time.perf_counter() - t0)
    return batched, single


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="results/models")
    ap.add_argument("--videos", nargs="+", required=True)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--windows", type=int, default=2048)
    ap.add_argument("--batch", type=int, default=256)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    batched, single = classifier_rate(args.models, args.windows, args.batch)
    print(f"classifier (all members + fusion): {batched:.0f} windows/s at batch {args.batch}, "
          f"{single:.0f} windows/s one at a time ({batched / single:.1f}x)")
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        results = infer_videos(args.videos, args.models, out, args.batch, threads=args.threads)
        wall = time.perf_counter() - t0
    ok = [r for r in results if r.ok]
    video_s = sum(r.duration_s for r in ok)
    split = {k: sum(r.timings.get(k, 0.0) for r in ok) for k in ("decode_s", "pose_s", "model_s")}
    print(f"end to end: {video_s:.1f} s of video in {wall:.1f} s, real-time factor {video_s / wall:.2f} "
          f"({args.threads} threads)")
    for k, v in split.items():
        print(f"  {k[:-2]:7s} {v:6.1f} s  real-time factor {video_s / max(v, 1e-9):.2f}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"  FAILED {r.source}: {r.message}")


if __name__ == "__main__":
    main()
