"""What every pose backend gives the extraction loop, and the model-file checks every loader shares.

A backend turns (RGB frames, one person box per frame) into 133 whole-body keypoints with their scores, in
pixels of the input frames; it may bring a person detector. Loaders check every model file (and its sha256)
before returning, so a wrong path fails before any video is decoded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from mgfm.common.digest import sha256_file


class PersonDetector(Protocol):
    def detect(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (n, 4) x0, y0, x1, y1 in pixels and their scores (n,) for one RGB frame."""

    def detect_batch(self, frames_rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``detect`` on each of several frames (N, H, W, 3), in one model run where the detector allows it."""


#: ``estimate(frames (n, H, W, 3) uint8 RGB, boxes (n, 4)) -> (xy (n, 133, 2), score (n, 133))``, float32.
Estimate = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]
#: ``prepare(frames, boxes) -> model input``: the CPU part of ``estimate`` (crops, normalisation), thread-safe.
Prepare = Callable[[np.ndarray, np.ndarray], object]
#: ``infer(model input) -> (xy, score)``: the rest; ``infer(prepare(f, b))`` equals ``estimate(f, b)`` exactly.
Infer = Callable[[object], tuple[np.ndarray, np.ndarray]]


@dataclass
class PoseBackend:
    """A loaded backend: its estimator, an optional person detector, and the pose file metadata it adds
    (backend, model, model_sha256, ...). A backend that can split ``estimate`` into ``prepare`` + ``infer``
    lets the extraction loop crop the next batch in worker threads while the model runs on this one."""

    estimate: Estimate
    meta: dict
    detector: PersonDetector | None = None
    prepare: Prepare | None = None
    infer: Infer | None = None


def require_file(path: Path, what: str, how: str) -> None:
    """Fail with what the file is and how to get it."""
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. {how}")


def verify_sha256(path: Path, expected: str, key: str) -> str:
    """sha256 of ``path``, checked against ``expected`` (full hash, or OpenMMLab's published >= 8-hex prefix)."""
    digest = sha256_file(path)
    if expected and not digest.startswith(expected.lower()):
        raise ValueError(f"{path}: sha256 {digest} does not match config key {key} ({expected})")
    return digest
