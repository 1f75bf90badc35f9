"""Pretraining end to end on a tiny synthetic dataset: artifacts, logs, resume, streams, errors, schedule."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from safetensors.torch import load_file

from mgfm.config import resolve
from mgfm.models import load_encoder
from mgfm.models.losses import DecorrelationWeights
from mgfm.core.layout import STREAMS
from mgfm.train.augment import AugmentConfig
from mgfm.train.checkpoint import CHECKPOINT_DIR, LAST
from mgfm.train.skeleton_clips import PackedClips
from mgfm.train.distributed import init_distributed
from mgfm.train.loop import StepContext
from mgfm.train.pretrain import make_step, pretrain_skeleton
from mgfm.train.schedule import learning_rate

from tests.support.skeleton import synthetic_skeleton, write_synthetic_skeleton

PRETRAIN = resolve("pretrain", {})

TINY = {
    "model": {"num_frames": 8, "hidden": 16, "depth": 1, "heads": 1, "drop_path": 0.1,
              "projector_dims": [32, 32], "instance_projector_dims": [32, 48]},
    "train": {"epochs": 4, "batch_size": 8, "lr": 1e-3, "milestones": [3], "warmup_epochs": 1,
              "checkpoint_every": 2, "log_every_steps": 2},
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "pretrain"
    write_synthetic_skeleton(path, n=36, frames=16, seed=3)
    return path


def weights_of(model_dir):
    return load_file(str(model_dir / "encoder.safetensors"))


def test_pretrain_writes_encoder_card_and_curves(dataset, tmp_path):
    out = pretrain_skeleton(dataset, "motion", tmp_path / "motion", TINY, seed=11)
    card = json.loads((out / "card.json").read_text())
    assert card["stream"] == "motion" and card["feature_dim"] == 32 and card["num_frames"] == 8
    assert card["num_joints"] == 63 and card["epochs"] == 4 and card["seed"] == 11
    assert card["data"]["num_clips"] == 36 and "git_revision" in card
    enc = load_encoder(out)
    assert enc(torch.randn(2, 3, 8, 63)).shape == (2, 32)
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    for key in ("loss", "sim", "vac", "xcorr", "lr", "clips_per_s", "sim_instance"):
        assert key in rows[0]
    assert float(rows[3]["lr"]) == pytest.approx(1e-4)            # x0.1 after milestone 3
    assert (out / "train_steps.csv").exists()
    ckpt = torch.load(out / CHECKPOINT_DIR / LAST, weights_only=True)
    assert ckpt["epoch"] == 4 and "rng" in ckpt and "optimizer" in ckpt


@pytest.mark.slow  # three pretraining runs
def test_resumed_run_ends_with_identical_weights(dataset, tmp_path):
    full = pretrain_skeleton(dataset, "joint", tmp_path / "full", TINY, seed=5)

    class Killed(Exception):
        pass

    def kill_after_three(epoch, row):
        if epoch == 3:  # after epoch 3; the last checkpoint is from epoch 2
            raise Killed

    with pytest.raises(Killed):
        pretrain_skeleton(dataset, "joint", tmp_path / "resumed", TINY, seed=5, on_epoch_end=kill_after_three)
    assert not (tmp_path / "resumed" / "encoder.safetensors").exists()
    assert torch.load(tmp_path / "resumed" / CHECKPOINT_DIR / LAST, weights_only=True)["epoch"] == 2
    resumed = pretrain_skeleton(dataset, "joint", tmp_path / "resumed", TINY, seed=5)
    a, b = weights_of(full), weights_of(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = list(csv.DictReader((resumed / "train_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]           # epoch 3 logged once, not twice
    full_rows = list(csv.DictReader((full / "train_log.csv").open()))
    assert [r["loss"] for r in rows] == [r["loss"] for r in full_rows]


def test_changed_parameters_do_not_resume_a_stale_checkpoint(dataset, tmp_path):
    pretrain_skeleton(dataset, "joint", tmp_path / "m", TINY, seed=5)
    other = {**TINY, "train": {**TINY["train"], "lr": 5e-4}}
    pretrain_skeleton(dataset, "joint", tmp_path / "m", other, seed=5)
    assert (tmp_path / "m" / CHECKPOINT_DIR / "last.stale.pt").exists()
    rows = list(csv.DictReader((tmp_path / "m" / "train_log.csv").open()))
    assert len(rows) == 4 and max(float(r["lr"]) for r in rows) == pytest.approx(5e-4)  # the new run only


def test_each_stream_feeds_the_model_differently(dataset):
    torch.manual_seed(0)
    from mgfm.models import PretrainModel
    from tests.support.models import dste, projectors

    model = PretrainModel(dste(num_frames=8, hidden=16, depth=1, drop_path=0.0), projectors([32, 32], [32, 32]))
    batch = PackedClips(dataset)[list(range(8))]
    info = init_distributed("cpu")
    losses = {}
    for stream in STREAMS:
        ctx = StepContext(0, 0, 0, info, 8, torch.Generator().manual_seed(1))
        losses[stream] = make_step(stream, AugmentConfig.from_section(PRETRAIN["augment"]), DecorrelationWeights.from_section(PRETRAIN["loss"]), 8)(model, batch, ctx)[0].item()
    assert len({round(v, 6) for v in losses.values()}) == 3


def test_a_batch_larger_than_the_clips_trains_with_the_clip_count_naming_the_key(dataset, tmp_path, caplog):
    import logging

    with caplog.at_level(logging.WARNING, logger="mgfm.train.loop"):
        out = pretrain_skeleton(dataset, "joint", tmp_path / "x",
                                {**TINY, "train": {**TINY["train"], "batch_size": 64, "epochs": 1}}, 0)
    said = [r.getMessage() for r in caplog.records if "batch_size" in r.getMessage()]
    assert said == ["pretrain.train.batch_size 64 is more than the 36 training clips of pretrain skeleton/joint: "
                    "training with batch size 36 (the clip count)"]
    rows = list(csv.DictReader((out / "train_log.csv").open()))
    assert [(r["epoch"], r["step"]) for r in rows] == [("1", "1")]        # one step of 36 clips


def test_batch_for_clips_names_the_key_and_refuses_one_clip():
    from mgfm.train.loop import TrainConfig, batch_for_clips

    cfg = TrainConfig.from_section(resolve("rgb_pretrain", {})["stage1"], seed=0, key="rgb_pretrain.stage1")
    assert batch_for_clips(cfg, 10_000) is cfg
    assert batch_for_clips(cfg, 7, world=2).batch_size == 6
    assert cfg.to_dict() == batch_for_clips(cfg, 10_000).to_dict() and "key" not in cfg.to_dict()
    with pytest.raises(ValueError, match=r"1 training clip\(s\), fewer than the 2 one batch needs \(config key "
                                         r"rgb_pretrain.stage1.batch_size"):
        batch_for_clips(cfg, 1)


def test_bad_inputs_fail_before_training(tmp_path, dataset):
    with pytest.raises(ValueError, match="stream"):
        pretrain_skeleton(dataset, "velocity", tmp_path / "x", TINY, seed=0)
    with pytest.raises(ValueError, match="pretrain.model.width: unknown key"):
        pretrain_skeleton(dataset, "joint", tmp_path / "x", {**TINY, "model": {**TINY["model"], "width": 3}}, 0)
    with pytest.raises(ValueError, match="model.num_joints"):
        pretrain_skeleton(dataset, "joint", tmp_path / "x", {**TINY, "model": {**TINY["model"], "num_joints": 22}}, 0)
    data, meta = synthetic_skeleton(10, frames=16)
    meta.loc[4, "valid_len"] = 17
    from mgfm.core.packed import write_packed

    write_packed(tmp_path / "bad", data, meta)
    with pytest.raises(ValueError, match="row 4 .*syn000004"):
        pretrain_skeleton(tmp_path / "bad", "joint", tmp_path / "x", TINY, 0)
    assert not (tmp_path / "x" / "encoder.safetensors").exists()


def test_learning_rate_schedules():
    kw = dict(steps_per_epoch=10, epochs=10, base_lr=1.0)
    assert learning_rate(0, warmup_epochs=1, **kw) == pytest.approx(0.1)
    assert learning_rate(9, warmup_epochs=1, **kw) == pytest.approx(1.0)
    assert learning_rate(49, milestones=[5, 8], gamma=0.1, **kw) == pytest.approx(1.0)
    assert learning_rate(50, milestones=[5, 8], gamma=0.1, **kw) == pytest.approx(0.1)
    assert learning_rate(85, milestones=[5, 8], gamma=0.1, **kw) == pytest.approx(0.01)
    assert learning_rate(10, schedule="cosine", warmup_epochs=1, min_lr=0.0, **kw) == pytest.approx(1.0)
    assert learning_rate(55, schedule="cosine", warmup_epochs=1, min_lr=0.0, **kw) == pytest.approx(0.5)
    assert learning_rate(100, schedule="cosine", warmup_epochs=1, min_lr=0.1, **kw) == pytest.approx(0.1)
    with pytest.raises(ValueError, match="schedule"):
        learning_rate(0, schedule="linear", **kw)
