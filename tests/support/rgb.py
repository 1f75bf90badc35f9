"""Synthetic packed RGB datasets for the RGB branch's tests: a person-like blob whose motion class is the label."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mgfm.core.packed import write_packed


def synthetic_rgb(n: int, frames: int = 8, size: int = 64, classes: int = 4, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 clips (n, T, S, S, 3) of a bright disk on a textured background moving in one of ``classes``
    directions (the label), and the labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = 2 * np.pi * labels / classes
    start = rng.uniform(0.3, 0.7, (n, 2)) * size
    t = np.arange(frames, dtype=np.float32)
    cx = start[:, 0, None] + np.cos(angle)[:, None] * t * size / 40
    cy = start[:, 1, None] + np.sin(angle)[:, None] * t * size / 40
    d2 = (xx[None, None] - cx[..., None, None]) ** 2 + (yy[None, None] - cy[..., None, None]) ** 2
    blob = (d2 < (size / 8) ** 2).astype(np.float32)
    background = rng.uniform(0, 80, (n, 1, size, size, 3)).astype(np.float32)
    colour = rng.uniform(150, 255, (n, 1, 1, 1, 3)).astype(np.float32)
    clips = background * (1 - blob[..., None]) + colour * blob[..., None]
    return clips.clip(0, 255).astype(np.uint8), labels


def write_synthetic_rgb(path: str | os.PathLike, n: int, frames: int = 8, size: int = 64, classes: int = 4,
                        seed: int = 0, split: str = "train") -> pd.DataFrame:
    clips, labels = synthetic_rgb(n, frames, size, classes, seed)
    meta = pd.DataFrame({
        "clip_id": [f"c{seed}_{i}" for i in range(n)], "video_id": [f"v{i % 6}" for i in range(n)],
        "subject_id": [f"s{i % 6}" for i in range(n)], "split": split, "label": labels.astype(np.int64),
        "valid_len": np.full(n, frames, np.int64), "start_frame": np.zeros(n, np.int64),
        "end_frame": np.full(n, frames - 1, np.int64)})
    write_packed(path, clips, meta, {"modality": "rgb"})
    return meta
