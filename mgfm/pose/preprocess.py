"""Pixel normalisation of RTMPose crops.

mmpose's RTMPose configs use ``data_preprocessor = dict(mean=[123.675, 116.28, 103.53], std=[58.395, 57.12,
57.375], bgr_to_rgb=True)``: images are loaded BGR by cv2, converted to **RGB**, then normalised with the
ImageNet mean/std given in RGB order. decord hands us RGB frames, so for ``color="rgb"`` (the mmpose-faithful
default) we only normalise; ``color="bgr"`` swaps channels first, for ONNX models exported with BGR inputs
(rtmlib feeds BGR crops straight to its models).
"""

from __future__ import annotations

import numpy as np

RTMPOSE_MEAN = (123.675, 116.28, 103.53)
RTMPOSE_STD = (58.395, 57.12, 57.375)


def normalize_crops(crops_rgb: np.ndarray, mean=RTMPOSE_MEAN, std=RTMPOSE_STD, color: str = "rgb") -> np.ndarray:
    """(N, h, w, 3) uint8 RGB crops -> (N, 3, h, w) float32 model input, ``(pixel - mean) / std`` per channel."""
    if color not in ("rgb", "bgr"):
        raise ValueError(f"color must be 'rgb' or 'bgr', got {color!r}")
    x = crops_rgb[..., ::-1] if color == "bgr" else crops_rgb
    mean = np.asarray(mean, dtype=np.float32)
    inv_std = 1.0 / np.asarray(std, dtype=np.float32)
    out = (x.astype(np.float32) - mean) * inv_std
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))
