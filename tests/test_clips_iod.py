"""MG-IoD precision on hand-computed cases, the raw ablation results, Tables VI/VII and the duration figure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from mgfm.clips.iod import interval_mask, iod_counts, iod_precision, run_iod
from mgfm.clips.sample import durations_figure, sample_clips
from mgfm.tables.iod import build_iod_tables, display_cells

from tests.support.clips import write_corpus


def frame(rows):
    return pd.DataFrame(rows, columns=["video_id", "start_frame", "end_frame"])


def test_interval_mask_is_the_union_of_inclusive_intervals():
    m = interval_mask(np.array([2, 4, 10]), np.array([5, 6, 10]), 12)
    assert np.flatnonzero(m).tolist() == [2, 3, 4, 5, 6, 10]


def test_iod_hand_computed():
    # video a: sampled [0,9] (10 frames), truth [5,14] -> 5 frames overlap
    # video b: sampled [0,4] and [10,19] (15 frames), truth [3,3], [12,13], [13,25] overlapping -> 1 + 8 = 9
    # video c: sampled [0,9], no truth at all -> 0 of 10
    sampled = frame([("a", 0, 9), ("b", 0, 4), ("b", 10, 19), ("c", 0, 9)])
    truth = frame([("a", 5, 14), ("b", 3, 3), ("b", 12, 13), ("b", 13, 25), ("d", 0, 100)])
    assert iod_counts(sampled, truth) == (5 + 9, 10 + 15 + 10)
    assert iod_precision(sampled, truth) == pytest.approx(14 / 35)
    # duplicated sampled intervals count once (union), and clips inside truth give 1
    assert iod_precision(frame([("a", 6, 8), ("a", 6, 8)]), truth) == 1.0
    assert np.isnan(iod_precision(frame([]), truth))


def test_table_cells_mark_missing_paper_numbers():
    df = pd.DataFrame({"x": [50, 60], "ours": [39.391, 40.0],
                       "paper": pd.array([4374, None], dtype="Int64")})
    assert display_cells(df) == [["50", "39.39", "4374"], ["60", "40.00", "–"]]


def test_iod_tables_and_figure_on_a_synthetic_corpus(tmp_path):
    corpus = write_corpus(tmp_path, n_labeled=6, n_unlabeled=3, seed=5, frames_range=(1500, 2500))
    out = tmp_path / "tables"
    params = {"iod_quotas": [5, 50], "iod_taus": [0.1, 0.3, 0.99], "iod_tau_table_quota": 80}
    raw = run_iod(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "iod.json", seed=2,
                  params=params)
    assert [r["quota"] for r in raw["quota_sweep"]] == [5, 50] and raw["tau_sweep_quota"] == 80
    assert raw["tau_sweep"][2]["precision_pct"] is None  # nothing sampled: no precision, not a number
    tables = build_iod_tables(tmp_path / "iod.json", out)
    t6, t7 = tables["table6"], tables["table7"]
    assert t6["Sampling Number"].tolist() == [5, 50]
    assert t6["Generated Samples"].tolist()[0] == 5 * 3  # 3 test videos with plenty of room
    assert t6["Generated Samples"].iloc[1] > t6["Generated Samples"].iloc[0]
    # the paper's numbers appear only for settings the paper has (quota 50 at tau 0.3; tau 0.1/0.3 at quota 80)
    assert t6["Paper Generated Samples"].tolist()[1] == 4374 and pd.isna(t6["Paper Generated Samples"].iloc[0])
    assert t7["Paper MG-IoD Precision (%)"].tolist()[:2] == [39.47, 40.57]
    # synthetic pose scores are >= 0.6 outside cut-ins: tau 0.99 rejects every candidate
    assert t7["Generated Samples"].tolist()[2] == 0
    assert all(0 < v < 100 for v in t6["MG-IoD Precision (%)"])
    for stem in ("table6_iod_quota", "table7_iod_tau"):
        assert (out / f"{stem}.md").read_text().count("\n|") >= 3 and (out / f"{stem}.tex").is_file()
        assert pd.read_csv(out / f"{stem}.csv").shape[0] in (2, 3)

    clips = sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "clips.parquet",
                         tmp_path / "stats.csv", seed=2)
    # the table's quota-50 row is the same sampler on the same streams as the main run's test videos
    test_ids = corpus["manifest_df"].query("split == 'test'").video_id
    assert (clips.video_id.isin(test_ids)).sum() == t6["Generated Samples"].iloc[1]
    png = tmp_path / "fig" / "fig4.png"
    durations_figure(tmp_path / "clips.parquet", corpus["manifest"], corpus["annotations"], png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


def test_iod_tables_show_paper_numbers_only_at_the_papers_settings(tmp_path):
    def sweep(**setting):
        return {"clips": 10, "precision_pct": 41.234, "videos_at_quota": 1, **setting}

    raw = {"n_videos": 2, "n_instances": 7, "retry_budget": 100, "seed": 0, "tau": 0.5, "tau_sweep_quota": 80,
           "quota_sweep": [sweep(quota=50, tau=0.5)], "tau_sweep": [sweep(quota=80, tau=0.3)]}
    (tmp_path / "iod.json").write_text(json.dumps(raw))
    tables = build_iod_tables(tmp_path / "iod.json", tmp_path)
    # tau 0.5 is not the paper's Table VI setting (0.3): no paper number; quota 80 is Table VII's
    assert pd.isna(tables["table6"]["Paper Generated Samples"].iloc[0])
    assert tables["table7"]["Paper MG-IoD Precision (%)"].tolist() == [40.57]
    assert tables["table6"]["MG-IoD Precision (%)"].tolist() == [41.23]
    assert "| 50 | 10 | 41.23 | 1/2 | – | – |" in (tmp_path / "table6_iod_quota.md").read_text()
    del raw["tau_sweep"]
    (tmp_path / "iod.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"iod.json: missing key\(s\) \['tau_sweep'\]"):
        build_iod_tables(tmp_path / "iod.json", tmp_path)
