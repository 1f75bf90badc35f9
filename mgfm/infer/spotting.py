"""Temporal merging of per-window class probabilities into micro-gesture instances (start, end, class, confidence).

The method, in order:
1. smoothing: per window length and class, a centred moving average over ``smooth`` neighbouring windows
   (windows that are not visible count as probability 0, so a gesture needs support from its neighbours);
2. proposals: every visible window and class, the smoothed probability as confidence;
3. non-maximum suppression over all lengths, greedy by confidence: a proposal is dropped when its temporal IoU
   with a kept one exceeds ``nms_iou``. ``nms: all`` compares every pair, whatever the class (one person, one
   micro-gesture at a time: a window keeps at most its best class); ``nms: class`` only proposals of one class,
   so a window may propose several classes and the threshold decides how many survive;
4. thresholding: instances with confidence >= ``threshold``, a value chosen on validation videos
   (``mgfm.infer.calibrate``), never on test. Evaluation's mAP ranks the proposals before this step.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mgfm.infer.windows import Windows

#: Class probabilities at or below this never become a proposal (``nms: class`` would otherwise keep every class).
MIN_PROPOSAL = 1e-3
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
    iou = float(params["nms_iou"])
    if params["nms"] == "all":         # a window's other classes overlap it fully: only its best class can survive
        cls = sm[rows].argmax(1)
        rows, cls = rows[sm[rows, cls] > MIN_PROPOSAL], cls[sm[rows, cls] > MIN_PROPOSAL]
        conf = sm[rows, cls]
        s, e = windows.start[rows], windows.end[rows]
        keep = nms(s, e, cls, conf, iou, per_class=False)
        s, e, cls, conf = s[keep], e[keep], cls[keep], conf[keep]
    else:                               # every class of every window competes within its class only
        parts = []
        for c in range(sm.shape[1]):
            r = rows[sm[rows, c] > MIN_PROPOSAL]
            keep = nms(windows.start[r], windows.end[r], np.zeros(len(r)), sm[r, c], iou, per_class=False)
            parts.append((windows.start[r][keep], windows.end[r][keep], np.full(len(keep), c), sm[r, c][keep]))
        s, e, cls, conf = (np.concatenate([p[i] for p in parts]) for i in range(4))
    order = np.argsort(-conf, kind="stable")
    return pd.DataFrame({"start_frame": s[order], "end_frame": e[order], "class_id": cls[order].astype(np.int64),
                         "confidence": conf[order]})


def instances(props: pd.DataFrame, threshold: float, fps: float, class_names: list[str]) -> pd.DataFrame:
    """Step 4: the proposals at or above ``threshold``, in temporal order, with times and class names."""
    kept = props[props["confidence"] >= threshold].sort_values(["start_frame", "class_id"]).reset_index(drop=True)
    out = kept.assign(start_s=kept["start_frame"] / fps, end_s=(kept["end_frame"] + 1) / fps,
                      class_name=[class_names[int(c)] for c in kept["class_id"]])
    return out[INSTANCE_COLUMNS]
