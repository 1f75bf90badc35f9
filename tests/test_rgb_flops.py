"""The analytic FLOPs of the MG-FM-RGB student and CLIP teacher against torch's FLOP counter."""

from __future__ import annotations

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from mgfm.models.rgb.flops import clip_teacher_forward, student_forward
from mgfm.models.rgb.student import SmileModel, StudentConfig
from mgfm.train.rgb.masking import masked_count, tube_mask

pytest.importorskip("transformers")


def _counted(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def test_student_forward_flops_match_torch():
    cfg = StudentConfig(8, 64, 16, 2, 48, 2, 2, 4.0, 32, 2, 2, 1e-6)
    model = SmileModel(cfg, target_dim=24).eval()
    for config in (model.encoder.videomae.config, model.decoder.config):
        config._attn_implementation = "eager"      # attention as matrix products the counter sees
    masked = masked_count(cfg.grid, 0.75)
    mask = tube_mask(1, cfg.grid, 0.75, torch.Generator().manual_seed(0))
    x = torch.randn(1, 8, 3, 64, 64)
    with torch.no_grad():
        counted = _counted(lambda: model(x, mask))
    ours = student_forward(cfg, masked, 24)
    assert sum(ours.values()) == pytest.approx(counted, rel=0.02)


def test_clip_teacher_flops_match_torch():
    from mgfm.models.rgb.teacher import ClipTeacher

    cfg = StudentConfig(4, 64, 16, 2, 32, 1, 2, 4.0, 16, 1, 2, 1e-6)
    teacher = ClipTeacher(None, (4, 4), image_size=64, patch_size=16, hidden=32, depth=2, heads=2, mlp_dim=64)
    teacher.model.config._attn_implementation = "eager"
    frames = torch.rand(2, 3, 64, 64)                     # T / tubelet = 2 frames of one clip
    counted = _counted(lambda: teacher(frames))
    assert clip_teacher_forward(cfg, 64, 16, 32, 2, 64) == pytest.approx(counted, rel=0.02)
