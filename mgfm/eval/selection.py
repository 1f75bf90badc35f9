"""Which epoch a protocol reports: the best test accuracy seen (the public reference's habit), the last
epoch's, and, when validation subjects are held out, the epoch chosen on validation (the honest one)."""

from __future__ import annotations

import numpy as np

from mgfm.eval.metrics import topk_accuracy

REPORTS = ("best_test", "last", "val_selected")
REPORT_LABELS = {
    "best_test": "best test accuracy seen during training (reference protocol; selected on test)",
    "last": "last epoch",
    "val_selected": "epoch with the best validation Top-1 (held-out training subjects)",
}


def summarize_epochs(epochs: list[int], test_scores: np.ndarray, y_test: np.ndarray,
                     val_scores: np.ndarray | None = None, y_val: np.ndarray | None = None) -> dict:
    """Scores (E, N, K) at each evaluated epoch -> {report: {"epoch", "top1", "top5"}} (val_selected None
    without validation rows). Ties pick the earliest epoch."""
    if len(epochs) != len(test_scores) or not len(epochs):
        raise ValueError(f"{len(epochs)} epochs for {len(test_scores)} score sets")
    acc = [topk_accuracy(s, y_test) for s in test_scores]
    top1 = np.array([a[1] for a in acc])

    def at(i: int) -> dict:
        return {"epoch": int(epochs[i]), "top1": acc[i][1], "top5": acc[i][5]}

    out = {"best_test": at(int(np.argmax(top1))), "last": at(len(epochs) - 1), "val_selected": None}
    if val_scores is not None and y_val is not None and len(y_val):
        val_top1 = np.array([topk_accuracy(s, y_val)[1] for s in val_scores])
        i = int(np.argmax(val_top1))
        out["val_selected"] = {**at(i), "val_top1": float(val_top1[i])}
    return out
