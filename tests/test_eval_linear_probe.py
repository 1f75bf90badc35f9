"""Linear probe protocol on synthetic features: above chance, fusion helps, reports, determinism, bad input."""

import json

import numpy as np
import pandas as pd
import pytest

from mgfm.config import resolve
from mgfm.eval.splits import check_disjoint, load_labeled, semi_supervised_rows, validation_rows
from mgfm.core.feature_store import read_features, write_features
from mgfm.eval.linear_probe import ProbeConfig, run_linear_probe

from tests.support.features import write_synthetic_features

STREAMS = ("joint", "bone", "motion")
PARAMS = {"seeds": [0, 1], "validation": {"fraction": 0.25},
          "linear_probe": {"epochs": 20, "batch_size": 64, "lr": 0.05, "milestones": [15], "eval_every": 5,
                           "feature_norm": "standardize"}}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    root = tmp_path_factory.mktemp("lp")
    p = write_synthetic_features(root, separation=0.35, num_classes=6)
    feats = {s: (str(p["features"] / "skeleton" / s / "mg_train.parquet"),
                 str(p["features"] / "skeleton" / s / "mg_test.parquet")) for s in STREAMS}
    return root, p, feats


@pytest.fixture(scope="module")
def probe(synthetic):
    root, p, feats = synthetic
    return run_linear_probe(feats, str(p["taxonomy"]), PARAMS, str(root / "lp"), global_seed=3)


def test_probe_above_chance_and_fusion(probe):
    res = probe["results"]
    chance = probe["chance_top1"]
    for s in STREAMS:
        assert res[s]["last"]["top1"]["mean"] > 2 * chance
        assert res[s]["best_test"]["top1"]["mean"] >= res[s]["last"]["top1"]["mean"]
        assert res[s]["last"]["top5"]["mean"] >= res[s]["last"]["top1"]["mean"]
        assert res[s]["val_selected"] is not None
    mean_streams = np.mean([res[s]["last"]["top1"]["mean"] for s in STREAMS])
    assert res["3-stream"]["last"]["top1"]["mean"] >= mean_streams
    assert probe["n_seeds"] == 2 and res["joint"]["last"]["top1"]["n"] == 2


def test_probe_files(synthetic, probe):
    root = synthetic[0]
    on_disk = json.loads((root / "lp" / "metrics.json").read_text())
    assert on_disk["results"]["joint"]["last"]["top1"]["mean"] == pytest.approx(probe["results"]["joint"]["last"]["top1"]["mean"])
    z = np.load(root / "lp" / "scores.npz")
    assert set(z["names"]) == set(STREAMS) | {"3-stream"}
    log = pd.read_csv(root / "lp" / "probe_log.csv")
    assert {"seed", "stream", "epoch", "loss", "test_top1", "val_top1"} <= set(log.columns)
    assert sorted(log["epoch"].unique()) == [5, 10, 15, 20]


def test_probe_is_deterministic(synthetic, probe, tmp_path):
    _, p, feats = synthetic
    again = run_linear_probe({"joint": feats["joint"]}, str(p["taxonomy"]), {**PARAMS, "seeds": [0]},
                             str(tmp_path / "again"), global_seed=3)
    assert again["results"]["joint"]["last"]["top1"]["mean"] == probe["per_seed"][0]["joint"]["last"]["top1"]
    assert again["fusion"] is None


def test_validation_is_whole_training_subjects(synthetic):
    _, p, feats = synthetic
    meta, _ = read_features(feats["joint"][0])
    mask = validation_rows(meta, 0.25, 7)
    held = set(meta["subject_id"][mask])
    assert held and not held & set(meta["subject_id"][~mask])
    assert np.array_equal(mask, validation_rows(meta, 0.25, 7))
    assert not validation_rows(meta, 0.0, 7).any()


def test_semi_supervised_subset():
    rows = semi_supervised_rows(1234, 0.1, 5)
    assert len(rows) == 123 and len(set(rows)) == 123 and rows.max() < 1234
    assert np.array_equal(rows, semi_supervised_rows(1234, 0.1, 5))
    assert not np.array_equal(rows, semi_supervised_rows(1234, 0.1, 6))
    with pytest.raises(ValueError, match="eval.semi_supervised.fraction"):
        semi_supervised_rows(10, 0.0, 0)


def test_bad_label_names_clip(synthetic, tmp_path):
    _, p, feats = synthetic
    meta, x = read_features(feats["joint"][1])
    meta.loc[3, "label"] = 99
    bad = tmp_path / "bad.parquet"
    write_features(bad, meta, x, {"card": {"stream": "joint"}})
    with pytest.raises(ValueError, match=f"clip_id {meta['clip_id'][3]}.*label 99"):
        load_labeled(bad, 6)
    with pytest.raises(ValueError, match="expected stream 'bone'"):
        load_labeled(feats["joint"][1], 6, "bone")


def test_subject_overlap_rejected():
    a = pd.DataFrame({"subject_id": ["s1", "s2"]})
    with pytest.raises(ValueError, match="subject-disjoint"):
        check_disjoint(a, pd.DataFrame({"subject_id": ["s2"]}))


def test_probe_config_checks():
    def probe(values: dict) -> ProbeConfig:
        return ProbeConfig.from_section(resolve("eval", {"linear_probe": values})["linear_probe"])

    with pytest.raises(ValueError, match=r"eval.linear_probe.epoch: unknown key \(did you mean 'epochs'\?\)"):
        probe({"epoch": 3})
    with pytest.raises(ValueError, match="feature_norm"):
        probe({"feature_norm": "zscore"})
    assert probe({}).milestones == (120, 140) and probe({}).lr == 0.006
    # the dataclass takes a resolved block only: it never fills defaults itself
    with pytest.raises(ValueError, match=r"eval.linear_probe: missing keys \['batch_size'"):
        ProbeConfig.from_section({"epochs": 3})
