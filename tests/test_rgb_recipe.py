"""SMILE's released pretraining recipe around the model: the early-stopped schedule, multiple sampling, the optimiser's
weight-decay exemptions and the teacher's input normalisation, each with its switch."""

from __future__ import annotations

import json
import logging
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mgfm.config import resolve
from mgfm.models.rgb.student import SmileModel, StudentConfig
from mgfm.train.loop import StepContext, TrainConfig
from mgfm.train.schedule import learning_rate

from tests.support.models import student_config
from tests.support.rgb import write_synthetic_rgb

pytest.importorskip("transformers")
MODEL = {"num_frames": 8, "image_size": 64, "patch_size": 16, "tubelet_size": 2, "hidden": 32, "depth": 1, "heads": 2,
         "mlp_ratio": 2.0, "decoder_hidden": 16, "decoder_depth": 1, "decoder_heads": 2}
TRAIN = {"epochs": 2, "batch_size": 16, "lr": 0.001, "warmup_epochs": 1, "checkpoint_every": 1, "log_every_steps": 1}


def _params(**over):
    return {"model": MODEL, "teacher": {"kind": "onnx_backbone", "input_size": [64, 64]}, "stage1": TRAIN,
            "stage2": TRAIN, **over}


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    path = tmp_path_factory.mktemp("rgb") / "pretrain"
    write_synthetic_rgb(path, 32, seed=3)
    return path


def test_the_schedule_is_sized_for_schedule_epochs_and_stops_at_epochs():
    block = resolve("rgb_pretrain", {})["stage1"]
    cfg = TrainConfig.from_section(block, seed=0)
    assert (cfg.epochs, cfg.schedule_epochs, cfg.schedule_length) == (150, 801, 801)
    steps = 10
    last = learning_rate(150 * steps - 1, steps, cfg.schedule_length, cfg.lr, cfg.schedule, cfg.warmup_epochs,
                         cfg.milestones, cfg.gamma, cfg.min_lr)
    # SMILE's recipe never anneals: at epoch 150 of 801 the cosine is still near its peak (~1.43e-4 of 1.5e-4)
    assert 1.4e-4 < last < 1.45e-4
    assert TrainConfig.from_section({**block, "schedule_epochs": 0}, seed=0).schedule_length == 150
    with pytest.raises(ValueError, match="schedule_epochs 100 is shorter than train.epochs 150"):
        TrainConfig.from_section({**block, "schedule_epochs": 100}, seed=0)
    # blocks that never stop early need not carry the key (the skeleton and fine-tuning schedules)
    assert TrainConfig.from_section(resolve("pretrain", {})["train"], seed=0).schedule_epochs == 0


def test_raising_the_stop_epoch_resumes_the_stopped_run(clips, tmp_path, caplog):
    """With the schedule sized apart from the stop epoch, a run stopped at epoch 2 continues to epoch 3 and ends
    bit-identical to a run straight to epoch 3; the card records where it stopped and the last lr."""
    from mgfm.train.rgb.pretrain import pretrain_rgb

    stopped = {**TRAIN, "schedule_epochs": 6}
    pretrain_rgb(clips, 1, tmp_path / "run", _params(stage1=stopped), seed=0)
    card = json.loads((tmp_path / "run" / "card.json").read_text())
    assert card["schedule"]["stop_epoch"] == 2 and card["schedule"]["schedule_epochs"] == 6
    with caplog.at_level(logging.INFO, logger="mgfm.train.loop"):
        pretrain_rgb(clips, 1, tmp_path / "run", _params(stage1={**stopped, "epochs": 3}), seed=0)
    assert "resuming after epoch 2 of 3" in caplog.text
    straight = pretrain_rgb(clips, 1, tmp_path / "straight", _params(stage1={**stopped, "epochs": 3}), seed=0)
    a = load_file(str(tmp_path / "run" / "smile_model.safetensors"))
    b = load_file(str(straight / "smile_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    rows = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert len(rows) == 4                                           # epochs 1, 2, 3: the resumed run's curve goes on


def _recording_model(cfg: StudentConfig, dim: int):
    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(()))
            self.seen = []

        def forward(self, x, mask):
            self.seen.append((x.detach(), mask.detach()))
            return torch.zeros(len(mask), int(mask[0].sum()), dim) + self.w
    return Recorder()


@pytest.mark.parametrize("stage", [1, 2])
def test_multiple_sampling_runs_the_clips_again_with_the_shuffled_batch_masks(stage):
    from mgfm.config.steps import resolve_step
    from mgfm.models.rgb.teacher import build_teacher
    from mgfm.train.rgb.motion import MotionConfig
    from mgfm.train.rgb.pretrain import make_step

    p = resolve_step(f"pretrain_rgb_stage{stage}", _params())
    cfg = StudentConfig.from_section(p["model"])
    teacher = build_teacher(p["teacher"], cfg.grid[1:])
    motion = MotionConfig.from_section(p["motion"]) if stage == 1 else None
    x = torch.from_numpy(np.random.default_rng(0).integers(0, 255, (6, 8, 64, 64, 3), dtype=np.uint8))
    ctx = lambda: StepContext(0, 0, 0, SimpleNamespace(rank=0, world=1), 6, torch.Generator().manual_seed(4))  # noqa: E731
    model = _recording_model(cfg, teacher.dim)
    loss, _ = make_step(cfg, teacher, p["masking"], stage, motion, None)(model, {"x": x}, ctx())
    clips, mask = model.seen[0]
    assert clips.shape[0] == mask.shape[0] == 12 and torch.equal(clips[:6], clips[6:])
    first, second = mask[:6], mask[6:]
    rows = lambda m: sorted(map(tuple, m.int().tolist()))  # noqa: E731
    assert rows(first) == rows(second) and not torch.equal(first, second)   # the same masks, shuffled over clips
    once = {**p["masking"], "multiple_sampling": False}
    single = _recording_model(cfg, teacher.dim)
    make_step(cfg, teacher, once, stage, motion, None)(single, {"x": x}, ctx())
    assert single.seen[0][1].shape[0] == 6 and torch.equal(single.seen[0][1], first)
    assert torch.isfinite(loss)


def test_weight_decay_exempts_biases_norms_and_the_mask_token():
    model = SmileModel(student_config(**MODEL), 24)
    groups = model.optimizer_groups(0.05)
    assert [g["weight_decay"] for g in groups] == [0.05, 0.0]
    exempt = {id(p) for p in groups[1]["params"]}
    names = {n for n, p in model.named_parameters() if id(p) in exempt}
    assert "mask_token" in names and all(n.endswith(("bias", "weight", "mask_token")) for n in names)
    assert all(p.ndim <= 1 or n == "mask_token" for n, p in model.named_parameters() if n in names)
    # depth 1 + decoder depth 1: patch-embedding bias, 9 per layer (2 norms x 2, q and v biases, 3 output
    # biases), the final norm's 2; the decoder's layer, norm, head bias and the mask token
    assert len(names) == 1 + 9 + 2 + 9 + 2 + 1 + 1
    decays = [n for n, p in model.named_parameters() if id(p) not in exempt]
    assert all(p.ndim >= 2 for n, p in model.named_parameters() if n in decays)
    everything = SmileModel(student_config(**MODEL), 24, decay_exempt=False).optimizer_groups(0.05)
    assert len(everything) == 1 and len(everything[0]["params"]) == len(list(model.parameters()))


def test_the_paper_size_model_exempts_smiles_151_tensors():
    cfg = StudentConfig.from_section(resolve("rgb_pretrain", {})["model"])
    groups = SmileModel(cfg, 768).optimizer_groups(0.05)
    assert [len(g["params"]) for g in groups] == [99, 151]


def test_the_teacher_is_fed_the_imagenet_normalised_clip_unless_asked_otherwise(monkeypatch):
    from mgfm.models.rgb import teacher as teachers
    from mgfm.models.rgb.student import IMAGENET_MEAN, IMAGENET_STD

    made, real = {}, teachers.ClipTeacher
    monkeypatch.setattr(teachers, "ClipTeacher", lambda *a: made.setdefault("args", a))
    block = resolve("rgb_pretrain", {})["teacher"]
    teachers.build_teacher(block, (14, 14))
    assert made.pop("args")[-2:] == (IMAGENET_MEAN, IMAGENET_STD)
    teachers.build_teacher({**block, "input_norm": "own"}, (14, 14))
    assert made.pop("args")[-2:] == (teachers.CLIP_MEAN, teachers.CLIP_STD)
    demo = teachers.build_teacher({**block, "kind": "onnx_backbone", "input_size": [64, 64]}, (4, 4))
    assert torch.allclose(demo.mean.flatten(), torch.tensor(IMAGENET_MEAN) * 255)
    assert torch.allclose(demo.std.flatten(), torch.tensor(IMAGENET_STD) * 255)
    # the real CLIP tower normalises with what it is given
    clip = real(None, (2, 2), 32, 16, 16, 1, 2, 32, IMAGENET_MEAN, IMAGENET_STD)
    frames = torch.rand(2, 3, 32, 32)
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    hidden = clip.model(pixel_values=(frames - mean) / std).last_hidden_state
    assert torch.allclose(clip(frames), clip.model.post_layernorm(hidden[:, 1:]), atol=1e-6)


def test_stage_2_cache_and_per_epoch_views_exclude_each_other(clips, tmp_path):
    from mgfm.train.rgb.pretrain import pretrain_rgb

    params = _params(teacher={"kind": "onnx_backbone", "input_size": [64, 64], "cache": True},
                     augment={"stages": [1, 2]})
    with pytest.raises(ValueError, match=r"rgb_pretrain.teacher.cache .*\(rgb_pretrain.augment.stages lists 2\)"):
        pretrain_rgb(clips, 2, tmp_path / "s2", params, seed=0, init=tmp_path)
    assert not (tmp_path / "s2").exists()
