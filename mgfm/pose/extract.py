"""Whole-body pose extraction of one video into the pose Parquet file (the ``pose`` stage's public function).

Order of work: check every model file (and checksum) before decoding anything, open the video (clear error if
it is corrupt or empty), then stream batches of frames: person boxes (whole frame, or detector every N frames
with keypoint-box tracking in between), batched top-down estimation, write. The output is atomic.

Throughput: a decode thread fills a bounded queue (``prefetch`` batches) and, with whole-frame boxes, worker
threads crop and normalise those batches ahead, so the model runs on full batches back to back and the stage is
bound by decoding or by the model, not by Python in between. Memory stays bounded by the queue, whatever the
video's length.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import numpy as np

from mgfm.common.logs import Progress
from mgfm.config.sections import from_partial
from mgfm.core.layout import NUM_KEYPOINTS
from mgfm.pose.memory import limit_malloc_arenas
from mgfm.pose.backends.base import PersonDetector, PoseBackend
from mgfm.pose.backends.registry import load_backend
from mgfm.pose.params import PoseParams
from mgfm.core.pose_store import PoseFrames, PoseWriter
from mgfm.pose.tracking import PrimaryPersonTracker
from mgfm.pose.video_reader import VideoBatches, background, read_video_meta

log = logging.getLogger(__name__)


def default_workers() -> int:
    """Crop/normalise threads beside the decode thread: half the usable cores, 1 to 4 (1 on a 2-core box)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(4, cores // 2))


def _pipeline(video: VideoBatches, backend: PoseBackend, batch_size: int, prefetch: int, pool: ThreadPoolExecutor | None
              ) -> Iterator[tuple[int, np.ndarray, Future | None]]:
    """``(start, frames, prepared model input or None)`` per batch, decoded (and cropped) ahead of the consumer.

    Whole-frame boxes are known before the model runs, so without a detector the crops of the next batches are
    made in ``pool`` while the model runs on this one; with a detector the boxes depend on the previous
    keypoints (tracking), so only decoding runs ahead.
    """
    W, H = video.width, video.height

    def produce():
        for start, frames in video.batches(batch_size):
            fut = None
            if pool is not None:
                fut = pool.submit(backend.prepare, frames, np.tile(np.array([0, 0, W, H], np.float32), (len(frames), 1)))
            yield start, frames, fut

    return background(produce(), prefetch)


def track_batch(frames: np.ndarray, start: int, tracker: PrimaryPersonTracker, detector: PersonDetector,
                interval: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (n, 4), detection scores (n,) and presence (n,) of the primary person on a batch of frames.

    Frame by frame, as the tracker would go: a frame is detected when its index is a multiple of ``interval`` or
    when the track is lost, and otherwise keeps the track's box. The detections themselves run batched: when a
    frame needs one, it is detected together with the later frames of the batch that are due anyway, and once a
    lost track's detection found nobody (a cut to a scene without the person) with all the remaining frames,
    which then each need one. Detection results do not depend on the tracker, so the boxes are the ones
    frame-by-frame detection gives.
    """
    n = len(frames)
    boxes = np.zeros((n, 4), np.float32)
    det_score = np.zeros(n, np.float32)
    present = np.zeros(n, bool)
    due = [i for i in range(n) if (start + i) % interval == 0]
    detections: dict[int, tuple[np.ndarray, np.ndarray]] = {}
    lost_and_empty = False
    for i in range(n):
        if (start + i) % interval == 0 or tracker.box is None:
            if i not in detections:
                todo = list(range(i, n)) if lost_and_empty else [i] + [j for j in due if j > i]
                todo = [j for j in todo if j not in detections]
                detections.update(zip(todo, detector.detect_batch(frames[todo])))
            lost = tracker.box is None
            found = tracker.select(*detections[i])
            lost_and_empty = lost and not found
        if tracker.box is not None:
            boxes[i], det_score[i], present[i] = tracker.box, tracker.det_score, True
    return boxes, det_score, present


def estimate_video(video: VideoBatches, backend: PoseBackend, p: PoseParams, writer: PoseWriter,
                   desc: str = "pose", prefetch: int = 2, workers: int | None = None) -> None:
    """Stream the video through the backend into ``writer``; one primary person per frame.

    Decoding (and, without a detector, cropping) runs ``prefetch`` batches ahead in background threads, so the
    model always gets a full batch without waiting; ``prefetch=0`` runs everything in this thread. The result
    is the same bit for bit either way: every batch is computed by the same functions on the same frames.
    """
    W, H = video.width, video.height
    tracker = PrimaryPersonTracker(W, H)
    d = p.detector
    split = backend.detector is None and backend.prepare is not None and backend.infer is not None and prefetch > 0
    pool = ThreadPoolExecutor(workers or default_workers(), thread_name_prefix="pose-crop") if split else None
    bar = Progress(video.n_frames, desc, unit="frames")
    try:
        for start, frames, prepared in _pipeline(video, backend, p.batch_size, prefetch, pool):
            n = len(frames)
            boxes = np.zeros((n, 4), np.float32)
            det_score = np.zeros(n, np.float32)
            present = np.zeros(n, bool)
            if backend.detector is None:
                boxes[:] = (0, 0, W, H)  # mmpose's inference_topdown default: the whole image
                det_score[:] = 1.0
                present[:] = True
            else:
                boxes[:], det_score[:], present[:] = track_batch(frames, start, tracker, backend.detector, d.interval)
            xy = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
            score = np.zeros((n, NUM_KEYPOINTS), np.float32)
            if prepared is not None:
                xy[:], score[:] = backend.infer(prepared.result())
            elif present.any():
                kp, sc = backend.estimate(frames[present], boxes[present])
                xy[present], score[present] = kp, sc
            if backend.detector is not None:
                if present[-1]:
                    tracker.follow(xy[-1], score[-1], d.track_keypoint_threshold)
                else:
                    tracker.box = None
            writer.write(PoseFrames(frame=np.arange(start, start + n, dtype=np.int32), bbox=boxes,
                                    det_score=det_score, xy=xy, score=score))
            bar.update(n)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()


def extract_pose(video: str | os.PathLike, meta: str | os.PathLike, out: str | os.PathLike,
                 params: dict | PoseParams | None = None, threads: int = 1, prefetch: int = 2,
                 workers: int | None = None) -> dict:
    """Estimate the primary person's 133 keypoints on every frame of ``video``; write ``out`` atomically.

    ``meta`` is the probed metadata JSON of the normalised video (fps, width, height, frames). ``threads`` is
    the model's intra-op thread count, ``prefetch`` the batches decoded ahead (0: no background threads),
    ``workers`` the crop threads (default ``default_workers()``). Returns the file metadata written.
    """
    p = from_partial(PoseParams, "pose", params)
    limit_malloc_arenas()
    video, meta, out = Path(video), Path(meta), Path(out)
    if not video.is_file():
        raise FileNotFoundError(f"video not found: {video}")
    video_meta = read_video_meta(meta)
    backend = load_backend(p, threads)  # every model file is checked before any decoding
    if p.backend == "onnx" and backend.detector is None and not video_meta.get("synthetic", False):
        log.warning("%s: no person detector (config key pose.detector.model is empty), so every frame's box is the "
                    "whole frame: on real video a title card, cartoon or bystander can then be scored as a confident "
                    "face. Real data needs pose.detector (the paper config has one).", video)
    if p.backend == "onnx" and not p.model and not video_meta.get("synthetic", False):
        log.warning("%s: the demo pose model (config key pose.model is empty) was trained on the synthetic demo "
                    "renders only; on real video its keypoints are not to be trusted. Set pose.model to a real "
                    "whole-body model (docs/own-videos.md).", video)
    reader = VideoBatches(video, threads=1)
    if (reader.width, reader.height) != (int(video_meta["width"]), int(video_meta["height"])):
        raise ValueError(f"video {video} is {reader.width}x{reader.height} but {meta} says "
                         f"{video_meta['width']}x{video_meta['height']}")
    file_meta = {**backend.meta, "video_id": video_meta.get("video_id", video.stem),
                 "fps": float(video_meta["fps"]), "width": reader.width, "height": reader.height,
                 "batch_size": p.batch_size, "bbox_padding": p.bbox_padding}
    log.info("%s: %d frames %dx%d, backend %s model %s", video, reader.n_frames, reader.width, reader.height,
             p.backend, file_meta["model"])
    with PoseWriter(out, file_meta) as writer:
        estimate_video(reader, backend, p, writer, desc=f"pose {video.stem}", prefetch=prefetch, workers=workers)
    file_meta["n_frames"] = writer.n_frames
    return file_meta
