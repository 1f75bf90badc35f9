"""Four-view augmentations: USDRL's crop-resize and one-of corruption/shear, the paper's switchable additions,
undetected joints kept at 0, determinism, per-row draws, config from the schema."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
import yaml

from mgfm.train.augment import AugmentConfig, FourViewAugment, apply, draw, resample_valid, select_rows
from mgfm.config import resolve

V = 10
PAPER = Path(__file__).resolve().parents[1] / "workflow" / "configs" / "paper.yaml"
# every addition off, and the one spatial augmentation an identity shear: only the crop-resize is left
OFF = {"speed": {"p": 0.0}, "frame_drop": {"p": 0.0}, "rigid": {"p": 0.0},
       "joint_corruption": {"p": 0.0}, "shear": {"magnitude": 0.0}}


def config(section: dict | None = None, **changes: dict) -> AugmentConfig:
    """AugmentConfig of the schema defaults, with nested ``section`` and then ``changes`` merged in."""
    merged = {k: dict(v) if isinstance(v, dict) else v for k, v in (section or {}).items()}
    for key, value in changes.items():
        merged[key] = {**merged.get(key, {}), **value} if isinstance(value, dict) else value
    return AugmentConfig.from_section(resolve("pretrain", {"augment": merged})["augment"])


def time_clips(n=6, t=20, valid=None):
    """x channel = frame index (so output positions can be read back), y = joint index, score 1."""
    x = torch.zeros(n, 3, t, V)
    x[:, 0] = torch.arange(t, dtype=torch.float32).view(1, t, 1)
    x[:, 1] = torch.arange(V, dtype=torch.float32).view(1, 1, V)
    x[:, 2] = 1.0
    valid = torch.full((n,), t) if valid is None else valid
    for i, v in enumerate(valid.tolist()):
        x[i, :, v:] = -1000.0  # padding sentinel: must never leak into a view
    return x, valid


def run(cfg, x, valid, frames=16, seed=0):
    return FourViewAugment(cfg, frames)(x, valid, torch.Generator().manual_seed(seed))


def test_shape_and_determinism():
    cfg = config()
    x, valid = time_clips()
    a = run(cfg, x, valid)
    assert a.shape == (4, 6, 3, 16, V)
    assert torch.equal(a, run(cfg, x, valid))
    assert not torch.equal(a, run(cfg, x, valid, seed=1))


@pytest.mark.parametrize("min_frames, min_fraction", [(64, 0.0), (4, 0.0), (1, 0.5)])
def test_crop_resize_is_usdrls(min_frames, min_fraction):
    """Crop length floor(L * U(0.1, 1)) clamped to [min(L, max(min_frames, ceil(min_fraction L))), L], integer
    start, then exactly F.interpolate(bilinear, align_corners=False) of the cropped frames to T."""
    cfg = config(OFF, crop={"min_frames": min_frames, "min_fraction": min_fraction})
    x, valid = time_clips(n=8, t=30, valid=torch.tensor([30, 7, 1, 19, 30, 12, 25, 2]))
    x[:, :2] = torch.randn(8, 2, 30, V) * (x[:, :2] > -999)
    d = draw(cfg, 8, 16, V, torch.Generator().manual_seed(5))
    views = apply(cfg, x, valid, d, 16)
    lengths = set()
    for k in range(4):
        for i, n in enumerate(valid.tolist()):
            floor = min(n, max(min_frames, math.ceil(min_fraction * n)))
            length = min(max(int(n * (0.1 + 0.9 * d["crop"][k, i].item())), floor), n)
            start = int(d["start"][k, i].item() * (n - length + 1))
            crop = x[i, :, start:start + length].permute(0, 2, 1).reshape(1, 3 * V, length, 1)
            want = F.interpolate(crop, size=(16, 1), mode="bilinear", align_corners=False).reshape(3, V, 16)
            torch.testing.assert_close(views[k, i], want.permute(0, 2, 1), rtol=0, atol=1e-5)
            lengths.add((n, length))
    if min_frames == 64:
        assert all(n == length for n, length in lengths)          # clips shorter than 64 frames are never cut
    else:
        assert any(length < n for n, length in lengths)
    if min_fraction:
        assert all(length >= math.ceil(min_fraction * n) for n, length in lengths)


def imigue_valid_lengths(n: int, seed: int = 0) -> torch.Tensor:
    """valid_len of n iMiGUE-like clips at 25 fps cut to T = 64: MG durations log-normal around the
    release's 2.55 s mean, clipped to its 0.18-80.92 s range (reference facts)."""
    g = torch.Generator().manual_seed(seed)
    seconds = torch.exp(torch.randn(n, generator=g) * 0.8 + math.log(2.55) - 0.32).clamp(0.18, 80.92)
    return (seconds * 25).round().clamp(1, 64).long()


def shortened_fraction(section: dict, valid: torch.Tensor) -> float:
    """Share of the views whose crop keeps fewer frames than the clip has."""
    from mgfm.train.augment import crop_positions

    cfg = config(OFF, **section)
    d = draw(cfg, len(valid), 64, V, torch.Generator().manual_seed(3))
    pos = crop_positions(cfg, valid.float().view(1, -1), d, 64)          # (K, n, 64) source frames
    span = pos.amax(-1) - pos.amin(-1)
    return float((span < valid.float().view(1, -1) - 1.5).float().mean())


def test_crop_shortens_imigue_length_clips():
    """On clips of at most T = 64 frames USDRL's absolute 64-frame floor never crops; the relative floor of the
    schema default and the paper config crops nearly every view, and never below half the clip."""
    valid = imigue_valid_lengths(2000)
    assert (valid == 64).float().mean() > 0.2 and valid.float().mean() < 60    # long ones truncated, most short
    assert shortened_fraction({"crop": {"min_frames": 64, "min_fraction": 0.0}}, valid) == 0.0
    paper = yaml.safe_load(PAPER.read_text())["pretrain"]["augment"]
    for crop in ({}, paper["crop"]):
        assert shortened_fraction({"crop": crop}, valid) > 0.85, crop


def test_speed_jitter_warps_time_non_uniformly():
    x, valid = time_clips()
    full = {**OFF, "crop": {"ratio": [1.0, 1.0]}}
    base = run(config(full), x, valid)[:, :, 0, :, 0]
    warped = run(config(full, speed={"p": 1.0, "max_factor": 2.0}), x, valid)[:, :, 0, :, 0]
    steps = warped.diff(dim=-1)
    assert (steps >= -1e-5).all()
    assert (steps.std(dim=-1) > 0.05).float().mean() > 0.5   # uneven steps in most views
    assert torch.allclose(base.diff(dim=-1).std(dim=-1), torch.zeros(()), atol=1e-4)
    assert (warped >= 0).all() and (warped <= 19).all()


def test_frame_dropping_repeats_previous_frames():
    cfg = config({**OFF, "crop": {"ratio": [1.0, 1.0]}}, frame_drop={"p": 1.0, "max_rate": 0.9})
    x, valid = time_clips(n=16)
    pos = run(cfg, x, valid)[:, :, 0, :, 0]
    assert (pos.diff(dim=-1).abs() < 1e-6).sum() > 0
    assert (pos.diff(dim=-1) >= -1e-5).all()


def scored_clips(n=6, t=20):
    x, valid = time_clips(n=n, t=t)
    x[:, :2] = torch.randn(n, 2, t, V, generator=torch.Generator().manual_seed(1))
    return x, valid


def test_exactly_one_of_corruption_or_shear():
    x, valid = scored_clips(n=64)
    cfg = config({"speed": {"p": 0.0}, "frame_drop": {"p": 0.0}, "rigid": {"p": 0.0}, "crop": {"ratio": [1.0, 1.0]}},
                 joint_corruption={"p": 0.5, "zero_p": 1.0, "confidence_aware": False})
    d = draw(cfg, 64, 20, V, torch.Generator().manual_seed(2))
    out = apply(cfg, x, valid, d, 20)
    zeroed = (out == 0).all(dim=(2, 3))                               # (K, n, V) joints zeroed everywhere
    corrupted = d["corrupt_on"]
    assert (zeroed.sum(-1) == torch.where(corrupted, 6, 0)).all()     # round(0.6 * 10) joints, or none
    kept = ~zeroed & corrupted.unsqueeze(-1)
    ref = x.unsqueeze(0).expand(4, -1, -1, -1, -1)
    assert torch.equal(out.permute(0, 1, 4, 2, 3)[kept], ref.permute(0, 1, 4, 2, 3)[kept])  # no shear on top
    sheared = ~corrupted
    assert not torch.allclose(out[sheared][:, :2], ref[sheared][:, :2])
    assert torch.equal(out[sheared][:, 2], ref[sheared][:, 2])        # the score is not a coordinate
    assert 0.35 < corrupted.float().mean() < 0.65


def test_shear_matrix_has_unit_diagonal_and_bounded_off_diagonals():
    x, valid = scored_clips()
    cfg = config({**OFF, "crop": {"ratio": [1.0, 1.0]}}, shear={"magnitude": 1.0})
    out = run(cfg, x, valid, frames=20)
    ref = x[:, :2].unsqueeze(0)
    a = (out[:, :, 0] - ref[:, :, 0]) / ref[:, :, 1]                  # x' = x + a y
    b = (out[:, :, 1] - ref[:, :, 1]) / ref[:, :, 0]                  # y' = b x + y
    a, b = a.flatten(2).median(-1).values, b.flatten(2).median(-1).values
    assert a.abs().max() <= 1 and b.abs().max() <= 1 and a.abs().max() > 0.3
    rebuilt = torch.stack([ref[:, :, 0] + a[..., None, None] * ref[:, :, 1],
                           b[..., None, None] * ref[:, :, 0] + ref[:, :, 1]], 2)
    torch.testing.assert_close(out[:, :, :2], rebuilt, rtol=0, atol=1e-4)


def test_mixing_corruption_multiplies_picked_joints_by_a_random_matrix():
    x, valid = scored_clips()
    cfg = config({**OFF, "crop": {"ratio": [1.0, 1.0]}},
                 joint_corruption={"p": 1.0, "zero_p": 0.0, "confidence_aware": False})
    d = draw(cfg, 6, 20, V, torch.Generator().manual_seed(4))
    out = apply(cfg, x, valid, d, 20)
    changed = (out[:, :, :2] != x[:, :2].unsqueeze(0)).any(dim=(2, 3))
    assert (changed.sum(-1) == 6).all()
    m = 2 * d["corrupt_mix"] - 1
    assert m.abs().max() <= 1
    want = torch.einsum("knij,nitv->knjtv", m, x[:, :2])              # row vectors (x, y) @ M
    pick = changed.unsqueeze(2).unsqueeze(3).expand_as(want)
    assert torch.allclose(out[:, :, :2][pick], want[pick], atol=1e-5)
    assert torch.equal(out[:, :, 2], x[:, 2].expand(4, -1, -1, -1))  # scores untouched


def test_confidence_aware_corruption_prefers_low_scores():
    x, valid = time_clips(n=200)
    x[:, 2, :, :5] = 0.3                                     # joints 0-4 unsure, 5-9 certain
    x[:, 2, :, 5:] = 0.9
    base = {**OFF, "crop": {"ratio": [1.0, 1.0]}}
    rates = {}
    for aware in (True, False):
        cfg = config(base, joint_corruption={"p": 1.0, "rate": 0.3, "zero_p": 1.0, "confidence_aware": aware})
        zeroed = (run(cfg, x, valid)[:, :, 2] == 0).all(dim=2).float()     # (K, n, V)
        assert (zeroed.sum(-1) == 3).all()                                  # always round(0.3 * 10) joints
        rates[aware] = zeroed.mean(dim=(0, 1))
    assert rates[True][:5].mean() > 3 * rates[True][5:].mean()
    assert abs(rates[False][:5].mean() - rates[False][5:].mean()) < 0.08     # uniform, as USDRL


def test_rotation_preserves_distances_and_scale_scales_them():
    x, valid = scored_clips()
    rigid = {**OFF, "crop": {"ratio": [1.0, 1.0]}}
    out = run(config(rigid, rigid={"p": 1.0, "rotation_deg": 90, "scale": [1.0, 1.0], "translation": 0.0}),
              x, valid, frames=20)
    ref = x.unsqueeze(0).expand(4, -1, -1, -1, -1)

    def dists(a):
        p = a[:, :, :2].permute(0, 1, 3, 4, 2)            # (K, n, T, V, 2)
        return torch.cdist(p.reshape(-1, V, 2), p.reshape(-1, V, 2))

    assert torch.allclose(dists(out), dists(ref), atol=1e-4)
    assert not torch.allclose(out[:, :, :2], ref[:, :, :2], atol=1e-3)
    scaled = run(config(rigid, rigid={"p": 1.0, "rotation_deg": 0, "scale": [2.0, 2.0], "translation": 0.0}),
                 x, valid, frames=20)
    assert torch.allclose(scaled[:, :, :2], 2 * ref[:, :, :2], atol=1e-5)
    moved = run(config(rigid, rigid={"p": 1.0, "rotation_deg": 0, "scale": [1.0, 1.0], "translation": 0.2}),
                x, valid, frames=20)[:, :, :2]
    shift = moved - ref[:, :, :2]
    assert shift.abs().max() <= 0.2 + 1e-5
    assert torch.allclose(shift, shift[..., :1, :1], atol=1e-5)  # one offset per view and clip


@pytest.mark.parametrize("zero_p", [0.0, 1.0])
def test_undetected_and_zeroed_joints_stay_exactly_zero(zero_p):
    x, valid = scored_clips(n=32)
    x[:, :, :, 3] = 0.0                                           # joint 3 undetected: x = y = score = 0
    x[:, :, 5:9, 7] = 0.0                                         # joint 7 undetected in a few frames
    every = {"crop": {"ratio": [1.0, 1.0]}, "speed": {"p": 0.0}, "frame_drop": {"p": 0.0},
             "rigid": {"p": 1.0, "translation": 0.5}, "joint_corruption": {"p": 0.5, "zero_p": zero_p}}
    cfg = config(every)
    d = draw(cfg, 32, 20, V, torch.Generator().manual_seed(6))
    out = apply(cfg, x, valid, d, 20)
    assert (out[..., 3] == 0).all()
    assert (out[:, :, :, 5:9, 7] == 0).all() and (out[:, :, :, 10:, 7] != 0).any()
    absent = out[:, :, 2] == 0
    assert (out[:, :, :2][absent.unsqueeze(2).expand(-1, -1, 2, -1, -1)] == 0).all()
    if zero_p == 1.0:                                             # zeroed by corruption, then translated: still 0
        assert ((out == 0).all(dim=(2, 3)).sum(-1) >= 6).any()


def test_row_selection_matches_the_global_batch():
    cfg = config()
    x, valid = time_clips(n=8, valid=torch.tensor([20, 5, 9, 13, 20, 2, 17, 8]))
    d = draw(cfg, 8, 16, V, torch.Generator().manual_seed(3))
    full = apply(cfg, x, valid, d, 16)
    for rank in range(2):
        part = apply(cfg, x[rank::2], valid[rank::2], select_rows(d, slice(rank, None, 2)), 16)
        assert torch.equal(part, full[:, rank::2])


def test_resample_valid():
    x, valid = time_clips(valid=torch.tensor([20, 20, 5, 20, 1, 11]))
    out = resample_valid(x, valid, 20)
    assert torch.allclose(out[0], x[0], atol=1e-5)
    assert torch.allclose(out[2, 0, -1], torch.full((V,), 4.0))
    assert (out[4, 0] == 0).all() and (out > -999).all()
    crop = x[5:6, :, :11].permute(0, 1, 3, 2).reshape(1, 3 * V, 11, 1)     # clip 5: 11 valid frames
    want = F.interpolate(crop, size=(20, 1), mode="bilinear", align_corners=False).reshape(3, V, 20)
    torch.testing.assert_close(out[5], want.permute(0, 2, 1), rtol=0, atol=1e-5)


def test_bad_inputs():
    x, _ = time_clips()
    with pytest.raises(ValueError, match="valid_len"):
        resample_valid(x, torch.tensor([0, 3, 3, 3, 3, 3]), 8)
    with pytest.raises(ValueError, match="valid_len"):
        run(config(), x, torch.full((6,), 21))
    with pytest.raises(ValueError, match="crop"):
        config(crop={"ratio": [0.5, 0.2]})


def test_config_comes_from_the_resolved_section_only():
    section = resolve("pretrain", {"augment": {"speed": {"p": 0.1}}})["augment"]
    cfg = AugmentConfig.from_section(section)
    assert cfg.speed_p == 0.1 and cfg.crop_ratio == (0.1, 1.0) and cfg.crop_min_frames == 1
    assert cfg.crop_min_fraction == 0.5
    assert cfg.corrupt_p == 0.5 and cfg.corrupt_rate == 0.6 and cfg.corrupt_zero_p == 0.5 and cfg.shear == 1.0
    del section["shear"]["magnitude"]
    with pytest.raises(ValueError, match=r"augment\.shear\.magnitude missing"):
        AugmentConfig.from_section(section)


def test_paper_config_spells_out_the_whole_augment_section():
    paper = yaml.safe_load(PAPER.read_text())["pretrain"]["augment"]
    assert resolve("pretrain", {"augment": paper})["augment"] == paper
