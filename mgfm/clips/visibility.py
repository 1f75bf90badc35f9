"""Face-anchor confidence per frame, read from a pose file's score column only, plus the checks that make a
video unusable for sampling (a logged reason and zero clips, never a failed stage)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from mgfm.core.layout import FACE_ANCHORS
from mgfm.core.pose_store import read_pose_meta, read_scores


@dataclass
class AnchorTrack:
    """The smallest face-anchor score per frame (NaN counts as invisible), the video's fps, and why it is unusable."""

    video_id: str
    min_score: np.ndarray  # (n_frames,) float32
    fps: float
    reason: str = ""  # empty when the video can be sampled

    def visible(self, tau: float) -> np.ndarray:
        """Frames where all five anchors are >= tau (Eq. 9's per-frame indicator)."""
        return self.min_score >= tau


def frame_gaps(frames: np.ndarray, expected: int | None) -> str:
    """Why a pose file's frame column is not exactly 0..n-1 (empty string when it is)."""
    n = len(frames)
    if expected is not None and n != expected:
        return f"pose has {n} frames but the video has {expected}"
    if n == 0:
        return "pose has no frames"
    if not np.array_equal(frames, np.arange(n, dtype=frames.dtype)):
        bad = int(np.flatnonzero(frames != np.arange(n))[0])
        return f"pose frames are not 0..{n - 1} (first mismatch at row {bad}: frame {int(frames[bad])})"
    return ""


def video_frame_count(video_meta: str | os.PathLike | None) -> int | None:
    """Frame count from the probed video metadata JSON, or None when no such file is given."""
    if video_meta is None:
        return None
    path = Path(video_meta)
    if not path.is_file():
        return None
    return int(json.loads(path.read_text())["frames"])


def load_anchor_track(video_id: str, pose_path: str | os.PathLike, expected_frames: int | None = None) -> AnchorTrack:
    """Read one video's face-anchor scores; a missing pose file is an error, bad frames only a reason."""
    pose_path = Path(pose_path)
    if not pose_path.is_file():
        raise FileNotFoundError(f"video {video_id}: pose file not found: {pose_path}")
    try:
        meta = read_pose_meta(pose_path)
        frames, scores = read_scores(pose_path, FACE_ANCHORS)
    except (OSError, pa.ArrowException) as err:
        raise ValueError(f"video {video_id}: cannot read pose file {pose_path}: {err}") from err
    fps = float(meta.get("fps") or 0)
    min_score = np.nan_to_num(scores.min(axis=1) if len(scores) else np.zeros(0, np.float32), nan=-1.0)
    reason = frame_gaps(frames, expected_frames)
    if not reason and fps <= 0:
        reason = f"pose metadata has no valid fps ({meta.get('fps')!r})"
    return AnchorTrack(video_id, min_score.astype(np.float32), fps, reason)
