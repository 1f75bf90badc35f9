"""Top-k counts ties against the prediction; configured ensemble weights must cover every member."""

import numpy as np
import pytest

from mgfm.eval.ensemble import configured_weights
from mgfm.eval.metrics import topk_accuracy


@pytest.mark.parametrize("classes", [2, 5, 32])
def test_constant_logits_score_at_most_chance(classes):
    labels = np.arange(100) % classes
    acc = topk_accuracy(np.zeros((100, classes)), labels, (1, 5))
    assert acc[1] <= 100.0 / classes
    assert acc[5] <= 100.0 * min(5, classes) / classes


def test_ties_count_against_the_true_class():
    scores = np.array([[1.0, 1.0, 0.0],     # true 0 tied with 1: not a top-1 hit, a top-2 hit
                       [0.5, 2.0, 2.0],     # true 2 tied with 1 for first: top-2 hit
                       [3.0, 1.0, 1.0]])    # true 1 tied with 2 behind 0: top-3 only
    acc = topk_accuracy(scores, np.array([0, 2, 1]), (1, 2, 3))
    assert acc == {1: 0.0, 2: pytest.approx(200 / 3), 3: 100.0}


def test_missing_ensemble_weight_is_a_config_error():
    assert configured_weights({"joint": 0.6, "bone": 0.7}, ["joint", "bone"]) == {"joint": 0.6, "bone": 0.7}
    with pytest.raises(ValueError, match=r"eval\.ensemble\.weights has no weight for \['motion'\]"):
        configured_weights({"joint": 0.6, "bone": 0.7}, ["joint", "bone", "motion"])
