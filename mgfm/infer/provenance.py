"""What a spotting page says it was made with: the pose model and detector that made the video's keypoints (read
from its pose file, with their sha256), the dataset the classifiers were trained on (recorded at calibration),
and, when the shipped demo pose model ran on a video that is not one of the demo's renders, that this is the
likely reason for an empty or poor timeline, with the video's own face-anchor scores as the evidence."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import numpy as np

#: the page's banner when the demo pose model ran on a video that is not a demo render
DEMO_POSE_BANNER = "made with the demo pose model, trained on synthetic renders: real faces are not found"


@functools.lru_cache(maxsize=1)
def demo_model_sha256() -> str:
    """sha256 of the shipped demo pose model (package data)."""
    from mgfm.common.digest import sha256_file
    from mgfm.pose.params import DEMO_MODEL

    return sha256_file(DEMO_MODEL) if DEMO_MODEL.is_file() else ""


def pose_identity(pose_meta: dict) -> dict:
    """The pose model and detector named by a pose file's metadata: {model: {name, sha256}, detector: {name,
    sha256} or None (whole-frame boxes), backend, demo_model}."""
    model = {"name": str(pose_meta.get("model", "unknown")), "sha256": str(pose_meta.get("model_sha256", ""))}
    if pose_meta.get("model_checkpoint_sha256"):
        model["checkpoint_sha256"] = str(pose_meta["model_checkpoint_sha256"])
    detector = None
    if pose_meta.get("detector"):
        detector = {"name": str(pose_meta["detector"]), "sha256": str(pose_meta.get("detector_sha256", ""))}
    demo = bool(model["sha256"]) and model["sha256"] == demo_model_sha256()
    return {"backend": str(pose_meta.get("backend", "")), "model": model, "detector": detector, "demo_model": demo}


def is_demo_render(video: str | os.PathLike | None) -> bool:
    """Whether the normalised ``video`` is one of the demo corpus's renders: its metadata beside it
    (``<video>.json``, written by the ingest stage) says ``synthetic``. A file given to ``mgfm infer`` is not."""
    if video is None:
        return False
    meta = Path(video).with_suffix(".json")
    try:
        return bool(json.loads(meta.read_text()).get("synthetic", False))
    except (OSError, ValueError):
        return False


def face_evidence(face: np.ndarray, tau: float) -> dict:
    """The video's face-anchor scores (the smallest of the five anchors per frame) against tau."""
    face = np.asarray(face, np.float64)
    face = face[np.isfinite(face) & (face >= 0)]
    if not len(face):
        return {"frames": 0}
    return {"frames": int(len(face)), "max": float(face.max()), "median": float(np.median(face)),
            "p95": float(np.percentile(face, 95)), "below_tau_pct": float(100 * np.mean(face < tau))}


def likely_cause(reason: str, identity: dict, demo_render: bool, face: np.ndarray, tau: float) -> str:
    """Why the timeline is empty or poor, when the data say it: the demo pose model on a real video."""
    if not identity["demo_model"] or demo_render:
        return ""
    ev = face_evidence(face, tau)
    if not ev["frames"]:
        return ""
    scores = (f"its face-anchor scores on this video reach at most {ev['max']:.2f} (median {ev['median']:.2f}) and "
              f"stay below tau {tau:g} on {ev['below_tau_pct']:.0f}% of the frames")
    return (f"likely cause: the demo pose model, trained on synthetic renders, does not find real faces: {scores}. "
            "Spot with a real pose model: mgfm infer --pose-preset rtmw-x (docs/infer.md)")
