"""RGB window clips for spotting, built exactly as the packed RGB datasets build their clips
(``mgfm.packs.rgb``: frame sampling ``sample_indices``, one square person box per clip ``frame_boxes`` +
``clip_boxes``, ``crop_resize``), read from the normalised video in one forward pass.

Why one pass: sliding windows overlap heavily, so a window-by-window read would decode most frames many times
(and seek for each). Here every needed frame is decoded once, in order (``read_needed_frames``), and handed to
each window that samples it; a window is complete after its last sampled frame and leaves in batches, so memory
holds only the windows open at the decoding position plus one batch.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np


def window_crops(pose_path: str | os.PathLike, starts: np.ndarray, ends: np.ndarray, params: dict,
                 image_size: tuple[int, int]) -> np.ndarray:
    """Square crop box (n, 4) per window from the video's pose file, as the packed RGB dataset crops a clip."""
    from mgfm.core.pose_store import read_pose
    from mgfm.packs.rgb import clip_boxes, frame_boxes

    pose = read_pose(pose_path, columns=["frame", "bbox", "det_score", "x", "y", "score"])
    boxes, ok = frame_boxes(pose.xy, pose.score, pose.bbox, pose.det_score, params["box_source"],
                            float(params["box_min_score"]), float(params.get("upper_body_box", 0.0)))
    crops, _ = clip_boxes(boxes, ok, starts, ends, float(params["margin"]), image_size, params["crop"],
                          params["box_source"])
    return crops


def stream_clips(frames: Iterator[tuple[int, np.ndarray]], idx: np.ndarray, crops: np.ndarray, size: int,
                 batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(window positions, uint8 clips (b, T, S, S, 3)) as windows complete; ``frames`` yields (index, RGB frame)
    for the sorted unique indices of ``idx`` (n, T), each once."""
    from mgfm.packs.rgb import crop_resize

    n, t_len = idx.shape
    flat = idx.reshape(-1)
    order = np.argsort(flat, kind="stable")
    needed, first = np.unique(flat[order], return_index=True)
    bounds = np.append(first, len(flat))
    last = idx.max(axis=1)
    done_order = np.argsort(last, kind="stable")        # windows in the order they complete
    open_clips: dict[int, np.ndarray] = {}
    ready: list[int] = []
    nxt, k = 0, -1
    for k, (f, img) in enumerate(frames):
        if f != needed[k]:
            raise ValueError(f"frame reader gave frame {f}, expected {int(needed[k])}")
        for pos in order[bounds[k]:bounds[k + 1]].tolist():
            c, t = divmod(pos, t_len)
            clip = open_clips.get(c)
            if clip is None:
                clip = open_clips[c] = np.empty((t_len, size, size, 3), np.uint8)
            clip[t] = crop_resize(img, crops[c], size)
        while nxt < n and last[done_order[nxt]] <= f:
            ready.append(int(done_order[nxt]))
            nxt += 1
        while len(ready) >= batch_size:
            rows, ready = ready[:batch_size], ready[batch_size:]
            yield np.asarray(rows), np.stack([open_clips.pop(r) for r in rows])
    if nxt < n:
        got = int(needed[k]) if k >= 0 else None
        raise ValueError(f"frame reader stopped after frame {got}; the windows need frames up to {int(last.max())}")
    if ready:
        yield np.asarray(ready), np.stack([open_clips.pop(r) for r in ready])


def rgb_window_batches(video: str | os.PathLike, pose_path: str | os.PathLike, starts: np.ndarray, ends: np.ndarray,
                       params: dict, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Batches (window positions into ``starts``, uint8 (b, T, S, S, 3)) of the RGB clips of the inclusive frame
    intervals ``starts..ends`` of ``video``, read forward once."""
    from mgfm.ingest.video import open_reader
    from mgfm.packs.rgb import read_needed_frames, sample_indices

    video = Path(video)
    if not video.is_file():
        raise FileNotFoundError(f"{video}: video not found (the RGB member reads the window frames from it)")
    starts, ends = np.asarray(starts, np.int64), np.asarray(ends, np.int64)
    if len(starts) == 0:
        return
    reader = open_reader(video, num_threads=1)
    first = reader[0].shape
    crops = window_crops(pose_path, starts, ends, params, (int(first[1]), int(first[0])))
    idx = sample_indices(starts, ends, int(params["num_frames"]))
    needed = np.unique(idx)
    yield from stream_clips(read_needed_frames(reader, video, needed), idx, crops, int(params["size"]), batch_size)
