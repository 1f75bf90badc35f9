"""Four-view skeleton augmentations of MG-FM-Skele, vectorised over the batch and driven by a seeded generator.

Per view and clip: temporal crop-resize inside the valid frames (USDRL), speed jitter (a monotone power-law
time warp, so playback speeds up or slows down within the clip), frame dropping (a dropped frame repeats
the last kept one), confidence-aware joint corruption (joints with a low mean score are more likely to be
zeroed or mixed by a random 2x2 matrix), shear, and a random 2-D similarity transform (rotation, scale,
translation). Each has its own probability and range.

Randomness is split into ``draw`` (all random numbers for a batch, on the CPU generator) and ``apply``
(pure tensor maths, any device). A distributed run draws for the whole global batch and each process
applies its own rows, so the views do not depend on how many processes share the batch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of every augmentation (see the pretrain schema for each key's meaning)."""

    num_views: int = 4
    crop_ratio: tuple[float, float] = (0.1, 1.0)
    speed_p: float = 0.5
    speed_max: float = 1.5
    drop_p: float = 0.5
    drop_max_rate: float = 0.2
    corrupt_p: float = 0.5
    corrupt_rate: float = 0.15
    corrupt_zero_p: float = 0.5
    shear_p: float = 0.5
    shear: float = 0.3
    rigid_p: float = 0.5
    rotation_deg: float = 15.0
    scale: tuple[float, float] = (0.9, 1.1)
    translation: float = 0.1

    def __post_init__(self) -> None:
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment.crop.ratio must satisfy 0 < low <= high <= 1, got {self.crop_ratio}")
        if self.num_views < 2:
            raise ValueError(f"augment.num_views must be >= 2, got {self.num_views}")
        if self.speed_max < 1:
            raise ValueError(f"augment.speed.max_factor must be >= 1, got {self.speed_max}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"augment.rigid.scale must satisfy 0 < low <= high, got {self.scale}")
        for key in ("speed_p", "drop_p", "corrupt_p", "corrupt_zero_p", "shear_p", "rigid_p", "drop_max_rate",
                    "corrupt_rate"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"augment: {key} must be in [0, 1], got {getattr(self, key)}")

    @classmethod
    def from_params(cls, p: dict) -> AugmentConfig:
        """Build from the nested ``pretrain.augment`` config section (missing keys keep their defaults)."""
        d = cls()
        g = lambda sec, key, default: p.get(sec, {}).get(key, default)  # noqa: E731
        return cls(
            num_views=p.get("num_views", d.num_views),
            crop_ratio=tuple(g("crop", "ratio", d.crop_ratio)),
            speed_p=g("speed", "p", d.speed_p), speed_max=g("speed", "max_factor", d.speed_max),
            drop_p=g("frame_drop", "p", d.drop_p), drop_max_rate=g("frame_drop", "max_rate", d.drop_max_rate),
            corrupt_p=g("joint_corruption", "p", d.corrupt_p),
            corrupt_rate=g("joint_corruption", "rate", d.corrupt_rate),
            corrupt_zero_p=g("joint_corruption", "zero_p", d.corrupt_zero_p),
            shear_p=g("shear", "p", d.shear_p), shear=g("shear", "magnitude", d.shear),
            rigid_p=g("rigid", "p", d.rigid_p), rotation_deg=g("rigid", "rotation_deg", d.rotation_deg),
            scale=tuple(g("rigid", "scale", d.scale)), translation=g("rigid", "translation", d.translation),
        )

    def to_dict(self) -> dict:
        return asdict(self)


def draw(cfg: AugmentConfig, n: int, num_frames: int, num_joints: int, generator: torch.Generator) -> dict:
    """All random numbers for ``n`` clips x ``cfg.num_views`` views; tensors shaped (K, n, ...)."""
    k = cfg.num_views

    def u(*shape: int) -> torch.Tensor:
        return torch.rand((k, n, *shape), generator=generator)

    return {
        "crop": u(), "start": u(),
        "speed_on": u() < cfg.speed_p, "speed": u(),
        "drop_on": u() < cfg.drop_p, "drop_rate": u(), "drop": u(num_frames),
        "corrupt_on": u() < cfg.corrupt_p, "corrupt_zero": u() < cfg.corrupt_zero_p, "corrupt": u(num_joints),
        "corrupt_mix": u(2, 2),
        "shear_on": u() < cfg.shear_p, "shear": u(2),
        "rigid_on": u() < cfg.rigid_p, "angle": u(), "scale": u(), "shift": u(2),
    }


def select_rows(draws: dict, rows: slice | torch.Tensor) -> dict:
    """The draws of a subset of clips (dimension 1), e.g. one process's share of a global batch."""
    return {key: value[:, rows] for key, value in draws.items()}


def interpolate_frames(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Linear interpolation of clips x (n, C, T, V) at fractional frame positions pos (K, n, T') -> (K, n, C, T', V)."""
    t_in = x.shape[2]
    pos = pos.clamp(0, t_in - 1)
    lo = pos.floor().long()
    hi = (lo + 1).clamp(max=t_in - 1)
    w = (pos - lo.to(pos.dtype)).to(x.dtype)[..., None, None]                 # (K, n, T', 1, 1)
    clip = torch.arange(x.shape[0], device=x.device).view(1, -1, 1).expand_as(lo)
    a = x[clip, :, lo]                                                          # (K, n, T', C, V)
    b = x[clip, :, hi]
    return (a + w * (b - a)).permute(0, 1, 3, 2, 4)


def resample_valid(x: torch.Tensor, valid_len: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Deterministic evaluation view: all valid frames of each clip resampled to ``num_frames`` -> (n, C, T', V)."""
    _check_valid(x, valid_len)
    u = torch.linspace(0, 1, num_frames, device=x.device, dtype=torch.float32)
    pos = u.view(1, 1, -1) * (valid_len.to(x.device, torch.float32) - 1).view(1, -1, 1)
    return interpolate_frames(x, pos)[0]


def _check_valid(x: torch.Tensor, valid_len: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"clips must be shaped (N, C, T, V), got {tuple(x.shape)}")
    if len(valid_len) and (int(valid_len.min()) < 1 or int(valid_len.max()) > x.shape[2]):
        lo, hi = int(valid_len.min()), int(valid_len.max())
        raise ValueError(f"valid_len must lie in [1, {x.shape[2]}], got values in [{lo}, {hi}]")


def apply(cfg: AugmentConfig, x: torch.Tensor, valid_len: torch.Tensor, draws: dict, num_frames: int) -> torch.Tensor:
    """Augment joint clips x (n, C, T, V) with ``draws`` into views (K, n, C, num_frames, V)."""
    _check_valid(x, valid_len)
    dev = x.device
    d = {key: value.to(dev) for key, value in draws.items()}
    valid = valid_len.to(dev, torch.float32).view(1, -1)                       # (1, n)

    # temporal crop inside the valid frames, optional speed warp, resampled to num_frames positions
    lo, hi = cfg.crop_ratio
    length = torch.clamp((lo + (hi - lo) * d["crop"]) * valid, min=1.0)      # frames covered by the crop
    start = d["start"] * (valid - length)
    u = torch.linspace(0, 1, num_frames, device=dev).view(1, 1, -1)
    log_s = math.log(cfg.speed_max)
    gamma = torch.where(d["speed_on"], torch.exp((2 * d["speed"] - 1) * log_s), torch.ones_like(d["speed"]))
    u = u ** gamma.unsqueeze(-1)
    pos = start.unsqueeze(-1) + u * (length - 1).clamp(min=0).unsqueeze(-1)   # (K, n, T')

    # frame dropping: a dropped output frame repeats the last kept one (the first is always kept)
    rate = cfg.drop_max_rate * d["drop_rate"] * d["drop_on"]
    keep = d["drop"] >= rate.unsqueeze(-1)
    keep[..., 0] = True
    steps = torch.arange(num_frames, device=dev).expand_as(keep)
    last_kept = torch.where(keep, steps, torch.zeros_like(steps)).cummax(dim=-1).values
    pos = torch.gather(pos, -1, last_kept)
    views = interpolate_frames(x, pos)                                         # (K, n, C, T', V)

    if views.shape[2] < 2:
        return views
    xy = views[:, :, :2]
    has_score = views.shape[2] >= 3

    # confidence-aware joint corruption: rate scaled by each joint's relative lack of confidence
    if has_score:
        doubt = 1.0 - views[:, :, 2].mean(dim=2).clamp(0, 1)                   # (K, n, V)
        mean_doubt = doubt.mean(dim=-1, keepdim=True)
        rel = torch.where(mean_doubt > 1e-6, doubt / mean_doubt.clamp(min=1e-6), torch.ones_like(doubt))
    else:
        rel = torch.ones_like(d["corrupt"])
    hit = (d["corrupt"] < (cfg.corrupt_rate * rel).clamp(0, 1)) & d["corrupt_on"].unsqueeze(-1)   # (K, n, V)
    mix = 2 * d["corrupt_mix"] - 1                                             # (K, n, 2, 2) in [-1, 1]
    mixed = torch.einsum("knij,knjtv->knitv", mix, xy)
    zero = d["corrupt_zero"].view(*hit.shape[:2], 1, 1, 1)
    hit5 = hit.unsqueeze(2).unsqueeze(3)                                       # (K, n, 1, 1, V)
    new_xy = torch.where(hit5, torch.where(zero, torch.zeros_like(xy), mixed), xy)
    if has_score:
        score = torch.where(hit5 & zero, torch.zeros_like(views[:, :, 2:3]), views[:, :, 2:3])
        present = views[:, :, 2:3] > 0                                         # missing joints stay where they are

    # shear and 2-D similarity transform, composed into one 2x2 matrix plus a translation per view
    eye = torch.eye(2, device=dev).expand(*hit.shape[:2], 2, 2)
    s = cfg.shear * (2 * d["shear"] - 1) * d["shear_on"].unsqueeze(-1)       # (K, n, 2)
    shear = eye.clone()
    shear[..., 0, 1], shear[..., 1, 0] = s[..., 0], s[..., 1]
    on = d["rigid_on"]
    theta = torch.deg2rad(cfg.rotation_deg * (2 * d["angle"] - 1)) * on
    scale = torch.where(on, cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * d["scale"], torch.ones_like(theta))
    cos, sin = torch.cos(theta) * scale, torch.sin(theta) * scale
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shift = cfg.translation * (2 * d["shift"] - 1) * on.unsqueeze(-1)        # (K, n, 2)
    moved = torch.einsum("knij,knjtv->knitv", rot @ shear, new_xy) + shift.view(*shift.shape, 1, 1)
    new_xy = torch.where(present, moved, new_xy) if has_score else moved
    parts = [new_xy, score] if has_score else [new_xy]
    if views.shape[2] > 3:
        parts.append(views[:, :, 3:])
    return torch.cat(parts, dim=2)


class FourViewAugment:
    """Convenience wrapper: ``(x, valid_len, generator) -> views`` for single-process use and benchmarks."""

    def __init__(self, cfg: AugmentConfig, num_frames: int) -> None:
        self.cfg, self.num_frames = cfg, num_frames

    def __call__(self, x: torch.Tensor, valid_len: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        d = draw(self.cfg, x.shape[0], self.num_frames, x.shape[3], generator)
        return apply(self.cfg, x, valid_len, d, self.num_frames)
