"""Whole-body pose extraction of one video into the pose Parquet file (the ``pose`` stage's public function).

Order of work: check every model file (and checksum) before decoding anything, open the video (clear error if
it is corrupt or empty), then stream batches of frames: person boxes (whole frame, or detector every N frames
with keypoint-box tracking in between), batched top-down estimation, write. The output is atomic.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from mgfm.common.logs import Progress
from mgfm.pose.checksum import sha256_file
from mgfm.pose.layout import NUM_KEYPOINTS
from mgfm.pose.memory import limit_malloc_arenas
from mgfm.pose.params import DEMO_MODEL, PoseParams
from mgfm.pose.store import PoseFrames, PoseWriter
from mgfm.pose.tracking import PrimaryPersonTracker
from mgfm.pose.video_reader import VideoBatches, read_video_meta

log = logging.getLogger(__name__)


def _require_file(path: Path, what: str, how: str) -> None:
    if not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}. {how}")


def _verify(path: Path, expected: str, key: str) -> str:
    """sha256 of ``path``, checked against ``expected`` (full hash, or OpenMMLab's published >= 8-hex prefix)."""
    digest = sha256_file(path)
    if expected and not digest.startswith(expected.lower()):
        raise ValueError(f"{path}: sha256 {digest} does not match config key {key} ({expected})")
    return digest


class _Backend:
    """A loaded backend: ``estimate(frames, boxes)``, optional ``detector``, and the file metadata it adds."""

    estimate = None
    detector = None
    meta: dict = {}


def load_onnx_backend(p: PoseParams, threads: int) -> _Backend:
    from mgfm.pose.backends.onnx_backend import (OnnxPersonDetector, OnnxPoseEstimator, PoseModelSpec,
                                                 make_session, read_sidecar)

    model = p.model_path()
    how = ("Train and export the shipped demo model with `python -m mgfm.pose.demo_model.train`."
           if model == DEMO_MODEL else
           "Set config key pose.model to a local RTMPose/RTMW whole-body ONNX export (mmdeploy or rtmlib).")
    _require_file(model, "pose model", how)
    side = read_sidecar(model)
    if p.detector.model:
        _require_file(Path(p.detector.model), "person detector model",
                      "Set config key pose.detector.model to a local RTMDet ONNX export, or to '' for whole frames.")
    digest = _verify(model, p.model_sha256 or side.get("sha256", ""), "pose.model_sha256")
    session = make_session(model, threads, p.device)
    input_size = (p.input_size or OnnxPoseEstimator.input_size_of(session) or side.get("input_size"))
    if not input_size:
        raise ValueError(f"{model}: input size unknown (dynamic shape, no sidecar JSON): set config key pose.input_size")
    spec = PoseModelSpec(
        input_size=(int(input_size[0]), int(input_size[1])),
        split_ratio=float(p.split_ratio or side.get("split_ratio", 2.0)),
        mean=tuple(p.mean or side.get("mean", PoseModelSpec.mean)),
        std=tuple(p.std or side.get("std", PoseModelSpec.std)),
        color=p.color or side.get("color", "rgb"),
        padding=p.bbox_padding,
    )
    backend = _Backend()
    backend.estimate = OnnxPoseEstimator(session, spec).estimate
    backend.meta = {"backend": "onnx", "model": side.get("name", model.stem), "model_sha256": digest,
                    "input_size": list(spec.input_size), "providers": session.get_providers()}
    if p.detector.model:
        d = p.detector
        det_path = Path(d.model)
        backend.meta["detector"] = det_path.stem
        backend.meta["detector_sha256"] = sha256_file(det_path)
        backend.detector = OnnxPersonDetector(make_session(det_path, threads, p.device), tuple(d.input_size),
                                              d.mean, d.std, d.color, d.score_threshold)
    return backend


def load_backend(p: PoseParams, threads: int) -> _Backend:
    if p.backend == "onnx":
        return load_onnx_backend(p, threads)
    from mgfm.pose.backends.mmpose_backend import load_mmpose_backend

    return load_mmpose_backend(p, threads)


def estimate_video(video: VideoBatches, backend: _Backend, p: PoseParams, writer: PoseWriter,
                   desc: str = "pose") -> None:
    """Stream the video through the backend into ``writer``; one primary person per frame."""
    W, H = video.width, video.height
    tracker = PrimaryPersonTracker(W, H)
    d = p.detector
    bar = Progress(video.n_frames, desc, unit="frames")
    for start, frames in video.batches(p.batch_size):
        n = len(frames)
        boxes = np.zeros((n, 4), np.float32)
        det_score = np.zeros(n, np.float32)
        present = np.zeros(n, bool)
        if backend.detector is None:
            boxes[:] = (0, 0, W, H)  # mmpose's inference_topdown default: the whole image
            det_score[:] = 1.0
            present[:] = True
        else:
            for i in range(n):
                if (start + i) % d.interval == 0 or tracker.box is None:
                    tracker.select(*backend.detector.detect(frames[i]))
                if tracker.box is not None:
                    boxes[i], det_score[i], present[i] = tracker.box, tracker.det_score, True
        xy = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
        score = np.zeros((n, NUM_KEYPOINTS), np.float32)
        if present.any():
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
    bar.close()


def extract_pose(video: str | os.PathLike, meta: str | os.PathLike, out: str | os.PathLike,
                 params: dict | PoseParams | None = None, threads: int = 1) -> dict:
    """Estimate the primary person's 133 keypoints on every frame of ``video``; write ``out`` atomically.

    ``meta`` is the probed metadata JSON of the normalised video (fps, width, height, frames). Returns the
    file metadata written.
    """
    p = params if isinstance(params, PoseParams) else PoseParams.from_dict(params)
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
        estimate_video(reader, backend, p, writer, desc=f"pose {video.stem}")
    file_meta["n_frames"] = writer.n_frames
    return file_meta
