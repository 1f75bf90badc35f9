"""The annotated video of a spotted video (``mgfm infer --annotated-video``): the normalised video with the
upper-body skeleton the models read and the current instance's label drawn on every frame, encoded with ffmpeg.

Frames are decoded once in order (decord), drawn with OpenCV and piped to ffmpeg as raw RGB; ffmpeg is started
with an argument list (no shell), and the mp4 is written atomically.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_path
from mgfm.core.layout import BONES, UPPER_BODY

#: Keypoints scoring below this are not drawn.
MIN_SCORE = 0.3
_BONE_COLOUR = (80, 220, 255)
_JOINT_COLOUR = (255, 200, 40)


def frame_labels(inst: pd.DataFrame, n_frames: int) -> list[str]:
    """Per frame, the most confident instance covering it as "class (confidence)", "" where none does."""
    labels = [""] * n_frames
    best = np.full(n_frames, -1.0)
    for row in inst.itertuples(index=False):
        a, z = max(int(row.start_frame), 0), min(int(row.end_frame), n_frames - 1)
        for f in np.flatnonzero(best[a:z + 1] < float(row.confidence)) + a:
            best[f] = float(row.confidence)
            labels[f] = f"{row.class_name} ({float(row.confidence):.2f})"
    return labels


def draw_frame(img: np.ndarray, xy: np.ndarray, score: np.ndarray, label: str) -> np.ndarray:
    """The frame with the upper-body skeleton (133-keypoint ``xy``, ``score``) and ``label`` drawn on it."""
    out = np.ascontiguousarray(img)
    sub = np.asarray(UPPER_BODY)
    pts, ok = xy[sub], score[sub] >= MIN_SCORE
    for c, p in BONES:
        if ok[c] and ok[p]:
            cv2.line(out, tuple(int(v) for v in pts[c]), tuple(int(v) for v in pts[p]), _BONE_COLOUR, 1, cv2.LINE_AA)
    for j in np.flatnonzero(ok):
        cv2.circle(out, tuple(int(v) for v in pts[j]), 2, _JOINT_COLOUR, -1, cv2.LINE_AA)
    if label:
        scale = max(out.shape[0] / 480, 0.4)
        (w, h), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        cv2.rectangle(out, (4, 4), (12 + w, 12 + h + base), (0, 0, 0), -1)
        cv2.putText(out, label, (8, 8 + h), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)
    return out


def write_annotated_video(video: str | os.PathLike, xy: np.ndarray, score: np.ndarray, inst: pd.DataFrame,
                          fps: float, out: str | os.PathLike, crf: int = 23) -> Path:
    """Encode ``out`` (mp4, H.264): every frame of ``video`` with its skeleton and current label."""
    from mgfm.ingest.video import ffmpeg_exe, open_reader

    reader = open_reader(video, num_threads=1)
    n = len(reader)
    if n != len(xy):
        raise ValueError(f"{video}: {n} frames, its pose file has {len(xy)}")
    h, w = reader[0].shape[:2]
    reader.seek(0)
    labels = frame_labels(inst, n)
    out = Path(out)
    with atomic_path(out) as tmp:
        cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24",
               "-s", f"{w}x{h}", "-r", f"{fps:g}", "-i", "pipe:0", "-c:v", "libx264", "-pix_fmt", "yuv420p",
               "-crf", str(int(crf)), "-f", "mp4", str(tmp)]
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for f in range(n):
                proc.stdin.write(draw_frame(reader.next().asnumpy(), xy[f], score[f], labels[f]).tobytes())
        finally:
            proc.stdin.close()
            err = proc.stderr.read().decode(errors="replace")
            rc = proc.wait()
        if rc != 0:
            raise RuntimeError(f"{out}: ffmpeg failed ({rc}): {err.strip()[-500:]}")
    return out
