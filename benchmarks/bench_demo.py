#!/usr/bin/env python3
"""Demo corpus generation speed: where the time goes, and whether the default corpus fits its 90 s budget.

    python benchmarks/bench_demo.py [--frames 750] [--workers 2]

Measured in one run on one default-size video (320x240, 25 fps):
  * kinematics: the vectorised ``skeleton.forward`` over all frames against a per-frame loop (the baseline);
  * drawing: OpenCV rendering per frame;
  * encoding: the same pre-rendered frames piped into ffmpeg with libx264 (ultrafast) against mjpeg (baseline);
then the projected wall time of the default corpus on ``--workers`` processes against the 90 s budget.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from dataclasses import replace

import numpy as np

from mgfm.common.seeding import rng_for
from mgfm.demo.corpus import simulate_video
from mgfm.demo.events import plan_events
from mgfm.demo.motion import build_motion
from mgfm.demo.subject import make_framing, make_subject
from mgfm.demo.encode import VideoWriter
from mgfm.demo.plan import FPS, build_plan, demo_settings
from mgfm.demo.skeleton import Motion, forward

BUDGET_S = 90.0


def _slice_motion(m: Motion, i: int) -> Motion:
    one = Motion(1)
    one.p = {k: v[i:i + 1] for k, v in m.p.items()}
    for h in ("l", "r"):
        one.hand_dir[h], one.curl[h] = m.hand_dir[h][i:i + 1], m.curl[h][i:i + 1]
        one.spread[h], one.hand_scale[h] = m.spread[h][i:i + 1], m.hand_scale[h][i:i + 1]
    for t in m.tasks:
        sel = np.flatnonzero(t.idx == i)
        if len(sel):
            one.tasks.append(type(t)(t.hand, np.zeros(1, int), t.w[sel], t.anchor, t.offset[sel]))
    return one


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=750)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    cfg = demo_settings({})
    plans = build_plan(cfg)
    video = next(p for p in plans if p.subset == "labeled")
    video = replace(video, n_frames=min(args.frames, video.n_frames))
    n = video.n_frames

    subject = make_subject(cfg["seed"], video.subject_id)
    motion = build_motion(n, FPS, subject, plan_events(cfg, video, subject).gestures, rng_for(0, "bench"))
    framing = make_framing(rng_for(0, "bench-framing"))
    t = time.perf_counter()
    pose = forward(motion, subject, framing, cfg["width"], cfg["height"])
    vec = time.perf_counter() - t
    k = min(n, 200)
    t = time.perf_counter()
    for i in range(k):
        one = forward(_slice_motion(motion, i), subject, framing, cfg["width"], cfg["height"])
    loop = (time.perf_counter() - t) * n / k
    assert np.allclose(one.xy[0], pose.xy[k - 1], atol=1e-3)
    print(f"kinematics {n} frames: vectorised {vec * 1e3:.1f} ms, per-frame loop {loop * 1e3:.0f} ms "
          f"-> speed-up x{loop / vec:.0f}")

    _, shot = simulate_video(cfg, video)
    frames = np.empty((n, cfg["height"], cfg["width"], 3), np.uint8)
    t = time.perf_counter()
    for i in range(n):
        shot.frame(i, frames[i])
    draw = time.perf_counter() - t
    print(f"drawing: {draw / n * 1e3:.2f} ms/frame ({n / draw:.0f} frames/s)")

    enc = {}
    with tempfile.TemporaryDirectory() as tmp:
        for codec in ("mjpeg", "libx264"):
            path = Path(tmp) / f"{codec}.mp4"
            t = time.perf_counter()
            with VideoWriter(path, cfg["width"], cfg["height"], FPS, codec, cfg["crf"]) as w:
                for s in range(0, n, 64):
                    w.write(frames[s:s + 64])
            enc[codec] = (time.perf_counter() - t, path.stat().st_size)
    for codec, (sec, size) in enc.items():
        print(f"encode {codec:8s}: {n / sec:.0f} frames/s, {size / n / 1024:.1f} KiB/frame")
    print(f"libx264 vs mjpeg (baseline): speed x{enc['mjpeg'][0] / enc['libx264'][0]:.2f}, "
          f"size x{enc['libx264'][1] / enc['mjpeg'][1]:.2f}")

    per_frame = draw / n + enc[cfg["codec"]][0] / n * 0.5  # ffmpeg runs beside the drawing process
    total = sum(p.n_frames for p in plans)
    projected = total * per_frame / max(1, args.workers)
    print(f"default corpus: {total} frames, projected {projected:.0f} s on {args.workers} worker(s); "
          f"budget {BUDGET_S:.0f} s -> ratio {projected / BUDGET_S:.2f} (< 1 is within budget)")


if __name__ == "__main__":
    main()
