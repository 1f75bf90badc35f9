"""RTMDet decoding and NMS in numpy (mgfm.pose.detection), the raw-export detector of the onnx backend, and
batched detection with the tracker's frame-by-frame semantics (mgfm.pose.extract.track_batch).

mmdet's own pipeline on the same weights is the reference in tests/test_pose_onnx_export.py (mmpose venv); here
the rules are checked on hand-made cases whose answers follow from mmdet's definitions.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from mgfm.pose.detection import (DetectorSpec, batched_nms, decode_detections, grid_priors, letterbox, nms,
                                 rescale_size)
from mgfm.pose.extract import track_batch
from mgfm.pose.tracking import PrimaryPersonTracker

from tests.support.pose import stand_in_raw_detector, write_video

SPEC = DetectorSpec(input_size=(64, 64), strides=(8, 16, 32), score_thr=0.05, nms_pre=1000, min_bbox_size=0.0,
                    iou_threshold=0.6, max_per_img=100)


def test_nms_drops_only_boxes_above_the_iou_threshold_of_a_kept_better_box():
    boxes = np.array([[0, 0, 10, 10],     # best
                      [0, 0, 10, 6],      # IoU 0.6 with the best: not above the threshold, kept
                      [0, 0, 10, 7],      # IoU 0.7: dropped
                      [20, 20, 30, 30],   # elsewhere: kept
                      [0, 5, 10, 15]],    # IoU 1/3 with the best: kept
                     np.float32)
    scores = np.array([0.9, 0.5, 0.8, 0.7, 0.6], np.float32)
    assert nms(boxes, scores, 0.6).tolist() == [0, 3, 4, 1]


def test_nms_a_dropped_box_suppresses_nothing():
    # b overlaps a (dropped); c overlaps b but not a: c stays, since only kept boxes suppress
    boxes = np.array([[0, 0, 10, 10], [3, 0, 13, 10], [6, 0, 16, 10]], np.float32)
    assert nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), 0.5).tolist() == [0, 2]


def test_batched_nms_never_suppresses_across_classes():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], np.float32)
    keep = batched_nms(boxes, np.array([0.9, 0.8, 0.7], np.float32), np.array([0, 1, 0]), 0.5)
    assert keep.tolist() == [0, 1]
    assert batched_nms(np.zeros((0, 4), np.float32), np.zeros(0), np.zeros(0), 0.5).tolist() == []


def test_rescale_size_rounds_half_up_as_mmcv():
    assert rescale_size(320, 240, (640, 640)) == (640, 480)
    assert rescale_size(1280, 720, (640, 640)) == (640, 360)
    assert rescale_size(333, 251, (640, 640)) == (640, int(251 * 640 / 333 + 0.5))


def test_letterbox_pads_bottom_right_and_normalises_in_the_detector_channel_order():
    frame = np.zeros((1, 30, 40, 3), np.uint8)
    frame[..., 0] = 200  # red
    x, scale = letterbox(frame, SPEC)
    assert x.shape == (1, 3, 64, 64) and scale == (64 / 40, 48 / 30)
    mean, std = np.array(SPEC.mean, np.float32), np.array(SPEC.std, np.float32)
    # BGR order: red is the last channel
    np.testing.assert_allclose(x[0, :, 10, 10], (np.array([0, 0, 200], np.float32) - mean) / std, rtol=1e-6)
    np.testing.assert_allclose(x[0, :, 60, 10], (114 - mean) / std, rtol=1e-6)  # padding below the 64x48 image


def test_priors_are_level_by_level_row_major():
    priors, slices = grid_priors(SPEC)
    assert [s.stop - s.start for s in slices] == [64, 16, 4]
    np.testing.assert_array_equal(priors[:3], [[0, 0], [8, 0], [16, 0]])
    np.testing.assert_array_equal(priors[8], [0, 8])
    np.testing.assert_array_equal(priors[slices[2]], [[0, 0], [32, 0], [0, 32], [32, 32]])


def _raw(n_priors: int, hits: dict[int, tuple[float, list[float]]], classes: int = 1):
    logits = np.full((n_priors, classes), -20.0, np.float32)
    dist = np.ones((n_priors, 4), np.float32)
    for idx, (score, d) in hits.items():
        logits[idx, 0] = np.log(score / (1 - score))
        dist[idx] = d
    return logits, dist


def test_decoding_gives_mmdets_boxes():
    priors, slices = grid_priors(SPEC)
    # prior 9 is (8, 8) on level 0; prior 64 is (0, 0) on level 1
    logits, dist = _raw(len(priors), {9: (0.9, [4, 2, 6, 8]), 64: (0.8, [0, 0, 70, 30])})
    det = decode_detections(logits, dist, priors, slices, SPEC, scale=(0.5, 0.25))
    # (8 - 4, 8 - 2, 8 + 6, 8 + 8) / scale; the second clamped to the 64x64 input first
    np.testing.assert_allclose(det.boxes, [[8, 24, 28, 64], [0, 0, 128, 120]])
    np.testing.assert_allclose(det.scores, [0.9, 0.8], rtol=1e-6)
    assert det.labels.tolist() == [0, 0]


def test_decoding_thresholds_size_filter_and_caps():
    priors, slices = grid_priors(SPEC)
    logits, dist = _raw(len(priors), {1: (0.04, [2, 2, 2, 2]), 2: (0.5, [0, 0, 0, 3]),
                                      20: (0.7, [2, 2, 2, 2]), 40: (0.6, [2, 2, 2, 2])})
    det = decode_detections(logits, dist, priors, slices, SPEC, scale=(1.0, 1.0))
    # prior 1 is below score_thr, prior 2 has zero width (min_bbox_size 0 keeps only w, h > 0)
    np.testing.assert_allclose(det.scores, [0.7, 0.6], rtol=1e-6)
    capped = DetectorSpec(**{**SPEC.__dict__, "nms_pre": 1, "max_per_img": 5})
    det = decode_detections(logits, dist, priors, slices, capped, scale=(1.0, 1.0))
    np.testing.assert_allclose(det.scores, [0.7], rtol=1e-6)  # one per level, and both were on level 0


def test_a_higher_threshold_first_keeps_exactly_the_boxes_above_it():
    """The module docstring's claim, on dense random outputs: NMS, top-k and the cap do not depend on the boxes
    below a threshold, so thresholding first gives mmdet's boxes above it."""
    rng = np.random.default_rng(0)
    priors, slices = grid_priors(SPEC)
    spec = DetectorSpec(**{**SPEC.__dict__, "nms_pre": 30, "max_per_img": 12, "iou_threshold": 0.3})
    for _ in range(20):
        logits = rng.normal(0, 2, (len(priors), 2)).astype(np.float32)
        dist = rng.uniform(1, 30, (len(priors), 4)).astype(np.float32)
        full = decode_detections(logits, dist, priors, slices, spec, (1.3, 1.3))
        for thr in (0.3, 0.6, 0.9):
            part = decode_detections(logits, dist, priors, slices, spec, (1.3, 1.3), score_threshold=thr)
            above = full.scores > thr
            np.testing.assert_array_equal(part.boxes, full.boxes[above])
            np.testing.assert_array_equal(part.labels, full.labels[above])


def test_sidecar_round_trip():
    spec = DetectorSpec(input_size=(640, 640), classes=("person",))
    assert DetectorSpec.from_sidecar(json.loads(json.dumps(spec.to_sidecar()))) == spec


# ---- the onnx backend with a raw-format export ----------------------------------------------------------------


def test_extract_with_a_raw_format_detector(tmp_path):
    """A raw-format stand-in (its sidecar says rtmdet-raw): one person box whatever the frame; the stage's boxes are
    that box scaled back to the 160x120 frames, its score the detection score, and the pose file names the
    detector and its sha256."""
    import torch

    from mgfm.core.pose_store import read_pose, read_pose_meta
    from mgfm.common.digest import sha256_file
    from mgfm.demo.pose_model.export import export_onnx
    from mgfm.demo.pose_model.net import DemoSimCCNet
    from mgfm.pose.extract import extract_pose

    torch.manual_seed(0)
    model = tmp_path / "rand.onnx"
    export_onnx(DemoSimCCNet(input_size=(64, 48)), model, "rand-test")
    video = write_video(tmp_path / "vid.mp4", n=12)
    spec = DetectorSpec(input_size=(64, 64))
    priors, _ = grid_priors(spec)
    logits, dist = _raw(len(priors), {9: (0.9, [4, 2, 6, 8])})
    det = stand_in_raw_detector(tmp_path / "det.onnx", spec, logits, dist)
    out = tmp_path / "vid.parquet"
    extract_pose(video, video.with_suffix(".json"), out,
                 {"model": str(model), "batch_size": 5, "detector": {"model": str(det), "interval": 4}})
    pose = read_pose(out)
    # 160x120 -> 64x48 (scale 0.4): the box (4, 6, 14, 16) in input pixels is (10, 15, 35, 40) in the frame
    np.testing.assert_allclose(pose.bbox[0], [10, 15, 35, 40], rtol=1e-5)
    np.testing.assert_allclose(pose.det_score[0], 0.9, rtol=1e-5)
    meta = read_pose_meta(out)
    assert meta["detector"] == "stand-in" and meta["detector_sha256"] == sha256_file(det)


def test_a_detector_changed_after_export_is_refused(tmp_path):
    from mgfm.pose.backends.onnx_backend import load_detector
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams

    spec = DetectorSpec(input_size=(64, 64))
    priors, _ = grid_priors(spec)
    det = stand_in_raw_detector(tmp_path / "det.onnx", spec, *_raw(len(priors), {}))
    side = json.loads(det.with_suffix(".json").read_text())
    det.with_suffix(".json").write_text(json.dumps({**side, "sha256": "0" * 64}))
    with pytest.raises(ValueError, match="changed after it was exported"):
        load_detector(from_partial(PoseParams, "pose", {"detector": {"model": str(det)}}), 1)


# ---- batched detection, frame-by-frame tracking --------------------------------------------------------------


class CountingDetector:
    """Boxes are a pure function of the frame (its first pixel says who is there); counts model runs and frames."""

    def __init__(self) -> None:
        self.runs, self.frames = 0, 0

    def detect(self, frame: np.ndarray):
        code = int(frame[0, 0, 0])
        if code == 0:
            return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
        x = float(code % 50)
        return np.array([[x, 10, x + 40, 90]], np.float32), np.array([0.5 + code / 1000], np.float32)

    def detect_batch(self, frames):
        self.runs += 1
        self.frames += len(frames)
        return [self.detect(f) for f in frames]


def reference_track(frames, start, tracker, detector, interval):
    """The frame-by-frame loop that batched detection must reproduce."""
    n = len(frames)
    boxes, det_score, present = np.zeros((n, 4), np.float32), np.zeros(n, np.float32), np.zeros(n, bool)
    for i in range(n):
        if (start + i) % interval == 0 or tracker.box is None:
            tracker.select(*detector.detect(frames[i]))
        if tracker.box is not None:
            boxes[i], det_score[i], present[i] = tracker.box, tracker.det_score, True
    return boxes, det_score, present


@pytest.mark.parametrize("batch, interval", [(8, 3), (16, 10), (5, 1), (32, 7)])
def test_batched_detection_equals_frame_by_frame(batch, interval):
    rng = np.random.default_rng(batch * 100 + interval)
    n = 96
    frames = np.zeros((n, 100, 120, 3), np.uint8)
    codes = rng.integers(1, 200, n)
    codes[rng.random(n) < 0.3] = 0  # nobody
    codes[40:60] = 0  # a cut to a scene without the person
    frames[:, 0, 0, 0] = codes
    a, b = PrimaryPersonTracker(120, 100), PrimaryPersonTracker(120, 100)
    det = CountingDetector()
    for start in range(0, n, batch):
        got = track_batch(frames[start:start + batch], start, a, det, interval)
        want = reference_track(frames[start:start + batch], start, b, CountingDetector(), interval)
        for g, w in zip(got, want):
            np.testing.assert_array_equal(g, w)
        # the batch's last box goes on as the track (what the stage does after estimating keypoints)
        for t in (a, b):
            if t.box is not None:
                t.box = t.box + 1
    assert det.runs < det.frames or interval == 1, (det.runs, det.frames)
