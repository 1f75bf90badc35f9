"""Metrics, epoch selection, seed folding and score fusion: hand-checkable cases."""

import numpy as np
import pytest

from mgfm.eval.ensemble import fuse, select_weights
from mgfm.eval.metrics import balanced_accuracy, confusion_matrix, macro_f1, mean_std, softmax, topk_accuracy
from mgfm.eval.results import fold_seeds
from mgfm.eval.selection import summarize_epochs


def test_topk_hand_case():
    scores = np.array([[0.9, 0.05, 0.05],   # true 0 -> rank 0
                       [0.2, 0.5, 0.3],     # true 2 -> rank 1
                       [0.6, 0.3, 0.1]])    # true 2 -> rank 2
    acc = topk_accuracy(scores, np.array([0, 2, 2]), (1, 2, 3, 5))
    assert acc[1] == pytest.approx(100 / 3)
    assert acc[2] == pytest.approx(200 / 3)
    assert acc[3] == 100.0 and acc[5] == 100.0   # k capped at the class count


def test_topk_rejects_mismatch():
    with pytest.raises(ValueError, match="do not match"):
        topk_accuracy(np.zeros((3, 4)), np.zeros(2, dtype=int))


def test_confusion_balanced_f1():
    y = np.array([0, 0, 0, 1])
    pred = np.array([0, 0, 1, 1])
    cm = confusion_matrix(pred, y, 2)
    assert cm.tolist() == [[2, 1], [0, 1]]
    assert balanced_accuracy(pred, y, 2) == pytest.approx(100 * (2 / 3 + 1) / 2)
    # F1 class0 = 2*2/(2*2+1) = 0.8; class1 = 2*1/(2*1+1) = 2/3
    assert macro_f1(pred, y, 2) == pytest.approx(100 * (0.8 + 2 / 3) / 2)
    # always predicting the majority class: high accuracy, balanced accuracy 50
    maj = np.zeros(4, dtype=int)
    assert balanced_accuracy(maj, y, 2) == pytest.approx(50.0)


def test_mean_std_and_fold():
    assert mean_std([1.0])["std"] == 0.0
    ms = mean_std([1.0, 3.0])
    assert ms["mean"] == 2.0 and ms["std"] == pytest.approx(np.sqrt(2)) and ms["n"] == 2
    folded = fold_seeds([{"last": {"top1": 10.0, "epoch": 5}, "val_selected": None},
                         {"last": {"top1": 20.0, "epoch": 7}, "val_selected": None}])
    assert folded["last"]["top1"]["mean"] == 15.0
    assert folded["last"]["epoch"] == [5, 7]
    assert folded["val_selected"] is None


def test_summarize_epochs_reports():
    y = np.array([0, 1])
    good, bad = np.array([[2.0, 0], [0, 2.0]]), np.array([[0, 2.0], [2.0, 0]])
    scores = np.stack([bad, good, bad])
    val = np.stack([good, bad, bad])
    out = summarize_epochs([5, 10, 15], scores, y, val, y)
    assert out["best_test"] == {"epoch": 10, "top1": 100.0, "top5": 100.0}
    assert out["last"]["epoch"] == 15 and out["last"]["top1"] == 0.0
    assert out["val_selected"]["epoch"] == 5 and out["val_selected"]["top1"] == 0.0   # chosen on val, not test
    assert summarize_epochs([5], scores[:1], y)["val_selected"] is None


def test_fuse_is_weighted_mean_of_probabilities():
    a, b = np.array([[5.0, 0.0]]), np.array([[0.0, 1.0]])
    fused = fuse({"a": a, "b": b}, {"a": 0.25, "b": 0.75})
    assert np.allclose(fused, 0.25 * softmax(a) + 0.75 * softmax(b))
    with pytest.raises(ValueError, match="eval.ensemble.weights"):
        fuse({"a": a, "b": b}, {"a": 1.0})


def test_select_weights_prefers_informative_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 200)
    informative = np.eye(4)[y] * 3 + rng.normal(size=(200, 4))
    noise = rng.normal(size=(200, 4)) * 3
    w = select_weights({"good": informative, "noise": noise}, y, step=0.25)
    assert w["good"] > w["noise"]
    assert sum(w.values()) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="validation split is empty"):
        select_weights({"good": informative[:0]}, y[:0])
