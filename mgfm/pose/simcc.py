"""SimCC decoding as mmpose's SimCCLabel.decode + get_simcc_maximum (RTMPose / RTMW heads).

Each keypoint has a 1-D classification vector per axis over ``input_size * split_ratio`` bins. The location is
the argmax bin divided by the split ratio (crop pixels); the score is the *smaller* of the two per-axis maxima;
keypoints whose score is <= 0 get location -1 (before the division), exactly as mmpose does, so a threshold
such as the clip sampler's tau means the same on both backends.
"""

from __future__ import annotations

import numpy as np

DEFAULT_SPLIT_RATIO = 2.0


def get_simcc_maximum(simcc_x: np.ndarray, simcc_y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, Wx), (N, K, Wy) -> bin locations (N, K, 2) float32 and scores (N, K) float32."""
    if simcc_x.ndim != 3 or simcc_y.ndim != 3 or simcc_x.shape[:2] != simcc_y.shape[:2]:
        raise ValueError(f"SimCC outputs must be (N, K, bins) with equal N, K: got {simcc_x.shape}, {simcc_y.shape}")
    x_locs = np.argmax(simcc_x, axis=2)
    y_locs = np.argmax(simcc_y, axis=2)
    locs = np.stack([x_locs, y_locs], axis=-1).astype(np.float32)
    scores = np.minimum(np.max(simcc_x, axis=2), np.max(simcc_y, axis=2)).astype(np.float32)
    locs[scores <= 0.0] = -1
    return locs, scores


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray,
                 split_ratio: float = DEFAULT_SPLIT_RATIO) -> tuple[np.ndarray, np.ndarray]:
    """Keypoints in crop pixels (N, K, 2) and scores (N, K)."""
    locs, scores = get_simcc_maximum(simcc_x, simcc_y)
    return locs / np.float32(split_ratio), scores
