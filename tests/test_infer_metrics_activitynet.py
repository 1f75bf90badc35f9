"""Spotting metrics against ActivityNet's detection evaluation (fixture made by running its code), the SMG start
kit's rule, the standard mAP averages and the class-prior baseline over tie orders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mgfm.infer.metrics import (ACTIVITYNET_TIOUS, THUMOS_TIOUS, Segments, activitynet_rank, cumulative_hits,
                                spotting_metrics, tie_order_metrics)

ROOT = Path(__file__).resolve().parents[1]
#: made by running ActivityNet's evaluation; shared/ sits in the checkout or in a folder above it
FIXTURES = [d / "shared" / "fixtures" / "activitynet" / "detection_cases.json" for d in (ROOT, *ROOT.parents)]


def _fixture() -> dict:
    for path in FIXTURES:
        if path.is_file():
            return json.loads(path.read_text())
    pytest.skip("the ActivityNet fixture (shared/fixtures/activitynet, beside the repo) is not here")


def _segments(rows: list[dict], pred: bool) -> pd.DataFrame:
    """The fixture's [start, end) segments as our inclusive frames start..end - 1."""
    return pd.DataFrame({"video_id": [r["video"] for r in rows], "start_frame": [r["start"] for r in rows],
                         "end_frame": [r["end"] - 1 for r in rows], "class_id": [r["label"] for r in rows],
                         **({"confidence": [float(r["score"]) for r in rows]} if pred else {})},
                        columns=["video_id", "start_frame", "end_frame", "class_id"] + (["confidence"] if pred else []))


def test_fixture_states_its_conventions():
    fx = _fixture()
    assert "inclusive frames s..e are [s, e + 1)" in fx["segments"]
    assert "argsort" in fx["per_class"] and len(fx["cases"]) == 43
    assert fx["tiou_thresholds"] == [0.3, *ACTIVITYNET_TIOUS]


def test_matching_and_ap_equal_activitynet_on_every_fixture_case():
    fx = _fixture()
    tious = fx["tiou_thresholds"]
    for case in fx["cases"]:
        pred, gt = _segments(case["predictions"], True), _segments(case["ground_truth"], False)
        seg = Segments(pred, gt)
        rank = activitynet_rank(seg.conf, seg.cls)
        tp = seg.true_positives(rank, tious)
        assert tp.astype(int).tolist() == case["expected"]["tp"], case["name"]
        ap = {str(c): v.tolist() for c, v in seg.class_ap(tp, rank).items()}
        assert ap == case["expected"]["ap"], case["name"]          # exact, to the last bit


def test_equal_tiou_takes_the_last_ground_truth_so_both_predictions_hit():
    gt = _segments([{"video": "a", "label": 0, "start": 0, "end": 10}, {"video": "a", "label": 0, "start": 10,
                                                                         "end": 20}], False)
    pred = _segments([{"video": "a", "label": 0, "start": 5, "end": 15, "score": 0.9},
                      {"video": "a", "label": 0, "start": 0, "end": 10, "score": 0.8}], True)
    m = spotting_metrics(pred, pred, gt, [0.3], ["c"])
    assert m["tiou"]["0.3"]["f1"] == 100 and m["tiou"]["0.3"]["map"] == 100


def test_standard_averages_are_means_over_their_thresholds():
    gt = _segments([{"video": "a", "label": 0, "start": 0, "end": 100}], False)
    pred = _segments([{"video": "a", "label": 0, "start": 0, "end": 70, "score": 0.9}], True)   # tIoU 0.7
    m = spotting_metrics(pred, pred, gt, [0.3, 0.5, 0.7], ["c"])
    assert m["map"]["0.7"] == 100 and m["map"]["0.75"] == 0
    assert m["map_thumos"] == pytest.approx(100 * 5 / 5) and m["map_mean"] == 100
    assert m["map_activitynet"] == pytest.approx(100 * sum(t <= 0.7 for t in ACTIVITYNET_TIOUS) / 10)
    assert set(m["map"]) == {f"{t:g}" for t in (*ACTIVITYNET_TIOUS, *THUMOS_TIOUS)}


def test_exclusive_reading_of_the_ends_lowers_tiou():
    gt = _segments([{"video": "a", "label": 0, "start": 0, "end": 10}], False)       # frames 0..9
    pred = _segments([{"video": "a", "label": 0, "start": 5, "end": 15, "score": 0.9}], True)   # frames 5..14
    inc = spotting_metrics(pred, pred, gt, [1 / 3], ["c"])                 # [0,10) vs [5,15): 5/15
    exc = spotting_metrics(pred, pred, gt, [1 / 3], ["c"], inclusive=False)   # [0,9) vs [5,14): 4/14
    assert inc["tiou"]["0.333333"]["f1"] == 100 and exc["tiou"]["0.333333"]["f1"] == 0


def _smg_rows():
    gt = pd.DataFrame([("v", 0, 10, 1), ("v", 12, 22, 1), ("v", 40, 40, 2), ("w", 0, 10, 1)],
                      columns=["video_id", "start_frame", "end_frame", "class_id"])
    pred = pd.DataFrame([("v", 2, 20, 1, 0.1),       # overlaps both class-1 instances: (10-2)/(20-0) = 0.4 and
                         ("v", 40, 40, 2, 0.9),      # (20-12)/(22-2) = 0.4; a one-frame instance: 0/0, no hit
                         ("v", 0, 10, 0, 0.9),       # wrong class
                         ("w", 3, 10, 1, 0.5)],      # (10-3)/(10-0) = 0.7
                        columns=["video_id", "start_frame", "end_frame", "class_id", "confidence"])
    return gt, pred


def test_smg_scorer_follows_the_start_kit():
    gt, pred = _smg_rows()
    m = spotting_metrics(pred, pred, gt, [0.3, 0.5], ["a", "b", "c"], scorer="smg")
    assert m["scorer"] == "smg"
    row = m["tiou"]["0.3"]
    assert row["n_hit"] == 3 and row["recall"] == 75 and row["precision"] == 75          # one prediction, two hits
    assert row["f1"] == pytest.approx(100 * 2 * 0.75 * 0.75 / (1.5 + 1e-7))
    assert m["tiou"]["0.5"]["n_hit"] == 1
    assert m["per_class"]["0.3"]["b"]["n_hit"] == 3 and m["per_class"]["0.3"]["b"]["precision"] == 150
    # the one-to-one rule gives the wide prediction only one instance, and none at all at 0.5
    one = spotting_metrics(pred, pred, gt, [0.3, 0.5], ["a", "b", "c"])
    assert one["tiou"]["0.3"]["n_hit"] == 3 and one["tiou"]["0.5"]["n_hit"] == 2
    assert m["map"] == one["map"]                                          # mAP is ActivityNet's either way
    # "above" the threshold: an overlap of exactly 0.4 is no hit at 0.4
    assert spotting_metrics(pred, pred, gt, [0.4], ["a", "b", "c"], scorer="smg")["tiou"]["0.4"]["n_hit"] == 1


def test_cumulative_hits_count_what_each_kept_prefix_scores():
    gt, pred = _smg_rows()
    for scorer in ("activitynet", "smg"):
        conf, cum = cumulative_hits(pred, gt, [0.3, 0.5], scorer)
        assert conf.tolist() == sorted(pred["confidence"], reverse=True)
        for i in (1, 2, 3):           # cuts between different confidences: 0.9 | 0.5 | 0.1
            kept = pred[pred["confidence"] >= conf[i]]
            m = spotting_metrics(kept, kept, gt, [0.3, 0.5], ["a", "b", "c"], scorer=scorer)
            assert cum[:, i].tolist() == [m["tiou"]["0.3"]["n_hit"], m["tiou"]["0.5"]["n_hit"]], (scorer, i)


def _prior_baseline(n_windows: int = 40):
    """A class-prior-like proposal set: one confidence per class, windows tiling two videos."""
    rows = [(v, 10 * k, 10 * k + 9, c, p) for v in ("a", "b") for c, p in ((0, 0.6), (1, 0.4))
            for k in range(n_windows)]
    ranked = pd.DataFrame(rows, columns=["video_id", "start_frame", "end_frame", "class_id", "confidence"])
    gt = pd.DataFrame([("a", 3, 14, 0), ("a", 100, 109, 0), ("b", 200, 215, 1), ("b", 55, 62, 0)],
                      columns=["video_id", "start_frame", "end_frame", "class_id"])
    return ranked, gt


def test_baseline_mean_over_tie_orders_does_not_depend_on_row_order():
    ranked, gt = _prior_baseline()
    args = (gt, [0.3, 0.5], ["a", "b"], "activitynet", 50, 7)
    m = tie_order_metrics(ranked, 0.5, *args)
    shuffled = ranked.sample(frac=1.0, random_state=3).reset_index(drop=True)
    again = tie_order_metrics(shuffled, 0.5, *args)
    assert m["tie_orders"]["n_orders"] == 50 and m["tie_orders"]["n_tied"] == len(ranked) - 2
    spread = m["tie_orders"]["map_mean"]
    assert spread["min"] < spread["max"] and spread["mean"] == pytest.approx(m["map_mean"])
    # another row order changes single orders but hardly the mean (50 orders; ranks are random either way)
    assert abs(again["map_mean"] - m["map_mean"]) < 3 * spread["sd"] / np.sqrt(50) * np.sqrt(2) + 1e-9
    # the same seed and rows give the same figures
    assert tie_order_metrics(ranked, 0.5, *args) == m
    # a single fixed order is one of the spread's samples, not the figure
    fixed = spotting_metrics(ranked[ranked["confidence"] >= 0.5], ranked, gt, [0.3, 0.5], ["a", "b"])
    assert spread["min"] <= fixed["map_mean"] <= spread["max"]
    assert m["tiou"]["0.3"]["n_pred"] == 80 and isinstance(m["tiou"]["0.3"]["n_gt"], int)
    assert set(m["tie_orders"]["f1"]) == {"0.3", "0.5"}
