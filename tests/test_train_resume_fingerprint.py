"""Resume trusts the fingerprint: data content and code are in it, a finished or foreign checkpoint is set aside."""

from __future__ import annotations

import csv
import logging
import shutil

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mgfm.core.packed import open_packed, write_packed
from mgfm.eval.finetune import run_finetune
from mgfm.train.checkpoint import CHECKPOINT_DIR, LAST, code_version, dataset_digest
from mgfm.train.pretrain import pretrain_skeleton

from tests.support.features import write_synthetic_encoders
from tests.support.skeleton import synthetic_skeleton

TINY = {
    "model": {"num_frames": 8, "hidden": 16, "depth": 1, "heads": 1, "drop_path": 0.1,
              "projector_dims": [32, 32], "instance_projector_dims": [32, 48]},
    "train": {"epochs": 2, "batch_size": 8, "lr": 1e-3, "milestones": [], "warmup_epochs": 0,
              "checkpoint_every": 1, "log_every_steps": 2},
}
FT = {"seeds": [0], "validation": {"fraction": 0.25},
      "finetune": {"eval_every": 1, "label_smoothing": 0.0, "keep_checkpoints": True,
                   "train": {"epochs": 1, "batch_size": 16, "lr": 1e-3, "warmup_epochs": 0,
                             "schedule": "step", "milestones": [], "checkpoint_every": 1}}}


def _write(path, data, meta):
    if path.exists():
        shutil.rmtree(path)
    write_packed(path, data, meta, {"source": "synthetic"})


def _weights(model_dir):
    return load_file(str(model_dir / "encoder.safetensors"))


def test_dataset_digest_follows_content_not_path_or_shape(tmp_path):
    data, meta = synthetic_skeleton(12, frames=8, seed=1)
    _write(tmp_path / "a", data, meta)
    _write(tmp_path / "copy", data, meta)
    assert dataset_digest(tmp_path / "a") == dataset_digest(tmp_path / "copy")
    before = dataset_digest(tmp_path / "a")
    changed = data.copy()
    changed[3, 2, 0, 0] += 0.25                      # one score: same clip count, same shape, other data
    _write(tmp_path / "a", changed, meta)
    assert dataset_digest(tmp_path / "a") != before
    with pytest.raises(FileNotFoundError, match="not a packed dataset"):
        dataset_digest(tmp_path / "nothing")


def test_code_version_follows_the_sources(tmp_path, monkeypatch):
    import mgfm

    fake = tmp_path / "mgfm"
    (fake / "train").mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    (fake / "train" / "loop.py").write_text("x = 1\n")
    monkeypatch.setattr(mgfm, "__file__", str(fake / "__init__.py"))
    first = code_version("train")
    assert first.startswith(mgfm.__version__ + "+")
    (fake / "train" / "loop.py").write_text("x = 2\n")
    assert code_version("train") != first
    with pytest.raises(ValueError, match="mgfm.nope"):
        code_version("nope")


def test_rebuilt_dataset_with_same_shape_is_not_resumed(tmp_path, caplog):
    data, meta = synthetic_skeleton(24, frames=16, seed=3)
    ds = tmp_path / "pretrain"
    _write(ds, data, meta)
    out = pretrain_skeleton(ds, "joint", tmp_path / "m", TINY, seed=5)
    old = _weights(out)
    # a new joint_min_score: same clips, same shape, other values, rebuilt at the same path
    changed = data.copy()
    changed[:, 2] = np.where(changed[:, 2] < 0.6, 0.0, changed[:, 2])
    changed[:, :2] *= 1.5
    _write(ds, changed, meta)
    with caplog.at_level(logging.WARNING, logger="mgfm.train.checkpoint"):
        pretrain_skeleton(ds, "joint", out, TINY, seed=5)
    assert "other parameters, stream or data" in caplog.text
    assert (out / CHECKPOINT_DIR / "last.stale.pt").is_file()
    new = _weights(out)
    assert any(not torch.equal(old[k], new[k]) for k in old)
    fresh = pretrain_skeleton(ds, "joint", tmp_path / "fresh", TINY, seed=5)
    ref = _weights(fresh)
    assert all(torch.equal(ref[k], new[k]) for k in ref)       # exactly what a clean run on the new data gives


def test_rerun_of_a_finished_pretraining_retrains(tmp_path, caplog):
    """A forced rerun finds the finished run's checkpoint in the model folder: it trains again, same result."""
    data, meta = synthetic_skeleton(24, frames=16, seed=3)
    ds = tmp_path / "pretrain"
    _write(ds, data, meta)
    out = pretrain_skeleton(ds, "joint", tmp_path / "m", TINY, seed=5)
    first = _weights(out)
    with caplog.at_level(logging.INFO):
        pretrain_skeleton(ds, "joint", out, TINY, seed=5)
    assert "resuming" not in caplog.text
    assert "finished run" in caplog.text
    assert (out / CHECKPOINT_DIR / "last.finished.pt").is_file()
    assert torch.load(out / CHECKPOINT_DIR / LAST, weights_only=True)["epoch"] == 2
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    again = _weights(out)
    assert all(torch.equal(first[k], again[k]) for k in first)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("ft")
    return root, write_synthetic_encoders(root, streams=("joint",), num_classes=4, n_train=48, n_test=24,
                                          frames=8, hidden=8)


def _finetune(root, p, protocol="finetune"):
    return run_finetune(protocol, str(p["models"] / "skeleton" / "joint"), str(p["packs"] / "skeleton" / "mg_train"),
                        str(p["packs"] / "skeleton" / "mg_test"), str(p["taxonomy"]), FT,
                        str(root / "eval" / protocol), global_seed=11)


def test_finetuning_is_not_resumed_on_a_retrained_encoder_or_new_data(tiny, caplog):
    root, p = tiny
    _finetune(root, p)
    ckpts = root / "eval" / "finetune" / "seed0" / "checkpoints"
    assert (ckpts / LAST).is_file()
    # the encoder is retrained in place: same card keys, other weights
    enc = p["models"] / "skeleton" / "joint" / "encoder.safetensors"
    weights = load_file(str(enc))
    from safetensors.torch import save_file
    save_file({k: v + 0.01 for k, v in weights.items()}, str(enc))
    with caplog.at_level(logging.INFO):
        _finetune(root, p)
    assert "resuming" not in caplog.text and "checkpoint of another setup" in caplog.text
    caplog.clear()
    # the training data is rebuilt in place with the same shape
    train = p["packs"] / "skeleton" / "mg_train"
    data, meta = open_packed(train, mmap=False)
    _write(train, data * 1.1, meta)
    with caplog.at_level(logging.INFO):
        _finetune(root, p)
    assert "resuming" not in caplog.text and "checkpoint of another setup" in caplog.text


def test_rerun_of_a_finished_finetuning_retrains(tiny, caplog):
    root, p = tiny
    first = _finetune(root, p, "scratch")
    scores = root / "eval" / "scratch" / "seed0" / "scores" / "epoch_0001.npz"
    mtime = scores.stat().st_mtime_ns
    with caplog.at_level(logging.INFO):
        again = _finetune(root, p, "scratch")
    assert "resuming" not in caplog.text
    assert scores.stat().st_mtime_ns != mtime
    assert (root / "eval" / "scratch" / "seed0" / "checkpoints" / "last.finished.pt").is_file()
    assert again["per_seed"] == first["per_seed"]
