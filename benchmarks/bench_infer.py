"""Spotting speed: end-to-end real-time factor (video seconds per wall second) on raw video files with decode
(ffmpeg normalisation), pose and model split out (the model part split again into the skeleton and the RGB
windows: clip building + classifiers), and the classifiers alone in windows/s, batched against one window at a
time, measured in the same run.

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


def random_clips(modality: str, spotter: dict, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random packed clips of a modality: skeleton (n, 3, T, V) float32, RGB (n, T, S, S, 3) uint8."""
    if modality == "rgb":
        p = spotter["rgb_clip_params"]
        t, s = int(p["num_frames"]), int(p["size"])
        return rng.integers(0, 256, (n, t, s, s, 3), dtype=np.uint8), np.full(n, t, np.int64)
    t = int(spotter["clip_params"]["num_frames"])
    return rng.normal(size=(n, 3, t, NUM_JOINTS)).astype(np.float32), np.full(n, t, np.int64)


def classifier_rate(models: str, n: int, batch: int) -> tuple[float, float]:
    """(windows/s batched, windows/s one at a time) of every member + fusion on random clips."""
    spotter = load_spotter(models)
    members = load_members(models, spotter)
    rng = np.random.default_rng(0)
    by_mod = {mod: [m for m in members if m.modality == mod] for mod in {m.modality for m in members}}
    clips = {mod: random_clips(mod, spotter, n, rng) for mod in by_mod}

    def run(k: int, bs: int) -> None:
        logits = {}
        for mod, ms in by_mod.items():
            x, vl = clips[mod]
            logits.update(member_probs(ms, x[:k], vl[:k], bs))
        fused_probs(logits, spotter["weights"])

    run(batch, batch)                                                   # warm-up
    t0 = time.perf_counter()
    run(n, batch)
    batched = n / (time.perf_counter() - t0)
    k = min(n, 64)
    t0 = time.perf_counter()
    run(k, 1)
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
    split = {k: sum(r.timings.get(k, 0.0) for r in ok)
             for k in ("decode_s", "pose_s", "model_s", "windows_skeleton_s", "windows_rgb_s")}
    print(f"end to end: {video_s:.1f} s of video in {wall:.1f} s, real-time factor {video_s / wall:.2f} "
          f"({args.threads} threads)")
    for k, v in split.items():
        print(f"  {k[:-2]:16s} {v:6.1f} s  real-time factor {video_s / max(v, 1e-9):.2f}")
    failed = [r for r in results if not r.ok]
    for r in failed:
        print(f"  FAILED {r.source}: {r.message}")


if __name__ == "__main__":
    main()
