"""The RGB teacher on a GPU runs in bf16 (targets normalised in float32): the targets must stay close to the
float32 ones. bf16 autocast runs on the CPU too, so the same comparison runs here.

Stated tolerance, on the unit-variance normalised targets: root-mean-square difference below 0.03 and every
token's cosine similarity above 0.995. Measured when written: the demo teacher (the trained demo pose model's
backbone) 0.011 RMS and 0.999 lowest cosine; a random-weight CLIP ViT-B/16 (the paper's structure) 0.004 RMS.
"""

from __future__ import annotations

import pytest
import torch
import yaml

from mgfm.config import resolve
from mgfm.models.rgb.student import RGBEncoder, StudentConfig
from mgfm.models.rgb.targets import teacher_dtype, teacher_targets
from mgfm.models.rgb.teacher import ClipTeacher, build_teacher

from tests.support.workflow import REPO

RMS_TOL, COSINE_MIN = 0.03, 0.995


def smooth_clips(n: int, frames: int, size: int, seed: int) -> torch.Tensor:
    """Clips (n, T, 3, S, S) in [0, 1] with image-like spatial structure (upsampled noise, not white noise)."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n * frames, 3, size // 8, size // 8, generator=g)
    fine = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=False)
    return fine.reshape(n, frames, 3, size, size)


def compare(teacher, clips, tubelet):
    ref = teacher_targets(teacher, clips, tubelet, dtype=torch.float32)
    low = teacher_targets(teacher, clips, tubelet, dtype=torch.bfloat16)
    assert low.dtype == torch.float32 and low.shape == ref.shape  # normalised in float32
    rms = float((low - ref).pow(2).mean().sqrt())
    cosine = float(torch.nn.functional.cosine_similarity(low, ref, dim=-1).min())
    return rms, cosine


def test_demo_teacher_bf16_targets_match_float32():
    p = resolve("rgb_pretrain", yaml.safe_load((REPO / "config.yaml").read_text())["rgb_pretrain"])
    cfg = StudentConfig.from_section(p["model"])
    teacher = build_teacher(p["teacher"], cfg.grid[1:])
    rms, cosine = compare(teacher, smooth_clips(4, cfg.num_frames, cfg.image_size, 1), cfg.tubelet_size)
    assert rms < RMS_TOL and cosine > COSINE_MIN, (rms, cosine)


def test_clip_teacher_bf16_targets_match_float32():
    torch.manual_seed(0)
    teacher = ClipTeacher(None, (4, 4), 64, 16, 192, 2, 3, 768)  # the CLIP structure, small
    rms, cosine = compare(teacher, smooth_clips(2, 4, 64, 2), 2)
    assert rms < RMS_TOL and cosine > COSINE_MIN, (rms, cosine)


def test_bf16_is_used_on_gpus_only():
    assert teacher_dtype(torch.device("cpu")) == torch.float32  # CPU runs (tests, demo) stay float32


def test_bf16_really_changes_the_teacher_arithmetic():
    """The comparison above is not trivially zero: autocast does reach the teacher's matmuls."""
    torch.manual_seed(0)
    teacher = ClipTeacher(None, (4, 4), 64, 16, 192, 2, 3, 768)
    clips = smooth_clips(1, 2, 64, 3)
    a = teacher_targets(teacher, clips, 2, dtype=torch.float32)
    b = teacher_targets(teacher, clips, 2, dtype=torch.bfloat16)
    assert not torch.equal(a, b)


def test_videomae_position_table_is_a_buffer_that_moves_with_the_model():
    p = resolve("rgb_pretrain", {"model": {"num_frames": 4, "image_size": 32, "hidden": 32, "depth": 1, "heads": 2,
                                            "decoder_hidden": 16, "decoder_depth": 1, "decoder_heads": 2}})
    enc = RGBEncoder(StudentConfig.from_section(p["model"]))
    buffers = dict(enc.named_buffers())
    name = "videomae.embeddings.position_embeddings"
    assert name in buffers and name not in enc.state_dict()  # moved by .to(), never saved
    x = torch.randn(2, 4, 3, 32, 32)
    before = enc(x)
    enc.to(torch.float64)
    assert buffers[name].dtype == torch.float32 and dict(enc.named_buffers())[name].dtype == torch.float64
    assert torch.allclose(enc.to(torch.float32)(x), before)


@pytest.mark.parametrize("attr", ["position_embeddings"])
def test_keep_on_device_leaves_real_buffers_alone(attr):
    from mgfm.models.rgb.student import keep_on_device

    m = torch.nn.Module()
    m.register_buffer(attr, torch.zeros(3), persistent=True)
    keep_on_device(m, attr)
    assert attr in m.state_dict()
