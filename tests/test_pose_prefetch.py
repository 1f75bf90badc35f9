"""The pose stage's prefetch pipeline: same bytes as the sequential loop, bounded look-ahead, errors surface."""

import hashlib
import threading
import time

import numpy as np
import pytest
import torch

from mgfm.demo.pose_model.export import export_onnx
from mgfm.demo.pose_model.net import DemoSimCCNet
from mgfm.pose.extract import extract_pose
from mgfm.pose.video_reader import background

from tests.support.pose import stand_in_detector, write_video


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose")
    torch.manual_seed(0)
    model = root / "rand.onnx"
    export_onnx(DemoSimCCNet(input_size=(64, 48)), model, "rand-test")
    return {"root": root, "model": model, "video": write_video(root / "vid.mp4")}




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
    det = stand_in_detector(tmp_path / "det.onnx", [[100, 100, 400, 500, 0.9]])
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
