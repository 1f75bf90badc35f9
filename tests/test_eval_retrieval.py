"""Retrieval: vectorised top-k equals the loop baseline, accuracy definition, chunking invariance."""

import numpy as np
import pytest

from mgfm.eval.retrieval import nearest, nearest_loop, retrieval_accuracy, run_retrieval

from tests.support.features import write_synthetic_features


def test_vectorised_matches_loop():
    rng = np.random.default_rng(1)
    gallery, queries = rng.normal(size=(80, 16)), rng.normal(size=(25, 16))
    idx, sim = nearest(gallery, queries, k=5, chunk=7, device="cpu")
    assert np.array_equal(idx, nearest_loop(gallery, queries, 5))
    assert np.all(np.diff(sim, axis=1) <= 1e-6)          # sorted by similarity
    idx2, _ = nearest(gallery, queries, k=5, chunk=1000, device="cpu")
    assert np.array_equal(idx, idx2)                        # chunk size does not matter


def test_cosine_ignores_scale():
    g = np.array([[1.0, 0.0], [0.0, 1.0]])
    q = np.array([[100.0, 1.0], [0.01, 0.02]])
    idx, _ = nearest(g, q, k=1, device="cpu")
    assert idx[:, 0].tolist() == [0, 1]


def test_accuracy_definition():
    neighbour_labels = np.array([[1, 2, 3, 4, 5], [2, 2, 2, 2, 1], [9, 9, 9, 9, 9]])
    acc = retrieval_accuracy(neighbour_labels, np.array([1, 1, 0]), (1, 5))
    assert acc[1] == pytest.approx(100 / 3)     # only the first query's nearest is right
    assert acc[5] == pytest.approx(200 / 3)     # the second's class is 5th


def test_dim_mismatch():
    with pytest.raises(ValueError, match="dim"):
        nearest(np.zeros((3, 4)), np.zeros((2, 5)))


def test_run_retrieval_writes_json(tmp_path):
    p = write_synthetic_features(tmp_path, streams=("joint", "bone"), separation=0.5)
    feats = {s: (str(p["features"] / "skeleton" / s / "mg_train.parquet"),
                 str(p["features"] / "skeleton" / s / "mg_test.parquet")) for s in ("joint", "bone")}
    res = run_retrieval(feats, str(p["taxonomy"]), {}, str(tmp_path / "out"))
    for s in ("joint", "bone"):
        assert res["results"][s]["top5"] >= res["results"][s]["top1"] > 100 / 6
    assert (tmp_path / "out" / "metrics.json").is_file()
    assert "5 nearest" in res["definition"] or "k nearest" in res["definition"]
