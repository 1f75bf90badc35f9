"""Temporal merging of per-window class probabilities into micro-gesture instances (start, end, class, confidence).

The method, in order:
1. smoothing: per window length and class, a centred moving average over ``smooth`` neighbouring windows
   (windows that are not visible count as probability 0, so a gesture needs support from its neighbours);
2. proposals: every visible window with its most probable class, the smoothed probability as confidence;
3. non-maximum suppression over all lengths, greedy by confidence: a proposal is dropped when its temporal IoU
   with a kept one exceeds ``nms_iou`` (``nms: class`` compares only proposals of the same class, ``nms: all``
   every pair, since one person performs one micro-gesture at a time);
4. thresholding: instances with confidence >= ``threshold``, a value chosen on validation videos
   (``mgfm.infer.calibrate``), never on test. Evaluation's mAP ranks the proposals before this step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mgfm.infer.windows import Windows

INSTANCE_COLUMNS = ["start_frame", "end_frame", "start_s", "end_s", "class_id", "class_name", "confidence"]


def smooth_probs(probs: np.ndarray, windows: Windows, smooth: int) -> np.ndarray:
    """Moving average (odd width ``smooth``) along time within each window length; invisible windows count 0 in
    their neighbours' averages and stay 0 themselves."""
    if smooth % 2 == 0:
        raise ValueError(f"config key infer.merge.smooth must be odd (a centred average), got {smooth}")
    p = np.where(windows.visible[:, None], probs, 0.0).astype(np.float64)
    if smooth <= 1 or len(p) == 0:
        return p
    out = np.empty_like(p)
    half = smooth // 2
    for k in np.unique(windows.length):
        rows = np.flatnonzero(windows.length == k)
        rows = rows[np.argsort(windows.start[rows], kind="stable")]
        seq = p[rows]
        pad = np.pad(seq, ((half, half), (0, 0)))
        csum = np.concatenate([np.zeros((1, seq.shape[1])), np.cumsum(pad, axis=0)])
        out[rows] = (csum[smooth:] - csum[:-smooth])[: len(rows)] / smooth
    return np.where(windows.visible[:, None], out, 0.0)


def temporal_iou(s1: np.ndarray, e1: np.ndarray, s2: np.ndarray, e2: np.ndarray) -> np.ndarray:
    """IoU of inclusive frame intervals, broadcast: (A,) x (B,) -> (A, B) when given [:, None] / [None, :]."""
    inter = np.clip(np.minimum(e1, e2) - np.maximum(s1, s2) + 1, 0, None)
    union = (e1 - s1 + 1) + (e2 - s2 + 1) - inter
    return inter / np.maximum(union, 1)


def nms(start: np.ndarray, end: np.ndarray, cls: np.ndarray, conf: np.ndarray, iou: float,
        per_class: bool) -> np.ndarray:
    """Indices kept by greedy NMS (highest confidence first; ties keep the earlier start)."""
    order = np.lexsort((start, -conf))
    keep: list[int] = []
    suppressed = np.zeros(len(start), bool)
    for i in order:
        if suppressed[i]:
            continue
        keep.append(int(i))
        ov = temporal_iou(start[i], end[i], start, end) > iou
        if per_class:
            ov &= cls == cls[i]
        suppressed |= ov
    return np.asarray(keep, np.int64)


def proposals(probs: np.ndarray, windows: Windows, params: dict) -> pd.DataFrame:
    """Steps 1-3: NMS-filtered proposals of one video (no threshold yet), by confidence, highest first."""
    sm = smooth_probs(probs, windows, int(params["smooth"]))
    rows = np.flatnonzero(windows.visible)
    if len(rows) == 0:
        return pd.DataFrame({"start_frame": [], "end_frame": [], "class_id": [], "confidence": []}).astype(
            {"start_frame": np.int64, "end_frame": np.int64, "class_id": np.int64, "confidence": np.float64})
    cls = sm[rows].argmax(1)
    conf = sm[rows, cls]
    s, e = windows.start[rows], windows.end[rows]
    keep = nms(s, e, cls, conf, float(params["nms_iou"]), params["nms"] == "class")
    return pd.DataFrame({"start_frame": s[keep], "end_frame": e[keep], "class_id": cls[keep].astype(np.int64),
                         "confidence": conf[keep]})


def instances(props: pd.DataFrame, threshold: float, fps: float, class_names: list[str]) -> pd.DataFrame:
    """Step 4: the proposals at or above ``threshold``, in temporal order, with times and class names."""
    kept = props[props["confidence"] >= threshold].sort_values(["start_frame", "class_id"]).reset_index(drop=True)
    out = kept.assign(start_s=kept["start_frame"] / fps, end_s=(kept["end_frame"] + 1) / fps,
                      class_name=[class_names[int(c)] for c in kept["class_id"]])
    return out[INSTANCE_COLUMNS]
