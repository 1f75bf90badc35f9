"""RTMDet person detection around an exported forward pass: letterbox input, box decoding and NMS, in numpy.

Why our own copy: mmdet's post-processing calls ``mmcv.ops.batched_nms``, a compiled op that no pip wheel of
mmcv provides for our torch. The forward pass (backbone, neck, head) is plain torch and is exported to ONNX
(``mgfm.pose.onnx_export``); everything around it follows mmdet 3.x line by line, so the boxes are mmdet's:

* input (``letterbox``): mmcv ``imrescale`` keep-ratio resize (scale = min(W_in / w, H_in / h), new size
  rounded half up, bilinear), padded bottom/right to the input size with 114 (mmdet ``Pad``), then
  ``(pixel - mean) / std`` in the detector's channel order (BGR for RTMDet: ``bgr_to_rgb=False``);
* decoding (``decode_detections``, ``BaseDenseHead._predict_by_feat_single``): per level, sigmoid scores,
  keep (prior, class) pairs scoring above ``score_thr``, the ``nms_pre`` best of them; boxes
  ``distance2bbox(prior, distance)`` clamped to the padded input (mmdet's ``img_shape`` after ``Pad``);
* post-processing (``_bbox_post_process``): divide by the resize scale, drop boxes not wider and taller than
  ``min_bbox_size``, class-aware NMS (mmcv ``batched_nms``: boxes offset per class, greedy, a box is dropped
  when its IoU with a kept higher-scoring box is above the threshold), keep the ``max_per_img`` best.

A score threshold above ``score_thr`` may be applied first without changing which boxes above it survive:
greedy NMS drops a box only for a higher-scoring one, and the per-level top-k and ``max_per_img`` cuts keep
the highest scores, so the boxes above a threshold are the same whether the lower ones were there or not.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np


@dataclass(frozen=True)
class DetectorSpec:
    """What decoding needs to know about an exported RTMDet-form detector (its sidecar JSON holds it)."""

    input_size: tuple[int, int]  # (w, h) of the padded network input
    strides: tuple[int, ...] = (8, 16, 32)
    prior_offset: float = 0.0
    mean: tuple[float, float, float] = (103.53, 116.28, 123.675)
    std: tuple[float, float, float] = (57.375, 57.12, 58.395)
    color: str = "bgr"
    pad_value: int = 114
    score_thr: float = 0.05
    nms_pre: int = 1000
    min_bbox_size: float = 0.0
    iou_threshold: float = 0.6
    max_per_img: int = 100
    classes: tuple[str, ...] = field(default=("person",))

    @classmethod
    def from_sidecar(cls, side: dict) -> DetectorSpec:
        post = side["postprocess"]
        return cls(input_size=tuple(int(v) for v in side["input_size"]), strides=tuple(int(s) for s in side["strides"]),
                   prior_offset=float(side["prior_offset"]), mean=tuple(side["mean"]), std=tuple(side["std"]),
                   color=side["color"], pad_value=int(side["pad_value"]), score_thr=float(post["score_thr"]),
                   nms_pre=int(post["nms_pre"]), min_bbox_size=float(post["min_bbox_size"]),
                   iou_threshold=float(post["iou_threshold"]), max_per_img=int(post["max_per_img"]),
                   classes=tuple(side["classes"]))

    def to_sidecar(self) -> dict:
        return {"input_size": list(self.input_size), "strides": list(self.strides), "prior_offset": self.prior_offset,
                "mean": list(self.mean), "std": list(self.std), "color": self.color, "pad_value": self.pad_value,
                "classes": list(self.classes),
                "postprocess": {"score_thr": self.score_thr, "nms_pre": self.nms_pre,
                                "min_bbox_size": self.min_bbox_size, "iou_threshold": self.iou_threshold,
                                "max_per_img": self.max_per_img}}


def rescale_size(width: int, height: int, input_size: tuple[int, int]) -> tuple[int, int]:
    """(new_w, new_h) of mmcv's keep-ratio ``imrescale`` into ``input_size`` (w, h): half-up rounding."""
    long_edge, short_edge = max(input_size), min(input_size)
    scale = min(long_edge / max(height, width), short_edge / min(height, width))
    return int(width * float(scale) + 0.5), int(height * float(scale) + 0.5)


def letterbox(frames_rgb: np.ndarray, spec: DetectorSpec) -> tuple[np.ndarray, tuple[float, float]]:
    """Frames (N, H, W, 3) uint8 RGB of one size -> network input (N, 3, h, w) float32 and the (x, y) scale."""
    n, height, width = frames_rgb.shape[:3]
    in_w, in_h = spec.input_size
    new_w, new_h = rescale_size(width, height, spec.input_size)
    if new_w > in_w or new_h > in_h:
        raise ValueError(f"a {width}x{height} frame resized to {new_w}x{new_h} does not fit the detector input "
                         f"{in_w}x{in_h}")
    padded = np.full((n, in_h, in_w, 3), spec.pad_value, dtype=np.uint8)
    for i, frame in enumerate(frames_rgb):
        img = frame[..., ::-1] if spec.color == "bgr" else frame
        padded[i, :new_h, :new_w] = cv2.resize(np.ascontiguousarray(img), (new_w, new_h),
                                               interpolation=cv2.INTER_LINEAR)
    mean = np.asarray(spec.mean, dtype=np.float32)
    std = np.asarray(spec.std, dtype=np.float32)
    x = (padded.astype(np.float32) - mean) / std
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)), (new_w / width, new_h / height)


def grid_priors(spec: DetectorSpec) -> tuple[np.ndarray, list[slice]]:
    """Prior points (N, 2) x, y of every level in the exported head's order (level by level, rows of the
    feature map, then columns: mmdet ``MlvlPointGenerator``), and each level's slice of them."""
    in_w, in_h = spec.input_size
    points, slices, start = [], [], 0
    for stride in spec.strides:
        feat_h, feat_w = -(-in_h // stride), -(-in_w // stride)
        xs = (np.arange(feat_w, dtype=np.float32) + spec.prior_offset) * stride
        ys = (np.arange(feat_h, dtype=np.float32) + spec.prior_offset) * stride
        xx, yy = np.meshgrid(xs, ys)
        points.append(np.stack([xx.reshape(-1), yy.reshape(-1)], axis=-1))
        slices.append(slice(start, start + feat_h * feat_w))
        start += feat_h * feat_w
    return np.concatenate(points).astype(np.float32), slices


def sigmoid(x: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-x.astype(np.float32)))).astype(np.float32)


def nms(boxes: np.ndarray, scores: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Indices of the boxes kept by greedy NMS, best score first (mmcv ``nms``, offset 0): a box goes when its
    IoU with an already kept, higher-scoring box is above ``iou_threshold``."""
    boxes = np.asarray(boxes, dtype=np.float32)
    order = np.argsort(-np.asarray(scores, dtype=np.float32), kind="stable")
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1) * (y2 - y1)
    keep = []
    while order.size:
        i, rest = order[0], order[1:]
        keep.append(i)
        w = np.maximum(np.float32(0), np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]))
        h = np.maximum(np.float32(0), np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]))
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[~(iou > np.float32(iou_threshold))]
    return np.asarray(keep, dtype=np.int64)


def batched_nms(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, iou_threshold: float) -> np.ndarray:
    """Class-aware NMS as mmcv's ``batched_nms``: each class's boxes are shifted by label * (max coordinate + 1)
    so that boxes of different classes never overlap, then one greedy NMS. Returns kept indices, best first."""
    if len(boxes) == 0:
        return np.zeros(0, dtype=np.int64)
    boxes = np.asarray(boxes, dtype=np.float32)
    offsets = np.asarray(labels, dtype=np.float32) * (boxes.max() + np.float32(1))
    return nms(boxes + offsets[:, None], scores, iou_threshold)


@dataclass
class Detections:
    """One frame's detections in frame pixels, best score first."""

    boxes: np.ndarray  # (M, 4) float32 x0, y0, x1, y1
    scores: np.ndarray  # (M,) float32
    labels: np.ndarray  # (M,) int64


def decode_detections(cls_logits: np.ndarray, distances: np.ndarray, priors: np.ndarray, slices: list[slice],
                      spec: DetectorSpec, scale: tuple[float, float], score_threshold: float = 0.0) -> Detections:
    """mmdet's RTMDet post-processing of one frame's raw head outputs: ``cls_logits`` (N, C) and ``distances``
    (N, 4) (left, top, right, bottom, input pixels) for the ``priors`` (N, 2). Boxes scoring at or below
    ``score_threshold`` (on top of the config's ``score_thr``) are dropped first; see the module docstring."""
    scores = sigmoid(cls_logits)
    thr = max(spec.score_thr, float(score_threshold))
    keep_idx, keep_label, keep_score = [], [], []
    for sl in slices:
        level = scores[sl]
        prior_idx, label = np.nonzero(level > thr)  # row-major, as torch.nonzero
        s = level[prior_idx, label]
        top = np.argsort(-s, kind="stable")[: spec.nms_pre]
        keep_idx.append(prior_idx[top] + sl.start)
        keep_label.append(label[top])
        keep_score.append(s[top])
    idx = np.concatenate(keep_idx)
    labels = np.concatenate(keep_label).astype(np.int64)
    kept_scores = np.concatenate(keep_score).astype(np.float32)
    pts, dist = priors[idx], distances[idx].astype(np.float32)
    boxes = np.stack([pts[:, 0] - dist[:, 0], pts[:, 1] - dist[:, 1],
                      pts[:, 0] + dist[:, 2], pts[:, 1] + dist[:, 3]], axis=-1)
    in_w, in_h = spec.input_size
    boxes = np.clip(boxes, 0, np.array([in_w, in_h, in_w, in_h], np.float32))
    # mmdet multiplies by 1 / scale (scale_boxes with the inverted scale factor)
    inv = np.array([1 / scale[0], 1 / scale[1]] * 2, dtype=np.float32)
    boxes = (boxes * inv).astype(np.float32)
    if spec.min_bbox_size >= 0:
        wh = boxes[:, 2:] - boxes[:, :2]
        ok = (wh[:, 0] > spec.min_bbox_size) & (wh[:, 1] > spec.min_bbox_size)
        boxes, kept_scores, labels = boxes[ok], kept_scores[ok], labels[ok]
    keep = batched_nms(boxes, kept_scores, labels, spec.iou_threshold)[: spec.max_per_img]
    return Detections(boxes[keep], kept_scores[keep], labels[keep])
