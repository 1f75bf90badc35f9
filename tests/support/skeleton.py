"""Synthetic packed skeleton datasets for tests and benchmarks (smooth random joint trajectories).

Not a stand-in for the demo corpus (which the clips stage builds from rendered videos): just data of the
right shape, dtype, value ranges and metadata so the training code can be exercised anywhere.
"""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mgfm.core.packed import write_packed
from mgfm.common.seeding import rng_for
from mgfm.core.layout import NUM_JOINTS


def synthetic_skeleton(n: int, frames: int = 64, joints: int = NUM_JOINTS, seed: int = 0,
                       min_valid: int = 8) -> tuple[np.ndarray, pd.DataFrame]:
    """(data float32 (n, 3, frames, joints), meta): smooth motion, scores in [0, 1], zero padding after valid_len."""
    rng = rng_for(seed, "synthetic-skeleton")
    base = rng.normal(0, 0.5, size=(n, 2, 1, joints))
    vel = rng.normal(0, 0.02, size=(n, 2, frames, joints)).cumsum(axis=2)
    xy = base + vel.cumsum(axis=2) * 0.1 + 0.05 * np.sin(np.linspace(0, 6, frames))[None, None, :, None] \
        * rng.normal(size=(n, 2, 1, joints))
    score = np.clip(rng.beta(5, 1.5, size=(n, 1, 1, joints)) + rng.normal(0, 0.05, size=(n, 1, frames, joints)), 0, 1)
    data = np.concatenate([xy, score], axis=1).astype(np.float32)
    valid = rng.integers(min(min_valid, frames), frames + 1, size=n)
    for i, v in enumerate(valid):
        data[i, :, v:] = 0.0
    meta = pd.DataFrame({
        "clip_id": [f"syn{i:06d}" for i in range(n)], "video_id": [f"vid{i % 7:03d}" for i in range(n)],
        "subject_id": [f"s{i % 5}" for i in range(n)], "split": "unlabeled", "label": -1,
        "valid_len": valid.astype(np.int64), "start_frame": 0, "end_frame": (valid - 1).astype(np.int64),
    })
    return data, meta


def write_synthetic_skeleton(path: str | os.PathLike, n: int, frames: int = 64, seed: int = 0,
                             joints: int = NUM_JOINTS) -> None:
    """``synthetic_skeleton`` written as a packed dataset folder at ``path`` (what the training stages read)."""
    data, meta = synthetic_skeleton(n, frames, joints, seed)
    write_packed(path, data, meta, {"source": "synthetic", "seed": seed})
