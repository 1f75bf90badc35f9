"""Classification and retrieval metrics shared by every protocol (numpy, vectorised, percent where stated)."""

from __future__ import annotations

import numpy as np


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[int, float]:
    """Top-k accuracy in percent: the true class is among the k highest scores (k capped at the class count).

    Ties count against the prediction: every other class scoring the same as the true class ranks above it, so
    constant scores never beat chance (a top-1 of 0 %, not 100 %).
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores {scores.shape} do not match {len(labels)} labels")
    if len(labels) == 0:
        raise ValueError("top-k accuracy of an empty set is undefined")
    true = scores[np.arange(len(labels)), labels][:, None]
    # rank of the true class = number of other classes scoring at least as high (ties count against it)
    rank = (scores >= true).sum(axis=1) - 1
    return {k: float(100.0 * np.mean(rank < min(k, scores.shape[1]))) for k in ks}


def confusion_matrix(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Counts (num_classes, num_classes): row = true class, column = predicted class."""
    idx = np.asarray(labels, dtype=np.int64) * num_classes + np.asarray(pred, dtype=np.int64)
    return np.bincount(idx, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def balanced_accuracy(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Mean per-class recall in percent, over the classes present in ``labels``."""
    cm = confusion_matrix(pred, labels, num_classes)
    support = cm.sum(axis=1)
    present = support > 0
    return float(100.0 * np.mean(np.diag(cm)[present] / support[present]))


def macro_f1(pred: np.ndarray, labels: np.ndarray, num_classes: int) -> float:
    """Unweighted mean of per-class F1 in percent, over classes present in labels or predictions."""
    cm = confusion_matrix(pred, labels, num_classes).astype(np.float64)
    tp = np.diag(cm)
    denom = cm.sum(axis=0) + cm.sum(axis=1)          # 2TP + FP + FN
    present = denom > 0
    return float(100.0 * np.mean(2 * tp[present] / denom[present]))


def mean_std(values: list[float]) -> dict:
    """{"mean", "std" (sample std, 0 for one value), "n", "values"} of per-seed numbers."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        raise ValueError("mean_std of no values")
    std = float(arr.std(ddof=1)) if arr.size > 1 else 0.0
    return {"mean": float(arr.mean()), "std": std, "n": int(arr.size), "values": [float(v) for v in arr]}


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, numerically stable."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)
