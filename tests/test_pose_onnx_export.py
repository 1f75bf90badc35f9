"""The preset's ONNX route against mmpose's and mmdet's own inference, on random weights of the real architectures.

Runs in the pinned mmpose venv only (`bash scripts/mmpose/ci.sh`, as CI does). Released weights cannot be
downloaded here, so each test writes a checkpoint of the preset's architecture with random weights in mmengine's
format and feeds it through the path that loads a released one: ``mgfm.pose.onnx_export.export`` (config +
checkpoint file + pinned digest) and the onnx backend's loaders (model file, sidecar, sha256). The references
load the same checkpoint with mmpose's ``init_model`` and mmdet's ``init_detector`` and run their own test
pipelines on demo-rendered frames:

* pose: ``inference_topdown``'s body (mmpose's pipeline, ``test_step``, the config's flip test) against the
  onnx backend with the exported model, flip test in the graph; and both without flip test;
* detector: mmdet's ``inference_detector`` (letterbox, forward, decoding, ``batched_nms``, ``max_per_img``)
  against the exported forward pass + ``mgfm.pose.detection``. mmdet's NMS calls mmcv's compiled kernel, which
  no pip wheel has for this torch: the reference swaps in ``mmcv_nms`` below, mmcv's ``batched_nms`` and its
  ``nms_cpu`` kernel written out in torch loop for loop.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests.support.mmpose_env import requires_mmpose
from tests.support.openmmlab import (demo_frames, informative_detector_checkpoint, informative_pose_checkpoint,
                                     preset)

pytestmark = requires_mmpose

# ---- pose model --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pose_checkpoint(tmp_path_factory):
    return informative_pose_checkpoint(tmp_path_factory.mktemp("pose") / "rtmw-x_random.pth")


@pytest.mark.parametrize("flip", [True, False])
def test_exported_pose_model_gives_mmposes_keypoints(pose_checkpoint, tmp_path, flip):
    from mgfm.pose.backends.mmpose_backend import MmposeEstimator, build_mmpose_model, resolve_config
    from mgfm.pose.backends.onnx_backend import load_onnx_backend
    from mgfm.pose.onnx_export import export
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams

    ckpt, digest = pose_checkpoint
    config = preset()["config"]
    onnx_path = tmp_path / "rtmw-x.onnx"
    side = export("pose", config, str(ckpt), digest[:8], str(onnx_path), flip_test=None if flip else False)
    assert side["flip_test"] is flip and side["source"]["checkpoint_sha256"] == digest
    assert side["input_size"] == [288, 384] and side["color"] == "rgb" and side["num_keypoints"] == 133

    model = build_mmpose_model(resolve_config(config), ckpt, "cpu")  # mmpose's init_model + load_checkpoint
    assert bool(model.test_cfg.get("flip_test")) is True  # the config's own setting
    model.test_cfg["flip_test"] = model.head.test_cfg["flip_test"] = flip
    frames = demo_frames(320, 240, 2)
    h, w = frames.shape[1:3]
    boxes = np.array([[0, 0, w, h], [90, 30, 230, 235], [40, 10, 300, 200], [120, 60, 200, 200]], np.float32)
    mm_xy, mm_score = MmposeEstimator(model).estimate(frames, boxes)

    backend = load_onnx_backend(from_partial(PoseParams, "pose", {"model": str(onnx_path), "device": "cpu"}), 2)
    assert backend.meta["model_checkpoint_sha256"] == digest and backend.meta["flip_test"] is flip
    xy, score = backend.estimate(frames, boxes)
    err = np.abs(xy - mm_xy).max(axis=-1)
    score_err = np.abs(score - mm_score)
    print(f"pose (flip test {'on' if flip else 'off'}): scores {mm_score.min():.3g}..{mm_score.max():.3g}, max |score "
          f"diff| {score_err.max():.2e} (relative {(score_err / np.abs(mm_score).clip(1e-6)).max():.1e}), "
          f"{np.mean(err < 1e-3):.4%} of keypoints within 1e-3 px, max |xy diff| {err.max():.2e} px "
          f"(median {np.median(err):.1e})")
    np.testing.assert_allclose(score, mm_score, rtol=1e-5, atol=1e-6)
    # a keypoint moves only where two SimCC bins are within float error of each other (random weights give
    # near-flat vectors): then by one bin, 1 / split_ratio of a crop pixel times the crop's scale
    assert np.mean(err < 1e-3) > 0.99, f"max err {err.max():.2f}px"


# ---- person detector -----------------------------------------------------------------------------------------


def mmcv_nms(boxes, scores, idxs, nms_cfg, class_agnostic=False):
    """mmcv.ops.batched_nms (offset trick, nms op, scores of the kept boxes) with the compiled nms_cpu kernel as
    written in mmcv's csrc: sort by score, then for each still-selected box drop every later one whose IoU with
    it is above the threshold."""
    import torch

    cfg = dict(nms_cfg)
    assert cfg.pop("type", "nms") == "nms"
    thr = float(cfg.pop("iou_threshold"))
    if class_agnostic:
        shifted = boxes
    else:
        offsets = idxs.to(boxes) * (boxes.max() + torch.tensor(1).to(boxes))
        shifted = boxes + offsets[:, None]
    x1, y1, x2, y2 = shifted.unbind(-1)
    areas = (x2 - x1) * (y2 - y1)
    order = scores.sort(0, descending=True)[1]
    select = torch.ones(len(order), dtype=torch.bool)
    for a in range(len(order)):
        if not select[a]:
            continue
        i, later = order[a], order[a + 1:]
        w = (torch.minimum(x2[i], x2[later]) - torch.maximum(x1[i], x1[later])).clamp(min=0)
        h = (torch.minimum(y2[i], y2[later]) - torch.maximum(y1[i], y1[later])).clamp(min=0)
        inter = w * h
        ovr = inter / (areas[i] + areas[later] - inter)
        select[a + 1:] &= ~(ovr > thr)
    keep = order[select]
    return torch.cat([boxes[keep], scores[keep][:, None]], -1), keep


@pytest.fixture(scope="module")
def detector_checkpoint(tmp_path_factory):
    return informative_detector_checkpoint(tmp_path_factory.mktemp("det") / "rtmdet-m_random.pth")


@pytest.fixture(scope="module")
def detections(detector_checkpoint, tmp_path_factory):
    """Per frame: mmdet's (boxes, scores, labels) and the exported detector's, on demo frames of two shapes (4:3,
    and an odd size whose resize rounds)."""
    import torch
    from mmdet.apis import inference_detector, init_detector

    import mmdet.models.dense_heads.base_dense_head as base_dense_head
    from mgfm.pose.backends.mmpose_backend import _checkpoint_safe_globals, resolve_config
    from mgfm.pose.backends.onnx_backend import load_detector
    from mgfm.pose.onnx_export import export
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams

    ckpt, digest = detector_checkpoint
    config = preset()["det_config"]
    onnx_path = tmp_path_factory.mktemp("det_onnx") / "rtmdet-m.onnx"
    side = export("detector", config, str(ckpt), digest[:8], str(onnx_path))
    assert side["format"] == "rtmdet-raw" and side["classes"] == ["person"]
    assert side["source"]["checkpoint_sha256"] == digest
    frames = [demo_frames(320, 240, 2), demo_frames(334, 190, 1)]

    with torch.serialization.safe_globals(_checkpoint_safe_globals()):
        model = init_detector(str(resolve_config(config)), str(ckpt), device="cpu")
    reference = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(base_dense_head, "batched_nms", mmcv_nms)  # what mmcv.ops.batched_nms computes (module docstring)
        for batch in frames:  # mmdet takes BGR images, as cv2 reads them
            for sample in inference_detector(model, [np.ascontiguousarray(f[..., ::-1]) for f in batch]):
                inst = sample.pred_instances.cpu().numpy()
                reference.append((inst.bboxes, inst.scores, inst.labels))

    def ours(threshold: float, color: str | None = None):
        det, _ = load_detector(from_partial(PoseParams, "pose", {"device": "cpu", "detector": {
            "model": str(onnx_path), "score_threshold": threshold}}), 2)
        if color:  # a deliberately wrong input, to show that the comparison sees it
            det.spec = dataclasses.replace(det.spec, color=color)
        return [d for batch in frames for d in det.detect_batch(batch)]

    return reference, ours


@pytest.mark.parametrize("threshold", [0.0, 0.5])
def test_exported_detector_gives_mmdets_boxes(detections, threshold):
    reference, ours = detections
    got = ours(threshold)
    n_boxes, box_err, score_err = 0, 0.0, 0.0
    for (ref_boxes, ref_scores, ref_labels), (boxes, scores) in zip(reference, got, strict=True):
        keep = (ref_scores > threshold) & (ref_labels == 0)
        assert len(boxes) == keep.sum(), (len(boxes), keep.sum())
        n_boxes += len(boxes)
        if len(boxes):
            box_err = max(box_err, float(np.abs(boxes - ref_boxes[keep]).max()))
            score_err = max(score_err, float(np.abs(scores - ref_scores[keep]).max()))
    print(f"detector (score > {threshold}): {n_boxes} boxes on {len(got)} frames, max |box diff| {box_err:.2e} px, "
          f"max |score diff| {score_err:.2e}")
    assert n_boxes >= 2 * len(got), "too few boxes to compare: the random head gives no detections"
    assert box_err < 1e-2 and score_err < 1e-4  # float32 differences between onnxruntime and torch


def test_the_detector_comparison_sees_a_wrong_channel_order(detections):
    reference, ours = detections
    moved = [np.abs(b - ref[0][: len(b)]).max() if len(b) == len(ref[0]) else np.inf
             for ref, (b, _) in zip(reference, ours(0.0, color="rgb"))]
    assert min(moved) > 1.0, moved
