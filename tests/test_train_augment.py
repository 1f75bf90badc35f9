"""Four-view augmentations: ranges, valid frames, confidence awareness, determinism, per-row draws."""

from __future__ import annotations

import pytest
import torch

from mgfm.train.augment import AugmentConfig, FourViewAugment, apply, draw, resample_valid, select_rows

OFF = dict(speed_p=0.0, drop_p=0.0, corrupt_p=0.0, shear_p=0.0, rigid_p=0.0)
V = 10


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
    cfg = AugmentConfig()
    x, valid = time_clips()
    a = run(cfg, x, valid)
    assert a.shape == (4, 6, 3, 16, V)
    assert torch.equal(a, run(cfg, x, valid))
    assert not torch.equal(a, run(cfg, x, valid, seed=1))


def test_crop_stays_inside_valid_frames_and_keeps_order():
    cfg = AugmentConfig(crop_ratio=(0.1, 1.0), **OFF)
    valid = torch.tensor([3, 7, 20, 11, 1, 15])
    x, valid = time_clips(valid=valid)
    views = run(cfg, x, valid)
    pos = views[:, :, 0, :, 0]                               # (K, n, T') source frame of each output frame
    assert (pos >= 0).all() and (pos <= (valid - 1).view(1, -1, 1)).all()
    assert (pos.diff(dim=-1) >= -1e-5).all()
    span = pos[..., -1] - pos[..., 0]
    assert (span <= (valid - 1).view(1, -1)).all()
    assert (views > -999).all()


def test_full_crop_ratio_uses_all_valid_frames():
    cfg = AugmentConfig(crop_ratio=(1.0, 1.0), **OFF)
    x, valid = time_clips(valid=torch.tensor([20, 9, 5, 20, 2, 13]))
    pos = run(cfg, x, valid)[:, :, 0, :, 0]
    assert torch.allclose(pos[..., 0], torch.zeros(()))
    assert torch.allclose(pos[..., -1], (valid - 1).float().expand(4, -1))


def test_speed_jitter_warps_time_non_uniformly():
    x, valid = time_clips()
    base = run(AugmentConfig(crop_ratio=(1.0, 1.0), **OFF), x, valid)[:, :, 0, :, 0]
    warped = run(AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "speed_p": 1.0}, speed_max=2.0), x, valid)
    warped = warped[:, :, 0, :, 0]
    steps = warped.diff(dim=-1)
    assert (steps >= -1e-5).all()
    assert (steps.std(dim=-1) > 0.05).float().mean() > 0.5   # uneven steps in most views
    assert torch.allclose(base.diff(dim=-1).std(dim=-1), torch.zeros(()), atol=1e-4)


def test_frame_dropping_repeats_previous_frames():
    cfg = AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "drop_p": 1.0}, drop_max_rate=0.9)
    x, valid = time_clips(n=16)
    pos = run(cfg, x, valid)[:, :, 0, :, 0]
    repeats = (pos.diff(dim=-1).abs() < 1e-6).sum()
    assert repeats > 0
    assert (pos.diff(dim=-1) >= -1e-5).all()


def test_confidence_aware_corruption_prefers_low_scores():
    cfg = AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "corrupt_p": 1.0}, corrupt_rate=0.25, corrupt_zero_p=1.0)
    x, valid = time_clips(n=200)
    x[:, 2, :, :5] = 0.3                                     # joints 0-4 unsure, 5-9 certain
    x[:, 2, :, 5:] = 0.9
    views = run(cfg, x, valid)
    zeroed = (views[:, :, 2] == 0).all(dim=2).float().mean(dim=(0, 1))  # per joint
    low, high = zeroed[:5].mean(), zeroed[5:].mean()
    assert low > 3 * high
    assert 0.25 * 0.8 < (low + high) / 2 < 0.25 * 1.2        # the mean rate stays the configured rate


def test_rotation_preserves_distances_and_scale_scales_them():
    x, valid = time_clips()
    x[:, :2] = torch.randn(6, 2, 20, V)
    rot = AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "rigid_p": 1.0}, rotation_deg=90, scale=(1.0, 1.0),
                        translation=0.0)
    out = run(rot, x, valid, frames=20)
    ref = x.unsqueeze(0).expand(4, -1, -1, -1, -1)

    def dists(a):
        p = a[:, :, :2].permute(0, 1, 3, 4, 2)            # (K, n, T, V, 2)
        return torch.cdist(p.reshape(-1, V, 2), p.reshape(-1, V, 2))

    assert torch.allclose(dists(out), dists(ref), atol=1e-4)
    assert not torch.allclose(out[:, :, :2], ref[:, :, :2], atol=1e-3)
    scaled = run(AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "rigid_p": 1.0}, rotation_deg=0,
                               scale=(2.0, 2.0), translation=0.0), x, valid, frames=20)
    assert torch.allclose(scaled[:, :, :2], 2 * ref[:, :, :2], atol=1e-5)


def test_shear_and_translation_ranges():
    x, valid = time_clips()
    x[:, :2] = torch.randn(6, 2, 20, V)
    ref = x[:, :2].unsqueeze(0)
    moved = run(AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "rigid_p": 1.0}, rotation_deg=0, scale=(1.0, 1.0),
                              translation=0.2), x, valid, frames=20)[:, :, :2]
    shift = (moved - ref)
    assert shift.abs().max() <= 0.2 + 1e-5
    assert torch.allclose(shift, shift[..., :1, :1], atol=1e-5)  # one offset per view and clip
    sheared = run(AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "shear_p": 1.0}, shear=0.3), x, valid, frames=20)
    dx = sheared[:, :, 0] - ref[:, :, 0]
    coef = dx / ref[:, :, 1]
    assert coef.abs().max() <= 0.3 + 1e-4


def test_missing_joints_are_not_moved():
    x, valid = time_clips()
    x[:, :, :, 3] = 0.0                                           # joint 3 undetected: x = y = score = 0
    cfg = AugmentConfig(crop_ratio=(1.0, 1.0), **{**OFF, "rigid_p": 1.0, "shear_p": 1.0}, translation=0.5)
    assert (run(cfg, x, valid)[:, :, :, :, 3] == 0).all()


def test_row_selection_matches_the_global_batch():
    cfg = AugmentConfig()
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


def test_bad_inputs():
    x, _ = time_clips()
    with pytest.raises(ValueError, match="valid_len"):
        resample_valid(x, torch.tensor([0, 3, 3, 3, 3, 3]), 8)
    with pytest.raises(ValueError, match="valid_len"):
        run(AugmentConfig(), x, torch.full((6,), 21))
    with pytest.raises(ValueError, match="crop"):
        AugmentConfig(crop_ratio=(0.5, 0.2))


def test_from_params_reads_the_nested_config():
    cfg = AugmentConfig.from_params({"crop": {"ratio": [0.5, 0.9]}, "speed": {"p": 0.1, "max_factor": 2.0},
                                     "rigid": {"scale": [0.8, 1.2]}})
    assert cfg.crop_ratio == (0.5, 0.9) and cfg.speed_p == 0.1 and cfg.speed_max == 2.0 and cfg.scale == (0.8, 1.2)
    assert cfg.shear_p == AugmentConfig().shear_p
