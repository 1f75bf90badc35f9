"""Sliding windows over a whole video, and the face-visibility gate that decides which windows carry a gesture.

Window lengths come from the training duration prior (its quantiles), so windows have the durations the
classifiers were trained on; the stride is configurable. A window is *visible* when the fraction of its frames
whose five face anchors are all >= tau (the clip sampler's per-frame test, ``AnchorTrack.visible``) reaches
``min_visible``; windows that are not visible carry no gesture (probability 0 for every class).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Windows:
    """All windows of one video: inclusive frame ranges, the index of their length, and the visibility gate."""

    start: np.ndarray    # (W,) int64
    end: np.ndarray      # (W,) int64, inclusive
    length: np.ndarray   # (W,) int64 index into the window lengths
    visible: np.ndarray  # (W,) bool

    def __len__(self) -> int:
        return len(self.start)


def window_lengths(prior_s: np.ndarray, quantiles: list[float], fps: float) -> list[int]:
    """Window lengths in frames: the prior's quantiles, rounded, at least 2 frames, duplicates removed."""
    prior_s = np.asarray(prior_s, np.float64)
    if len(prior_s) == 0:
        raise ValueError("the duration prior is empty: no window length can be derived")
    frames = np.maximum(2, np.rint(np.quantile(prior_s, quantiles) * fps)).astype(int)
    return sorted({int(f) for f in frames})


def sliding_windows(n_frames: int, lengths: list[int], stride: int, visible_frames: np.ndarray,
                    min_visible: float) -> Windows:
    """Every window of every length at ``stride`` frames (the last one flush with the video's end).

    ``visible_frames`` (n_frames,) bool is the per-frame face test. A video shorter than a length has no
    window of that length.
    """
    if stride < 1:
        raise ValueError(f"window stride must be >= 1 frame, got {stride}")
    vis = np.asarray(visible_frames, bool)
    if len(vis) != n_frames:
        raise ValueError(f"visibility track has {len(vis)} frames, the video {n_frames}")
    prefix = np.concatenate([[0], np.cumsum(vis, dtype=np.int64)])
    starts, ends, idx = [], [], []
    for k, n in enumerate(lengths):
        if n > n_frames:
            continue
        s = np.arange(0, n_frames - n + 1, stride, dtype=np.int64)
        if s[-1] != n_frames - n:
            s = np.append(s, n_frames - n)
        starts.append(s), ends.append(s + n - 1), idx.append(np.full(len(s), k, np.int64))
    if not starts:
        z = np.zeros(0, np.int64)
        return Windows(z, z, z, np.zeros(0, bool))
    start, end, length = np.concatenate(starts), np.concatenate(ends), np.concatenate(idx)
    frac = (prefix[end + 1] - prefix[start]) / (end - start + 1)
    return Windows(start, end, length, frac >= min_visible - 1e-9)
