"""The pose stage's view of a normalised video: its probed metadata JSON, and frame batches.

Decoding is ``mgfm.data.video``'s batched reader (decord, sequential, one batch of frames in memory, so a
40-minute video costs the same memory as a 20-second one); this module adds the checks that make a missing,
empty or undecodable video fail before any model runs, with errors that name the file.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

REQUIRED_META = ("frames", "fps", "width", "height")


def read_video_meta(path: str | os.PathLike) -> dict:
    """The probed metadata JSON written beside a normalised video; errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video metadata not found: {path}")
    try:
        meta = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err})") from err
    missing = [k for k in REQUIRED_META if k not in meta]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    return meta


class VideoBatches:
    """Open a video and iterate ``(first_frame_index, frames (n, H, W, 3) uint8 RGB)`` batches.

    Reading goes through ``mgfm.data.video`` (decord, sequential decode, one batch in memory); this class adds
    the checks that make a corrupt or empty file fail before any work, naming the video.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        from mgfm.data.video import open_reader

        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"video not found: {self.path}")
        if self.path.stat().st_size == 0:
            raise ValueError(f"video {self.path} is empty (0 bytes)")
        self.threads = max(1, threads)
        try:
            reader = open_reader(self.path, num_threads=self.threads)
            self.n_frames = len(reader)
            if self.n_frames == 0:
                raise ValueError(f"video {self.path} has no frames")
            first = reader[0].shape
        except (ValueError, FileNotFoundError):
            raise
        except Exception as err:  # decord's own errors for undecodable input
            raise ValueError(f"video {self.path} cannot be decoded: {err}") from err
        self.height, self.width = int(first[0]), int(first[1])
        self.fps = float(reader.get_avg_fps())
        del reader

    def batches(self, batch_size: int) -> Iterator[tuple[int, np.ndarray]]:
        from mgfm.data.video import iter_frames

        try:
            for idx, frames in iter_frames(self.path, batch_size=batch_size, num_threads=self.threads):
                yield int(idx[0]), frames
        except (ValueError, FileNotFoundError):
            raise
        except Exception as err:
            raise ValueError(f"video {self.path}: decoding failed: {err}") from err
