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
