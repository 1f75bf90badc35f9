"""Top-down affine crops exactly as mmpose 1.x does them (GetBBoxCenterScale + TopdownAffine), vectorised.

Why our own copy: the ONNX backend must not need mmcv/mmpose, yet must give the same keypoints, so the
box -> (center, scale) -> warp matrix chain and its inverse follow mmpose's formulas line by line
(``mmpose.structures.bbox.transforms`` and ``mmpose.datasets.transforms.TopdownAffine``):

* ``bbox_xyxy_to_cs``: center = box midpoint, scale = box size * padding (1.25 at test time);
* ``fix_aspect_ratio``: grow the short side so scale w/h equals the model input's w/h;
* ``get_warp_matrix``: the 3-point construction (center, center + half-width direction, perpendicular third
  point) fed to ``cv2.getAffineTransform``; ``inv=True`` gives the crop -> image matrix;
* ``crop_to_image``: the inverse used by mmpose's TopdownPoseEstimator, kpt / input_size * scale + center -
  scale / 2 (identical to the inverse warp matrix at rotation 0, which is what inference uses).
"""

from __future__ import annotations

import cv2
import numpy as np

DEFAULT_PADDING = 1.25


def bbox_xyxy_to_cs(bbox: np.ndarray, padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (..., 4) x0, y0, x1, y1 -> centers (..., 2) and padded scales (..., 2) (mmpose bbox_xyxy2cs)."""
    bbox = np.asarray(bbox, dtype=np.float32)
    center = (bbox[..., 2:] + bbox[..., :2]) * 0.5
    scale = (bbox[..., 2:] - bbox[..., :2]) * padding
    return center, scale


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Widen or heighten scales (..., 2) so that w / h == aspect_ratio, never shrinking (mmpose TopdownAffine)."""
    scale = np.asarray(scale, dtype=np.float32)
    w, h = scale[..., :1], scale[..., 1:2]
    return np.where(w > h * aspect_ratio,
                    np.concatenate([w, w / aspect_ratio], axis=-1),
                    np.concatenate([h * aspect_ratio, h], axis=-1)).astype(np.float32)


def _rotate_point(pt: np.ndarray, angle_rad: float) -> np.ndarray:
    sn, cs = np.sin(angle_rad), np.cos(angle_rad)
    return np.array([[cs, -sn], [sn, cs]]) @ pt


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    direction = a - b
    return b + np.r_[-direction[1], direction[0]]


def get_warp_matrix(center: np.ndarray, scale: np.ndarray, rot: float, output_size: tuple[int, int],
                    shift: tuple[float, float] = (0.0, 0.0), inv: bool = False) -> np.ndarray:
    """2x3 affine matrix mapping the box (center, scale, rotation in degrees) onto an ``output_size`` (w, h) crop.

    mmpose's get_warp_matrix with fix_aspect_ratio=True: ``inv=True`` maps crop pixels back to the image.
    """
    center = np.asarray(center, dtype=np.float64)
    scale = np.asarray(scale, dtype=np.float64)
    shift_arr = np.asarray(shift, dtype=np.float64)
    src_w = scale[0]
    dst_w, dst_h = output_size
    rot_rad = np.deg2rad(rot)
    src_dir = _rotate_point(np.array([src_w * -0.5, 0.0]), rot_rad)
    dst_dir = np.array([dst_w * -0.5, 0.0])
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center + scale * shift_arr
    src[1] = center + src_dir + scale * shift_arr
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [dst_w * 0.5, dst_h * 0.5]
    dst[1] = np.array([dst_w * 0.5, dst_h * 0.5]) + dst_dir
    dst[2] = _third_point(dst[0], dst[1])
    if inv:
        return cv2.getAffineTransform(np.float32(dst), np.float32(src))
    return cv2.getAffineTransform(np.float32(src), np.float32(dst))


def boxes_to_cs(bboxes: np.ndarray, input_size: tuple[int, int],
                padding: float = DEFAULT_PADDING) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (N, 4) -> centers (N, 2) and aspect-fixed scales (N, 2) for a model input (w, h)."""
    center, scale = bbox_xyxy_to_cs(np.asarray(bboxes, dtype=np.float32).reshape(-1, 4), padding)
    scale = fix_aspect_ratio(scale, input_size[0] / input_size[1])
    return center, scale


def crop_batch(frames: np.ndarray, centers: np.ndarray, scales: np.ndarray,
               input_size: tuple[int, int]) -> np.ndarray:
    """Warp each frame (N, H, W, 3) uint8 to its (w, h) crop with bilinear sampling (mmpose TopdownAffine).

    Returns (N, h, w, 3) uint8. One cv2.warpAffine per crop: it is SIMD-optimised and the per-call overhead is
    a few microseconds next to the model, so a batched gather would not pay off.
    """
    w, h = int(input_size[0]), int(input_size[1])
    out = np.empty((len(frames), h, w, 3), dtype=np.uint8)
    for i, (frame, c, s) in enumerate(zip(frames, centers, scales)):
        mat = get_warp_matrix(c, s, 0.0, (w, h))
        out[i] = cv2.warpAffine(frame, mat, (w, h), flags=cv2.INTER_LINEAR)
    return out


def crop_to_image(keypoints: np.ndarray, centers: np.ndarray, scales: np.ndarray,
                  input_size: tuple[int, int]) -> np.ndarray:
    """Crop-pixel keypoints (N, K, 2) -> image pixels, mmpose's formula (the inverse warp at rotation 0)."""
    size = np.asarray(input_size, dtype=np.float32)
    scales = np.asarray(scales, dtype=np.float32)[:, None, :]
    centers = np.asarray(centers, dtype=np.float32)[:, None, :]
    return (keypoints / size * scales + centers - 0.5 * scales).astype(np.float32)
