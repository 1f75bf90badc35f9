"""Small inputs of the pose-stage tests: a synthetic video with its metadata JSON, and a stand-in detector."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
from onnx import TensorProto, helper


def write_video(path: Path, n: int = 40, w: int = 160, h: int = 120) -> Path:
    out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
    rng = np.random.default_rng(0)
    for i in range(n):
        frame = np.full((h, w, 3), 40, np.uint8)
        x = 40 + i
        frame[30:100, x:x + 30] = (rng.integers(100, 255, 3)).astype(np.uint8)
        out.write(frame)
    out.release()
    meta = {"video_id": path.stem, "frames": n, "fps": 25.0, "width": w, "height": h, "duration": n / 25}
    path.with_suffix(".json").write_text(json.dumps(meta))
    return path


def stand_in_detector(path: Path, boxes: list[list[float]]) -> Path:
    """A stand-in RTMDet export: ignores its input, always returns ``boxes`` (xyxy + score in 640x640 space)."""
    dets = np.asarray(boxes, np.float32).reshape(1, -1, 5)
    nodes = [
        helper.make_node("ReduceMax", ["input"], ["m"], keepdims=0),
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["dets_c", "z"], ["dets"]),
        helper.make_node("Identity", ["labels_c"], ["labels"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("dets_c", TensorProto.FLOAT, list(dets.shape), dets.ravel().tolist()),
             helper.make_tensor("labels_c", TensorProto.INT64, [1, dets.shape[1]], [0] * dets.shape[1])]
    graph = helper.make_graph(nodes, "det", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 640, 640])],
                              [helper.make_tensor_value_info("dets", TensorProto.FLOAT, list(dets.shape)),
                               helper.make_tensor_value_info("labels", TensorProto.INT64, [1, dets.shape[1]])],
                              inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.save(model, str(path))
    return path


def stand_in_raw_detector(path: Path, spec, cls_logits: np.ndarray, distances: np.ndarray) -> Path:
    """A stand-in of our RTMDet export (raw ``cls_logits`` (N, P, C), ``distances`` (N, P, 4) whatever the input,
    dynamic batch) with the sidecar JSON mgfm.pose.onnx_export writes (format rtmdet-raw, the spec, sha256)."""
    from mgfm.common.digest import sha256_file

    cls = np.asarray(cls_logits, np.float32)[None]
    dist = np.asarray(distances, np.float32)[None]
    nodes = [
        helper.make_node("ReduceMax", ["input"], ["m4"], axes=[1, 2, 3], keepdims=1),  # (N, 1, 1, 1)
        helper.make_node("Squeeze", ["m4", "last"], ["m"]),  # (N, 1, 1): broadcasts against (1, P, C)
        helper.make_node("Mul", ["m", "zero"], ["z"]),
        helper.make_node("Add", ["z", "cls_c"], ["cls_logits"]),
        helper.make_node("Add", ["z", "dist_c"], ["distances"]),
    ]
    inits = [helper.make_tensor("zero", TensorProto.FLOAT, [], [0.0]),
             helper.make_tensor("last", TensorProto.INT64, [1], [3]),
             helper.make_tensor("cls_c", TensorProto.FLOAT, list(cls.shape), cls.ravel().tolist()),
             helper.make_tensor("dist_c", TensorProto.FLOAT, list(dist.shape), dist.ravel().tolist())]
    w, h = spec.input_size
    graph = helper.make_graph(
        nodes, "det", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["batch", 3, h, w])],
        [helper.make_tensor_value_info("cls_logits", TensorProto.FLOAT, ["batch", cls.shape[1], cls.shape[2]]),
         helper.make_tensor_value_info("distances", TensorProto.FLOAT, ["batch", dist.shape[1], 4])], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    side = {"kind": "detector", "format": "rtmdet-raw", "name": "stand-in", **spec.to_sidecar(),
            "sha256": sha256_file(path)}
    path.with_suffix(".json").write_text(json.dumps(side))
    return path


def render_normalised_demo_videos(videos: Path, demo: dict, n_frames: int) -> list[str]:
    """The first ``n_frames`` frames of the demo corpus videos of ``demo``, drawn and encoded (25 fps H.264) by the
    demo corpus' own renderer and writer into ``videos``, standing in for the download stage's normalised copies
    and their probed metadata. Returns the video ids."""
    from mgfm.demo.corpus import simulate_video
    from mgfm.demo.encode import VideoWriter
    from mgfm.demo.plan import FPS, build_plan, demo_settings

    cfg = demo_settings(demo)
    videos.mkdir(parents=True, exist_ok=True)
    ids = []
    for plan in build_plan(cfg):
        _, shot = simulate_video(cfg, plan)
        frames = np.empty((n_frames, cfg["height"], cfg["width"], 3), np.uint8)
        for i in range(n_frames):
            shot.frame(i, frames[i])
        with VideoWriter(videos / f"{plan.video_id}.mp4", cfg["width"], cfg["height"], FPS) as writer:
            writer.write(frames)
        meta = {"video_id": plan.video_id, "frames": n_frames, "fps": float(FPS), "width": cfg["width"],
                "height": cfg["height"]}
        (videos / f"{plan.video_id}.json").write_text(json.dumps(meta))
        ids.append(plan.video_id)
    return ids
