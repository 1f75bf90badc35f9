"""The annotated video: the current label per frame is the most confident covering instance, and the mp4 has
every frame of the source with the drawing on it."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from mgfm.core.layout import NUM_KEYPOINTS, UPPER_BODY
from mgfm.ingest.video import ffmpeg_exe, open_reader, probe_video
from mgfm.infer.annotate import draw_frame, frame_labels, write_annotated_video


def _inst(rows):
    return pd.DataFrame(rows, columns=["start_frame", "end_frame", "class_name", "confidence"])


def test_frame_labels_take_the_most_confident_covering_instance():
    labels = frame_labels(_inst([(2, 6, "a", 0.3), (5, 9, "b", 0.6), (20, 30, "c", 0.9)]), 12)
    assert labels[:2] == ["", ""] and labels[2:5] == ["a (0.30)"] * 3
    assert labels[5:10] == ["b (0.60)"] * 5 and labels[10:] == ["", ""]


def test_draw_frame_draws_only_confident_keypoints():
    img = np.zeros((48, 64, 3), np.uint8)
    xy = np.full((NUM_KEYPOINTS, 2), 30.0)
    score = np.zeros(NUM_KEYPOINTS)
    assert not draw_frame(img.copy(), xy, score, "").any()
    score[list(UPPER_BODY)[:2]] = 1.0
    assert draw_frame(img.copy(), xy, score, "").any()


@pytest.mark.slow
def test_annotated_video_has_every_frame_and_the_label(tmp_path):
    src = tmp_path / "src.mp4"
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "color=c=gray:s=64x48:d=2:r=25", "-pix_fmt", "yuv420p", str(src)], check=True)
    n = probe_video(src)["frames"]
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 48, (n, NUM_KEYPOINTS, 2))
    score = np.ones((n, NUM_KEYPOINTS))
    out = write_annotated_video(src, xy, score, _inst([(0, 10, "touch", 0.8)]), 25.0, tmp_path / "a.mp4")
    assert probe_video(out)["frames"] == n and not list(tmp_path.glob(".*part*"))
    frames = open_reader(out)
    assert np.abs(frames[0].asnumpy().astype(int) - 128).max() > 60            # drawn on
    with pytest.raises(ValueError, match="its pose file has"):
        write_annotated_video(src, xy[:-1], score[:-1], _inst([]), 25.0, tmp_path / "b.mp4")
