"""Small synthetic inputs for the clips stage's tests and benchmarks: pose files with known cut-ins, matching
videos, dataset tables, full-scale visibility streams generated in memory, and the sampler written as a plain
reference loop (what the fast sampler must equal).

Not the demo corpus (``mgfm.demo`` renders that): these are minimal, fully known inputs, so a test can say
exactly which frames a clip may cover.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.core.layout import LEFT_SHOULDER, NUM_KEYPOINTS, RIGHT_SHOULDER
from mgfm.core.pose_store import PoseFrames, PoseWriter


def person_pose(n_frames: int, rng: np.random.Generator, width: int = 320, height: int = 240,
                cutins: list[tuple[int, int]] = (), centre: tuple[float, float] | None = None,
                shoulder_px: float = 60.0) -> PoseFrames:
    """A seated person with small motion; frames inside ``cutins`` (inclusive ranges) have near-zero scores."""
    cx, cy = centre if centre is not None else (width / 2, height * 0.6)
    base = rng.normal(0.0, 0.6, size=(NUM_KEYPOINTS, 2)) * shoulder_px
    base[LEFT_SHOULDER] = (shoulder_px / 2, 0.0)
    base[RIGHT_SHOULDER] = (-shoulder_px / 2, 0.0)
    t = np.arange(n_frames)[:, None, None]
    sway = 3.0 * np.sin(t / 25.0 + rng.uniform(0, 6.28, size=(1, NUM_KEYPOINTS, 1)))
    xy = (base[None] + sway + np.array([cx, cy])).astype(np.float32)
    score = rng.uniform(0.6, 0.98, size=(n_frames, NUM_KEYPOINTS)).astype(np.float32)
    for a, b in cutins:
        score[a:b + 1] = rng.uniform(0.0, 0.08, size=(b + 1 - a, NUM_KEYPOINTS))
        xy[a:b + 1] = rng.uniform(0, [width, height], size=(b + 1 - a, NUM_KEYPOINTS, 2))
    lo, hi = xy.min(axis=1), xy.max(axis=1)
    bbox = np.concatenate([lo, hi], axis=1).astype(np.float32)
    return PoseFrames(frame=np.arange(n_frames, dtype=np.int32), bbox=bbox,
                      det_score=np.ones(n_frames, np.float32), xy=xy, score=score)


def write_pose(path: str | os.PathLike, frames: PoseFrames, fps: float = 25.0, width: int = 320,
               height: int = 240) -> None:
    """Write a pose file in the ``mgfm.core.pose_store`` format, in chunks like the pose stage does."""
    with PoseWriter(path, {"backend": "synthetic", "model": "none", "fps": fps, "width": width,
                           "height": height}) as w:
        for i in range(0, len(frames), 1000):
            sl = slice(i, i + 1000)
            w.write(PoseFrames(frames.frame[sl], frames.bbox[sl], frames.det_score[sl], frames.xy[sl],
                               frames.score[sl]))


def write_video(path: str | os.PathLike, n_frames: int, width: int = 320, height: int = 240,
                fps: float = 25.0) -> None:
    """A video whose frame f shows its index in the red channel (f mod 256) and the column in green."""
    import cv2

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, height))
    cols = (np.arange(width) * 255 // max(width - 1, 1)).astype(np.uint8)
    for f in range(n_frames):
        img = np.zeros((height, width, 3), np.uint8)
        img[..., 2] = (f * 7) % 256  # BGR: red
        img[..., 1] = cols[None, :]
        writer.write(img)
    writer.release()


def write_corpus(root: str | os.PathLike, n_labeled: int = 4, n_unlabeled: int = 4, seed: int = 0,
                 frames_range: tuple[int, int] = (500, 1000), with_video: bool = False,
                 width: int = 320, height: int = 240) -> dict:
    """A tiny corpus: pose files (and videos), manifest and annotations; returns paths and the cut-ins used."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    rows, ann, cutins = [], [], {}
    n_videos = n_labeled + n_unlabeled
    for i in range(n_videos):
        vid = f"v{i:03d}"
        n = int(rng.integers(*frames_range))
        a = int(rng.integers(n // 4, n // 2))
        cut = [(a, a + int(rng.integers(40, 90)))]
        cutins[vid] = cut
        write_pose(root / "pose" / f"{vid}.parquet", person_pose(n, rng, width, height, cut), width=width,
                   height=height)
        if with_video:
            write_video(root / "videos" / f"{vid}.mp4", n, width, height)
        labeled = i < n_labeled
        split = ("train" if i % 2 == 0 else "test") if labeled else ""
        rows.append(dict(video_id=vid, url=f"file:///x/{vid}.mp4", subject_id=f"s{i}",
                         outcome="win" if i % 3 else "lose", subset="labeled" if labeled else "unlabeled",
                         split=split))
        if labeled:
            f = 0
            while True:
                f += int(rng.integers(5, 60))
                length = int(rng.integers(5, 120))
                if f + length >= n:
                    break
                ann.append(dict(video_id=vid, class_id=int(rng.integers(1, 6)), start_frame=f,
                                end_frame=f + length - 1))
                f += length
    manifest = pd.DataFrame(rows)
    annotations = pd.DataFrame(ann)
    manifest.to_csv(root / "manifest.csv", index=False)
    annotations.to_csv(root / "annotations.csv", index=False)
    return dict(root=root, pose_dir=root / "pose", video_dir=root / "videos", manifest=root / "manifest.csv",
                annotations=root / "annotations.csv", cutins=cutins, manifest_df=manifest,
                annotations_df=annotations)


def visibility_stream(n_frames: int, rng: np.random.Generator, p_hidden: float = 0.15,
                      mean_run_s: float = 4.0, fps: float = 25.0) -> np.ndarray:
    """A boolean "all anchors visible" track with alternating runs (cut-ins, turned heads), built in O(runs)."""
    mean_run = mean_run_s * fps
    n_runs = max(2, int(2 * n_frames / mean_run) + 4)
    hidden_len = rng.exponential(mean_run * p_hidden / (1 - p_hidden), n_runs).astype(np.int64) + 1
    shown_len = rng.exponential(mean_run, n_runs).astype(np.int64) + 1
    lengths = np.stack([shown_len, hidden_len], axis=1).reshape(-1)
    values = np.tile([True, False], n_runs)
    reps = np.cumsum(lengths)
    keep = int(np.searchsorted(reps, n_frames)) + 1
    out = np.repeat(values[:keep], lengths[:keep])[:n_frames]
    if len(out) < n_frames:
        out = np.concatenate([out, np.ones(n_frames - len(out), bool)])
    return out


def reference_sample(visible, fps, prior, rng, quota, budget):
    """Paper Eq. 4-11 written as plainly as possible: one candidate at a time, every frame checked."""
    n_frames = len(visible)
    length_s = n_frames / fps
    accepted = []
    stats = dict(candidates=0, rejected_length=0, rejected_visibility=0, rejected_overlap=0)
    while len(accepted) < quota and stats["candidates"] < budget:
        u1 = rng.random()
        u2 = rng.random()
        stats["candidates"] += 1
        d = prior[min(int(u1 * len(prior)), len(prior) - 1)]
        n = max(1, int(round(d * fps)))
        if d > length_s or n > n_frames:
            stats["rejected_length"] += 1
            continue
        s = u2 * max(length_s - d, 0.0)
        a = min(int(math.floor(s * fps)), max(n_frames - n, 0))
        z = a + n - 1
        if not all(visible[f] for f in range(a, z + 1)):
            stats["rejected_visibility"] += 1
            continue
        if any(not (z < a0 or a > z0) for a0, z0 in accepted):
            stats["rejected_overlap"] += 1
            continue
        accepted.append((a, z))
    return sorted(accepted), stats
