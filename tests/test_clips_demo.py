"""End to end on a tiny demo corpus (render -> download -> demo pose model -> sampler): no sampled clip ever
crosses a cut-in, whose frames the demo generator records in its ground truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from mgfm.pose.params import DEMO_MODEL

from tests.support.workflow import snakemake

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.pipeline


@pytest.mark.slow
def test_no_clip_crosses_a_demo_cut_in(tmp_path):
    # the pose rule reads the shipped demo model beside the Snakefile
    assert DEMO_MODEL.is_file(), "the shipped demo pose model is missing"
    cfg = yaml.safe_load((REPO / "config.yaml").read_text())
    cfg["dataset"]["demo"] = {**cfg["dataset"].get("demo", {}), "n_videos": 4, "n_subjects": 4, "n_labeled": 3,
                              "labeled_duration_s": [20.0, 24.0], "unlabeled_duration_s": [20.0, 24.0],
                              "cut_ins": [2, 3]}
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    snakemake(tmp_path, "results/clips/clips.parquet", timeout=900)
    clips = pd.read_parquet(tmp_path / "results/clips/clips.parquet")
    assert len(clips) > 10
    n_cuts = 0
    for vid, rows in clips.groupby("video_id"):
        cuts = np.load(tmp_path / f"results/demo/keypoints/{vid}.npz")["cut_ins"]
        n_cuts += len(cuts)
        for start, end in cuts:
            crossing = rows[(rows.start_frame <= end) & (rows.end_frame >= start)]
            assert crossing.empty, f"{vid}: clips {crossing.clip_index.tolist()} cross the cut-in {start}..{end}"
    assert n_cuts >= 4
