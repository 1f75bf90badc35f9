"""Spotting metrics on untrimmed video: precision / recall / F1 at a temporal IoU with the class required to
match, an untrimmed-video mAP, and a per-class breakdown.

Matching (per video, per tIoU): predictions by confidence, highest first, each takes the unmatched ground-truth
instance of its class with the highest tIoU >= the threshold (greedy, one-to-one; the MiGA / ActivityNet rule).
mAP: per class, average precision over the confidence-ranked predictions of all videos (all-point interpolated
precision-recall area), averaged over the classes that have ground truth, then over the tIoU thresholds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mgfm.infer.spotting import temporal_iou


def match(pred: pd.DataFrame, gt: pd.DataFrame, tiou: float) -> np.ndarray:
    """Per prediction row (any order), True when it matches a ground-truth instance; both of one video."""
    hit = np.zeros(len(pred), bool)
    if len(pred) == 0 or len(gt) == 0:
        return hit
    ps, pe, pc = (pred[c].to_numpy() for c in ("start_frame", "end_frame", "class_id"))
    gs, ge, gc = (gt[c].to_numpy() for c in ("start_frame", "end_frame", "class_id"))
    iou = temporal_iou(ps[:, None], pe[:, None], gs[None, :], ge[None, :])
    iou = np.where(pc[:, None] == gc[None, :], iou, -1.0)
    used = np.zeros(len(gt), bool)
    for i in np.argsort(-pred["confidence"].to_numpy(), kind="stable"):
        cand = np.where(used, -1.0, iou[i])
        j = int(cand.argmax())
        if cand[j] >= tiou:
            used[j], hit[i] = True, True
    return hit


def _per_video(pred: pd.DataFrame, gt: pd.DataFrame, tiou: float) -> np.ndarray:
    hits = np.zeros(len(pred), bool)
    for vid, rows in pred.groupby("video_id").indices.items():
        hits[rows] = match(pred.iloc[rows], gt[gt["video_id"] == vid], tiou)
    return hits


def prf(n_hit: int, n_pred: int, n_gt: int) -> dict:
    p = n_hit / n_pred if n_pred else 0.0
    r = n_hit / n_gt if n_gt else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": 100 * p, "recall": 100 * r, "f1": 100 * f, "n_pred": n_pred, "n_gt": n_gt, "n_hit": n_hit}


def average_precision(conf: np.ndarray, hit: np.ndarray, n_gt: int) -> float:
    """All-point interpolated AP of ranked predictions against ``n_gt`` ground-truth instances."""
    if n_gt == 0:
        return float("nan")
    if len(conf) == 0:
        return 0.0
    order = np.argsort(-conf, kind="stable")
    tp = np.cumsum(hit[order])
    precision = tp / np.arange(1, len(order) + 1)
    recall = tp / n_gt
    prec = np.maximum.accumulate(precision[::-1])[::-1]
    steps = np.diff(np.concatenate([[0.0], recall]))
    return float((steps * prec).sum())


def spotting_metrics(pred: pd.DataFrame, ranked: pd.DataFrame, gt: pd.DataFrame, tious: list[float],
                     class_names: list[str]) -> dict:
    """P/R/F1 of thresholded ``pred`` and mAP of the un-thresholded ``ranked`` proposals, over all videos.

    Frames: columns video_id, start_frame, end_frame, class_id (and confidence for predictions).
    """
    out: dict = {"tiou": {}, "per_class": {}}
    aps = []
    for t in tious:
        hit = _per_video(pred, gt, t)
        row = prf(int(hit.sum()), len(pred), len(gt))
        rhit = _per_video(ranked, gt, t)
        per_cls = []
        for c in sorted(gt["class_id"].unique()):
            sel = ranked["class_id"].to_numpy() == c
            per_cls.append(average_precision(ranked["confidence"].to_numpy()[sel], rhit[sel],
                                             int((gt["class_id"] == c).sum())))
        row["map"] = 100 * float(np.mean(per_cls)) if per_cls else 0.0
        aps.append(row["map"])
        out["tiou"][f"{t:g}"] = row
        classes = {}
        pc, gc = pred["class_id"].to_numpy(), gt["class_id"].to_numpy()
        for c in sorted(set(gc) | set(pc)):
            classes[class_names[int(c)]] = prf(int(hit[pc == c].sum()), int((pc == c).sum()), int((gc == c).sum()))
        out["per_class"][f"{t:g}"] = classes
    out["map_mean"] = float(np.mean(aps)) if aps else 0.0
    return out
