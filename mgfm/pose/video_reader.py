"""The pose stage's view of a normalised video: its probed metadata JSON, and frame batches.

Decoding is ``mgfm.ingest.video``'s batched reader (decord, sequential, a bounded number of frame batches in
memory, so a 40-minute video costs the same memory as a 20-second one); this module adds the checks that make a
missing, empty or undecodable video fail before any model runs, with errors that name the file, and
``background``: a bounded prefetch queue fed by a decode thread, so decoding the next batch overlaps the model
running on this one (decord, cv2 and onnxruntime release the GIL while they work).
"""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TypeVar

import numpy as np

REQUIRED_META = ("frames", "fps", "width", "height")
T = TypeVar("T")
_END = object()


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

    Reading goes through ``mgfm.ingest.video`` (decord, sequential decode, one batch in memory); this class adds
    the checks that make a corrupt or empty file fail before any work, naming the video.
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1) -> None:
        from mgfm.ingest.video import open_reader

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
        from mgfm.ingest.video import iter_frames

        try:
            for idx, frames in iter_frames(self.path, batch_size=batch_size, num_threads=self.threads):
                yield int(idx[0]), frames
        except (ValueError, FileNotFoundError):
            raise
        except Exception as err:
            raise ValueError(f"video {self.path}: decoding failed: {err}") from err


def background(items: Iterable[T], depth: int, name: str = "pose-decode") -> Iterator[T]:
    """Yield ``items`` in order while a daemon thread produces them, at most ``depth`` ahead (``depth`` < 1: inline).

    The queue bound is what keeps memory flat: the producer blocks once ``depth`` items wait. An exception in
    the producer is raised here, in the consumer, at the point where its item would have come; a consumer that
    stops early (break, error) stops the producer before this generator returns.
    """
    if depth < 1:
        yield from items
        return
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((None, item)):
                    return
        except BaseException as err:  # handed to the consumer, raised there
            put((err, None))
            return
        put((None, _END))

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            err, item = q.get()
            if err is not None:
                raise err
            if item is _END:
                return
            yield item
    finally:
        stop.set()
        thread.join()
