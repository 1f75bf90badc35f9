"""Export a SimCC network to ONNX (dynamic batch) plus the sidecar JSON the onnx backend reads."""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

from mgfm.common.atomic import atomic_path
from mgfm.common.digest import sha256_file
from mgfm.pose.preprocess import RTMPOSE_MEAN, RTMPOSE_STD


def export_onnx(model: torch.nn.Module, path: str | os.PathLike, name: str, extra: dict | None = None) -> dict:
    """Write ``path`` (.onnx, opset 17, inputs ``input`` (N, 3, h, w), outputs ``simcc_x``, ``simcc_y``) and
    ``path.json`` with name, input_size (w, h), split_ratio, mean, std, color, sha256. Returns the sidecar."""
    path = Path(path)
    w, h = model.input_size
    model = model.eval()
    dummy = torch.zeros(1, 3, h, w)
    with atomic_path(path) as tmp:
        torch.onnx.export(model, (dummy,), str(tmp), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["simcc_x", "simcc_y"],
                          dynamic_axes={"input": {0: "batch"}, "simcc_x": {0: "batch"}, "simcc_y": {0: "batch"}})
    side = {"name": name, "input_size": [w, h], "split_ratio": model.split_ratio, "num_keypoints": model.num_keypoints,
            "mean": list(RTMPOSE_MEAN), "std": list(RTMPOSE_STD), "color": "rgb", "sha256": sha256_file(path),
            **(extra or {})}
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(side, indent=2) + "\n")
    return side
