"""Frozen feature extraction: table format, metadata, batching independence, stream preparation, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mgfm.cli import main as mgfm_main
from mgfm.core.feature_store import read_feature_info, read_features
from mgfm.models import save_encoder
from mgfm.core.layout import STREAMS, to_stream
from mgfm.train.augment import resample_valid
from mgfm.train.features import extract_features, prepare_clips

from tests.support.models import dste
from tests.support.skeleton import synthetic_skeleton, write_synthetic_skeleton

ARCH = dict(num_frames=8, hidden=16, depth=1, drop_path=0.5)  # DropPath must be off in eval mode


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("feat")
    write_synthetic_skeleton(root / "mg_test", n=21, frames=16, seed=8)
    torch.manual_seed(0)
    enc = dste(**ARCH)
    c = enc.cfg
    card = {"architecture": "dste", "arch": c.to_dict(), "stream": "motion", "feature_dim": c.feature_dim,
            "num_frames": c.num_frames, "num_joints": c.num_joints, "num_channels": c.num_channels}
    save_encoder(root / "model", enc, card)
    return root, enc.eval()


def test_feature_table(setup):
    root, enc = setup
    out = extract_features(root / "model", root / "mg_test", root / "f" / "motion" / "mg_test.parquet", batch_size=5)
    meta, feats = read_features(out)
    assert feats.shape == (21, 32) and feats.dtype == np.float32 and np.isfinite(feats).all()
    _, ref_meta = synthetic_skeleton(21, frames=16, seed=8)
    assert meta["clip_id"].tolist() == ref_meta["clip_id"].tolist()
    assert meta["valid_len"].tolist() == ref_meta["valid_len"].tolist()
    info = read_feature_info(out)
    assert info["dataset"] == "mg_test" and info["card"]["stream"] == "motion"
    # the same numbers as running the frozen encoder by hand on motion input
    data, m = synthetic_skeleton(21, frames=16, seed=8)
    x = to_stream(resample_valid(torch.from_numpy(data), torch.tensor(m["valid_len"].to_numpy()), 8), "motion")
    with torch.no_grad():
        assert np.allclose(feats, enc(x).numpy(), atol=1e-5)


def test_batch_size_does_not_change_features(setup):
    root, _ = setup
    a = read_features(extract_features(root / "model", root / "mg_test", root / "a.parquet", batch_size=4))[1]
    b = read_features(extract_features(root / "model", root / "mg_test", root / "b.parquet", batch_size=256))[1]
    assert np.allclose(a, b, atol=1e-5)


def test_prepare_clips_applies_the_card_stream():
    data, meta = synthetic_skeleton(4, frames=16, seed=1)
    x, valid = torch.from_numpy(data), torch.tensor(meta["valid_len"].to_numpy())
    prepared = {s: prepare_clips(x, valid, {"num_frames": 8, "stream": s}) for s in STREAMS}
    assert all(p.shape == (4, 3, 8, 63) for p in prepared.values())
    assert not torch.allclose(prepared["joint"], prepared["bone"])
    assert not torch.allclose(prepared["joint"], prepared["motion"])


def test_cli_and_errors(setup, tmp_path):
    root, _ = setup
    out = tmp_path / "cli.parquet"
    assert mgfm_main(["features", "extract", "--model", str(root / "model"), "--dataset", str(root / "mg_test"),
                      "--out", str(out), "--params", json.dumps({"features": {"batch_size": 3}})]) == 0
    assert read_features(out)[1].shape == (21, 32)
    write_synthetic_skeleton(tmp_path / "wrong", n=4, frames=16, joints=22)
    with pytest.raises(ValueError, match="22 joints"):
        extract_features(root / "model", tmp_path / "wrong", tmp_path / "x.parquet")
    assert mgfm_main(["features", "extract", "--model", str(tmp_path / "nomodel"), "--dataset",
                      str(root / "mg_test"), "--out", str(tmp_path / "y.parquet")]) == 1
    assert not (tmp_path / "x.parquet").exists() and not (tmp_path / "y.parquet").exists()
