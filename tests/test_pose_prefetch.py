"""The pose stage's prefetch pipeline: same bytes as the sequential loop, bounded look-ahead, errors surface."""

import hashlib
import json
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from mgfm.pose.demo_model.export import export_onnx
from mgfm.pose.demo_model.net import DemoSimCCNet
from mgfm.pose.extract import extract_pose
from mgfm.pose.video_reader import background


def _write_video(path: Path, n: int = 40, w: int = 160, h: int = 120) -> Path:
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


def _detector(path: Path, boxes: list[list[float]]) -> Path:
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


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose")
    torch.manual_seed(0)
    model = root / "rand.onnx"
    export_onnx(DemoSimCCNet(input_size=(64, 48)), model, "rand-test")
    return {"root": root, "model": model, "video": _write_video(root / "vid.mp4")}




def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("batch_size", [1, 7, 16])
def test_prefetch_output_is_byte_identical_to_sequential(work, tmp_path, batch_size):
    outs = {}
    for prefetch, workers in ((0, None), (2, 1), (3, 3)):
        out = tmp_path / f"p{prefetch}_{workers}.parquet"
        extract_pose(work["video"], work["video"].with_suffix(".json"), out,
                     {"model": str(work["model"]), "batch_size": batch_size}, prefetch=prefetch, workers=workers)
        outs[(prefetch, workers)] = _sha(out)
    assert len(set(outs.values())) == 1, outs


def test_prefetch_with_detector_is_byte_identical(work, tmp_path):
    det = _detector(tmp_path / "det.onnx", [[100, 100, 400, 500, 0.9]])
    shas = []
    for prefetch in (0, 2):
        out = tmp_path / f"d{prefetch}.parquet"
        extract_pose(work["video"], work["video"].with_suffix(".json"), out,
                     {"model": str(work["model"]), "batch_size": 8, "detector": {"model": str(det), "interval": 3}},
                     prefetch=prefetch)
        shas.append(_sha(out))
    assert shas[0] == shas[1]


def test_background_keeps_order_and_stays_bounded():
    produced = []

    def items():
        for i in range(50):
            produced.append(i)
            yield i

    seen = []
    for item in background(items(), depth=3):
        time.sleep(0.002)
        # the producer is never more than depth (queued) + 1 (waiting to be queued) + 1 (handed out) ahead
        assert len(produced) - len(seen) <= 5
        seen.append(item)
    assert seen == list(range(50))


def test_background_raises_producer_errors_in_order():
    def items():
        yield 1
        yield 2
        raise ValueError("video x.mp4: decoding failed")

    got = []
    with pytest.raises(ValueError, match="x.mp4"):
        for item in background(items(), depth=2):
            got.append(item)
    assert got == [1, 2]


def test_background_stops_its_thread_when_the_consumer_stops():
    def endless():
        i = 0
        while True:
            yield np.zeros(10) + i
            i += 1

    before = threading.active_count()
    gen = background(endless(), depth=2, name="test-producer")
    assert next(gen)[0] == 0 and next(gen)[0] == 1
    gen.close()
    assert threading.active_count() == before
    assert not any(t.name == "test-producer" for t in threading.enumerate())


def test_depth_zero_runs_inline():
    assert list(background(iter(range(5)), depth=0)) == list(range(5))
