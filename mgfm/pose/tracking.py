"""Primary-interviewee selection and keypoint-box tracking between detector runs.

Press-conference footage shows one interviewee, often beside other people (moderators, journalists' heads).
At each detection we keep the person who continues the current track (IoU with its box); with no track, the
one with the largest ``sqrt(area) * centrality`` (big and central). Between detections the box comes from the
previous frame's confident keypoints, as RTMPose's PoseTracker does, so the detector runs only every N frames.
"""

from __future__ import annotations

import numpy as np

#: A keypoint box is tighter than a detector box (no hair, clothes margin): grow it a little about its center.
KEYPOINT_BOX_EXPAND = 1.1
MIN_TRACK_KEYPOINTS = 3
MIN_TRACK_IOU = 0.3


def box_iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    """IoU of boxes (M, 4) with one box (4,), xyxy."""
    x0 = np.maximum(boxes[:, 0], box[0])
    y0 = np.maximum(boxes[:, 1], box[1])
    x1 = np.minimum(boxes[:, 2], box[2])
    y1 = np.minimum(boxes[:, 3], box[3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    area_box = (box[2] - box[0]) * (box[3] - box[1])
    return inter / np.maximum(area + area_box - inter, 1e-9)


def keypoint_box(xy: np.ndarray, score: np.ndarray, threshold: float,
                 width: int, height: int) -> np.ndarray | None:
    """Box around one person's keypoints (K, 2) scoring above ``threshold``; None when too few are confident."""
    ok = score > threshold
    if int(ok.sum()) < MIN_TRACK_KEYPOINTS:
        return None
    pts = xy[ok]
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    center, half = (lo + hi) / 2, (hi - lo) / 2 * KEYPOINT_BOX_EXPAND
    box = np.concatenate([center - half, center + half])
    box = np.clip(box, 0, [width, height, width, height]).astype(np.float32)
    if box[2] - box[0] < 2 or box[3] - box[1] < 2:
        return None
    return box


class PrimaryPersonTracker:
    """Holds the primary person's current box and picks them among each detection's candidates."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.box: np.ndarray | None = None
        self.det_score = 0.0

    def select(self, boxes: np.ndarray, scores: np.ndarray) -> bool:
        """Update the track from a detection; False (and track dropped) when nobody was detected."""
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        if len(boxes) == 0:
            self.box, self.det_score = None, 0.0
            return False
        idx = None
        if self.box is not None:
            iou = box_iou(boxes, self.box)
            if iou.max() >= MIN_TRACK_IOU:
                idx = int(np.argmax(iou))
        if idx is None:
            idx = int(np.argmax(self.primary_score(boxes)))
        self.box, self.det_score = boxes[idx].copy(), float(scores[idx])
        return True

    def primary_score(self, boxes: np.ndarray) -> np.ndarray:
        """sqrt(relative area) times centrality (1 at the frame center, 0 at a corner)."""
        wh = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
        area = wh[:, 0] * wh[:, 1] / float(self.width * self.height)
        center = (boxes[:, :2] + boxes[:, 2:]) / 2
        frame_center = np.array([self.width / 2, self.height / 2], dtype=np.float32)
        dist = np.linalg.norm(center - frame_center, axis=1) / np.linalg.norm(frame_center)
        return np.sqrt(area) * np.clip(1.0 - dist, 0.0, 1.0)

    def follow(self, xy: np.ndarray, score: np.ndarray, threshold: float) -> None:
        """Move the track to the keypoint box of the last estimated frame (drop it when the person is lost)."""
        self.box = keypoint_box(xy, score, threshold, self.width, self.height)
        if self.box is None:
            self.det_score = 0.0
