"""Spotting maths: windows and the face gate, smoothing, NMS, thresholding, matching, AP, threshold choice."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgfm.infer.calibrate import choose_threshold, prior_probs
from mgfm.infer.metrics import average_precision, match, spotting_metrics
from mgfm.infer.spotting import instances, nms, proposals, smooth_probs, temporal_iou
from mgfm.infer.windows import sliding_windows, window_lengths

MERGE = {"smooth": 1, "nms_iou": 0.3, "nms": "all"}


def test_window_lengths_are_prior_quantiles_in_frames():
    assert window_lengths(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), [0.0, 0.5, 1.0], 25.0) == [25, 75, 125]
    assert window_lengths(np.array([0.01]), [0.5], 25.0) == [2]          # never shorter than 2 frames
    with pytest.raises(ValueError, match="prior is empty"):
        window_lengths(np.array([]), [0.5], 25.0)


def test_windows_cover_the_video_and_the_face_gate_uses_every_frame():
    vis = np.ones(23, bool)
    vis[10] = False
    w = sliding_windows(23, [5, 30], 4, vis, 1.0)
    assert (w.length == 0).all()                                          # 30 > 23 frames: no window of it
    assert w.start.tolist() == [0, 4, 8, 12, 16, 18]                       # last one flush with the end
    assert (w.end == w.start + 4).all()
    assert w.visible.tolist() == [True, True, False, True, True, True]    # only 8..12 covers frame 10
    assert sliding_windows(23, [5], 4, vis, 0.8).visible.all()            # 4/5 visible passes 0.8
    assert len(sliding_windows(3, [5], 1, np.ones(3, bool), 1.0)) == 0


def test_smoothing_averages_neighbours_of_one_length_and_zeroes_invisible_windows():
    w = sliding_windows(10, [2], 2, np.ones(10, bool), 1.0)
    w.visible[2] = False
    p = np.tile([[1.0, 0.0]], (len(w), 1))
    s = smooth_probs(p, w, 3)
    assert s[0, 0] == pytest.approx(2 / 3)       # zero padding at the edge
    assert s[1, 0] == pytest.approx(2 / 3)       # the invisible neighbour counts 0
    assert s[2, 0] == 0 and s[3, 0] == pytest.approx(2 / 3)   # never a proposal from an invisible window


def test_nms_keeps_the_most_confident_of_overlapping_windows():
    s, e = np.array([0, 5, 30]), np.array([19, 24, 39])
    conf = np.array([0.5, 0.9, 0.7])
    cls = np.array([1, 2, 1])
    assert sorted(nms(s, e, cls, conf, 0.3, per_class=False).tolist()) == [1, 2]
    assert sorted(nms(s, e, cls, conf, 0.3, per_class=True).tolist()) == [0, 1, 2]
    assert temporal_iou(0, 9, 5, 14) == pytest.approx(5 / 15)


def test_proposals_and_threshold_give_instances_in_time_order():
    w = sliding_windows(100, [10], 10, np.ones(100, bool), 1.0)
    p = np.full((len(w), 3), 0.1)
    p[2] = [0.0, 0.9, 0.1]
    p[6] = [0.8, 0.1, 0.1]
    props = proposals(p, w, MERGE)
    inst = instances(props, 0.5, 25.0, ["a", "b", "c"])
    assert inst[["start_frame", "end_frame", "class_name"]].values.tolist() == [[20, 29, "b"], [60, 69, "a"]]
    assert inst["start_s"].tolist() == [0.8, 2.4] and inst["end_s"].tolist() == [1.2, 2.8]
    none = proposals(p, sliding_windows(100, [10], 10, np.zeros(100, bool), 1.0), MERGE)
    assert len(none) == 0 and len(instances(none, 0.5, 25.0, ["a", "b", "c"])) == 0


def _frame(rows, conf=True):
    cols = ["video_id", "start_frame", "end_frame", "class_id"] + (["confidence"] if conf else [])
    return pd.DataFrame(rows, columns=cols)


def test_matching_needs_the_class_and_the_tiou_and_is_one_to_one():
    gt = _frame([("v", 0, 9, 1), ("v", 50, 59, 2)], conf=False)
    pred = _frame([("v", 0, 9, 1, 0.9), ("v", 2, 11, 1, 0.8), ("v", 50, 59, 3, 0.7), ("v", 55, 64, 2, 0.6)])
    assert match(pred, gt, 0.5).tolist() == [True, False, False, False]   # duplicate, wrong class, IoU 1/3
    assert match(pred, gt, 0.3).tolist() == [True, False, False, True]
    m = spotting_metrics(pred, pred, gt, [0.3, 0.5], ["c0", "c1", "c2", "c3"])
    assert m["tiou"]["0.5"]["f1"] == pytest.approx(100 * 2 * 0.25 * 0.5 / 0.75)
    assert m["tiou"]["0.3"]["precision"] == 50 and m["tiou"]["0.3"]["recall"] == 100
    assert m["per_class"]["0.5"]["c1"]["n_hit"] == 1 and m["per_class"]["0.5"]["c3"]["n_gt"] == 0
    # a prediction in another video never matches
    assert not match(_frame([("w", 0, 9, 1, 0.9)]), gt[gt["video_id"] == "w"], 0.1).any()


def test_average_precision():
    assert average_precision(np.array([True, False, True]), 2) == pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3))
    assert average_precision(np.array([[True, False, True], [False, False, False]]), 2).tolist() == \
        [pytest.approx(0.5 * 1.0 + 0.5 * (2 / 3)), 0.0]
    assert average_precision(np.array([], bool), 3) == 0.0
    with pytest.raises(ValueError, match="n_gt=0"):
        average_precision(np.array([False]), 0)


def test_threshold_is_chosen_on_the_given_videos_maximising_mean_f1():
    gt = _frame([("v", 0, 9, 1), ("v", 20, 29, 1)], conf=False)
    props = _frame([("v", 0, 9, 1, 0.9), ("v", 40, 49, 1, 0.8), ("v", 20, 29, 1, 0.7), ("v", 60, 69, 1, 0.2)])
    best = choose_threshold(props, gt, [0.5])
    assert best["threshold"] == pytest.approx(0.7) and best["f1"] == pytest.approx(100 * 2 * (2 / 3) / (1 + 2 / 3))
    assert choose_threshold(props.iloc[:0], gt, [0.5])["f1"] == 0.0


def test_class_prior_baseline_gives_every_visible_window_the_class_frequencies():
    probs = np.zeros((3, 2))
    out = prior_probs(probs, np.array([True, False, True]), np.array([0.25, 0.75]))
    assert out.tolist() == [[0.25, 0.75], [0.0, 0.0], [0.25, 0.75]]


def test_per_class_nms_lets_a_window_propose_its_second_class():
    w = sliding_windows(40, [10], 5, np.ones(40, bool), 1.0)
    p = np.full((len(w), 3), 0.0)
    p[2] = [0.0, 0.55, 0.45]            # frames 10-19: two likely classes
    p[3] = [0.0, 0.50, 0.50]            # frames 15-24 overlaps it: suppressed within each class
    one = proposals(p, w, {"smooth": 1, "nms_iou": 0.0, "nms": "all"})
    both = proposals(p, w, {"smooth": 1, "nms_iou": 0.0, "nms": "class"})
    assert one[["start_frame", "class_id"]].values.tolist() == [[10, 1]]
    assert sorted(both[["start_frame", "class_id"]].values.tolist()) == [[10, 1], [15, 2]]
    assert both["confidence"].is_monotonic_decreasing


def test_spotting_table_puts_ours_beside_the_baseline_and_cites_miga():
    from mgfm.tables.spotting import spotting_tables

    gt = _frame([("v", 0, 9, 1), ("v", 20, 29, 0)], conf=False)
    ours = spotting_metrics(_frame([("v", 0, 9, 1, 0.9)]), _frame([("v", 0, 9, 1, 0.9)]), gt, [0.3, 0.5, 0.7],
                            ["a", "b"])
    base = spotting_metrics(_frame([("v", 0, 9, 0, 0.5)]), _frame([("v", 0, 9, 0, 0.5)]), gt, [0.3, 0.5, 0.7],
                            ["a", "b"])
    metrics = {"tious": [0.3, 0.5, 0.7], "ours": ours, "class_prior_baseline": base, "members": ["joint"],
               "n_test_videos": 1, "n_gt": 2, "threshold": 0.4, "baseline_threshold": 0.3,
               "validation_videos": ["w"], "window_frames": [10], "stride_frames": 5, "weights": {"joint": 1.0}}
    main, per_class = spotting_tables(metrics)
    assert main.rows[0][2] == "66.7" and main.rows[1][2] == "0.0"       # F1@0.3: one of two found, precisely
    assert main.rows[2][:3] == ["MiGA challenge best (2025), iMiGUE online recognition", "cited, not reproduced",
                                "38.0"]
    assert [r[0] for r in per_class.rows] == ["a", "b"] and per_class.rows[1][-1] == "100.0"


def test_threshold_choice_follows_the_scorer():
    gt = _frame([("v", 0, 9, 1), ("v", 12, 21, 1)], conf=False)
    # one wide proposal finds both instances by the SMG rule (overlap 9/21 with either): precision 200 %, F1 133
    props = _frame([("v", 0, 21, 1, 0.9), ("v", 0, 9, 1, 0.3), ("v", 30, 39, 1, 0.2)])
    smg = choose_threshold(props, gt, [0.3], scorer="smg")
    assert smg["threshold"] == pytest.approx(0.9) and smg["f1"] == pytest.approx(100 * 2 * 2 * 1 / (3 + 1e-7))
    # one-to-one: the wide one takes one instance (tIoU 10/22 with both: the last), the exact one the other
    one = choose_threshold(props, gt, [0.3])
    assert one["threshold"] == pytest.approx(0.3) and one["f1"] == 100 and one["scorer"] == "activitynet"
    with pytest.raises(ValueError, match="infer.evaluate.scorer"):
        choose_threshold(props, gt, [0.3], scorer="miga")


def _table_metrics(scorer: str = "activitynet") -> dict:
    from mgfm.infer.metrics import tie_order_metrics

    gt = _frame([("v", 0, 9, 1), ("v", 20, 29, 0), ("v", 40, 49, 0)], conf=False)
    ours_pred = _frame([("v", 0, 9, 1, 0.9)])
    ours = spotting_metrics(ours_pred, ours_pred, gt, [0.3, 0.5, 0.7], ["a", "b"], scorer)
    exc = spotting_metrics(ours_pred, ours_pred, gt, [0.3, 0.5, 0.7], ["a", "b"], scorer, inclusive=False)
    ours["exclusive_ends"] = {"f1": {t: r["f1"] for t, r in exc["tiou"].items()},
                              **{k: exc[k] for k in ("map_mean", "map_activitynet", "map_thumos")}}
    ranked = _frame([("v", 10 * k, 10 * k + 9, 0, 0.5) for k in range(6)])
    base = tie_order_metrics(ranked, 0.5, gt, [0.3, 0.5, 0.7], ["a", "b"], scorer, 20, 11)
    return {"tious": [0.3, 0.5, 0.7], "ours": ours, "class_prior_baseline": base, "members": ["joint"],
            "n_test_videos": 1, "n_gt": 3, "threshold": 0.4, "baseline_threshold": 0.5, "scorer": scorer,
            "validation_videos": ["w"], "window_frames": [10], "stride_frames": 5, "weights": {"joint": 1.0},
            "fusion": "Skele"}


def test_spotting_table_shows_the_standard_averages_and_the_baseline_over_tie_orders():
    from mgfm.tables.spotting import spotting_tables

    metrics = _table_metrics()
    main, _ = spotting_tables(metrics)
    assert main.columns[-3:] == ["mAP", "mAP@0.5:0.95", "mAP@0.3:0.7"]
    ours, base = metrics["ours"], metrics["class_prior_baseline"]
    assert main.rows[0][-3:] == [f"{ours[k]:.1f}" for k in ("map_mean", "map_activitynet", "map_thumos")]
    spread = base["tie_orders"]
    assert main.rows[1][0].endswith("mean of 20 tie orders)")
    assert main.rows[1][-2] == f"{base['map_activitynet']:.1f} ± {spread['map_activitynet']['sd']:.1f}"
    assert main.records[1]["map_thumos_sd"] == spread["map_thumos"]["sd"]
    notes = " ".join(main.notes)
    assert f"means over 20 random orders of the tied proposals (seed {spread['seed']})" in notes
    assert f"mAP ranged {spread['map_mean']['min']:.1f}-{spread['map_mean']['max']:.1f}" in notes
    exc = ours["exclusive_ends"]
    assert f"ours would score F1@0.3 {exc['f1']['0.3']:.1f} (here {ours['tiou']['0.3']['f1']:.1f})" in notes
    assert "ActivityNet's detection evaluation, one-to-one" in notes
    smg, per_class = spotting_tables(_table_metrics("smg"))
    assert "start kit's rule (infer.evaluate.scorer: smg)" in " ".join(smg.notes) and "smg scorer" in per_class.title


def test_console_line_names_the_scorer_and_the_baseline_spread():
    from mgfm.infer.evaluate import spotting_summary

    m = _table_metrics()
    line = spotting_summary({**m, "members": ["joint", "bone"]})
    base = m["class_prior_baseline"]
    assert line.startswith("spotting (Skele: joint+bone) on 1 test videos, activitynet scorer: F1@0.3/0.5/0.7 ")
    assert f"mAP@0.5:0.95 {m['ours']['map_activitynet']:.1f}," in line
    assert (f"class-prior baseline (mean of 20 tie orders) F1 {base['tiou']['0.3']['f1']:.1f} / "
            f"{base['tiou']['0.5']['f1']:.1f} / {base['tiou']['0.7']['f1']:.1f}, mAP {base['map_mean']:.1f} ± "
            f"{base['tie_orders']['map_mean']['sd']:.1f}") in line
