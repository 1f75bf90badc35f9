"""Four-view skeleton augmentations of MG-FM-Skele, vectorised over the batch and driven by a seeded generator.

USDRL's recipe is the base: every view is a temporal crop-resize (crop length floor(L * U(ratio)), at least
min(L, max(min_frames, ceil(min_fraction * L))) frames, random integer start, bilinear resize to T as
``F.interpolate(align_corners=False)``; USDRL's floor is an absolute 64 frames, made for NTU clips of up to 300
frames, which never shortens a clip of at most 64: iMiGUE-3K's clips need the floor relative to L)
followed by exactly ONE spatial augmentation: joint corruption (probability ``corrupt_p``) or else shear.
Corruption picks round(rate * V) joints (15 of 25 = 60 % in USDRL) and either zeroes them (every channel, so
they become undetected; probability ``corrupt_zero_p``) or multiplies their coordinates by a random matrix
with entries U(-1, 1); shear multiplies every joint by a matrix with unit diagonal and off-diagonals
U(-magnitude, magnitude).

Our clips are 2-D (x, y, score) where USDRL's are (x, y, z). The matrices act on the coordinates (x, y) only
(their upper-left 2x2 block: what USDRL's 3x3 matrix does to a joint at z = 0, seen in the image plane); the
score is a detector confidence, not a coordinate, so it is never mixed into the position or changed by a
matrix. The iMiGUE-3K additions of the paper sit on top, each switchable: speed jitter (a monotone time warp
of the crop, p = 0 turns it off), frame dropping (a dropped frame repeats the last kept one), confidence-aware
corruption (joints are picked with weights favouring a low mean score instead of uniformly) and a random 2-D
similarity transform (rotation, scale, translation). A joint whose score is 0 when the spatial step starts,
or that corruption zeroed, is exactly 0 in every channel at the end.

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
    """Probabilities and ranges of every augmentation, from the resolved ``pretrain.augment`` section (the
    schema holds the defaults and each key's meaning)."""

    num_views: int
    crop_ratio: tuple[float, float]
    crop_min_frames: int
    crop_min_fraction: float
    corrupt_p: float
    corrupt_rate: float
    corrupt_zero_p: float
    confidence_aware: bool
    shear: float
    speed_p: float
    speed_max: float
    drop_p: float
    drop_max_rate: float
    rigid_p: float
    rotation_deg: float
    scale: tuple[float, float]
    translation: float

    def __post_init__(self) -> None:
        lo, hi = self.crop_ratio
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"augment.crop.ratio must satisfy 0 < low <= high <= 1, got {self.crop_ratio}")
        if self.crop_min_frames < 1:
            raise ValueError(f"augment.crop.min_frames must be >= 1, got {self.crop_min_frames}")
        if not 0 <= self.crop_min_fraction <= 1:
            raise ValueError(f"augment.crop.min_fraction must be in [0, 1], got {self.crop_min_fraction}")
        if self.num_views < 2:
            raise ValueError(f"augment.num_views must be >= 2, got {self.num_views}")
        if self.speed_max < 1:
            raise ValueError(f"augment.speed.max_factor must be >= 1, got {self.speed_max}")
        if not 0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"augment.rigid.scale must satisfy 0 < low <= high, got {self.scale}")
        for key, name in (("speed_p", "speed.p"), ("drop_p", "frame_drop.p"), ("corrupt_p", "joint_corruption.p"),
                          ("corrupt_zero_p", "joint_corruption.zero_p"), ("rigid_p", "rigid.p"),
                          ("drop_max_rate", "frame_drop.max_rate"), ("corrupt_rate", "joint_corruption.rate")):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"augment.{name} must be in [0, 1], got {getattr(self, key)}")

    @classmethod
    def from_section(cls, p: dict) -> AugmentConfig:
        """Build from the resolved ``pretrain.augment`` section; a missing key is an error naming it."""
        def g(*path: str):
            node = p
            for i, key in enumerate(path):
                if not isinstance(node, dict) or key not in node:
                    raise ValueError(f"augment.{'.'.join(path[:i + 1])} missing "
                                     "(pass the section resolved against its schema)")
                node = node[key]
            return node

        return cls(
            num_views=int(g("num_views")),
            crop_ratio=tuple(g("crop", "ratio")), crop_min_frames=int(g("crop", "min_frames")),
            crop_min_fraction=float(g("crop", "min_fraction")),
            corrupt_p=g("joint_corruption", "p"), corrupt_rate=g("joint_corruption", "rate"),
            corrupt_zero_p=g("joint_corruption", "zero_p"),
            confidence_aware=bool(g("joint_corruption", "confidence_aware")),
            shear=g("shear", "magnitude"),
            speed_p=g("speed", "p"), speed_max=g("speed", "max_factor"),
            drop_p=g("frame_drop", "p"), drop_max_rate=g("frame_drop", "max_rate"),
            rigid_p=g("rigid", "p"), rotation_deg=g("rigid", "rotation_deg"),
            scale=tuple(g("rigid", "scale")), translation=g("rigid", "translation"),
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
        "corrupt_mix": u(2, 2), "shear": u(2),
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
    """Deterministic evaluation view: all valid frames of each clip bilinearly resized to ``num_frames`` (as
    the training crop-resize and USDRL's evaluation crop with ratio 1) -> (n, C, T', V)."""
    _check_valid(x, valid_len)
    length = valid_len.to(x.device, torch.float32).view(1, -1, 1)
    u = (torch.arange(num_frames, device=x.device, dtype=torch.float32) + 0.5) / num_frames
    pos = torch.minimum((u.view(1, 1, -1) * length - 0.5).clamp(min=0), length - 1)
    return interpolate_frames(x, pos)[0]


def _check_valid(x: torch.Tensor, valid_len: torch.Tensor) -> None:
    if x.ndim != 4:
        raise ValueError(f"clips must be shaped (N, C, T, V), got {tuple(x.shape)}")
    if len(valid_len) and (int(valid_len.min()) < 1 or int(valid_len.max()) > x.shape[2]):
        lo, hi = int(valid_len.min()), int(valid_len.max())
        raise ValueError(f"valid_len must lie in [1, {x.shape[2]}], got values in [{lo}, {hi}]")


def crop_positions(cfg: AugmentConfig, valid: torch.Tensor, d: dict, num_frames: int) -> torch.Tensor:
    """Source frame (fractional) of every output frame (K, n, T'): USDRL's crop-resize, speed warp, frame drop."""
    lo, hi = cfg.crop_ratio
    floor = torch.clamp(torch.ceil(valid * cfg.crop_min_fraction), min=cfg.crop_min_frames)
    shortest = torch.minimum(floor, valid)
    length = torch.minimum(torch.maximum(torch.floor(valid * (lo + (hi - lo) * d["crop"])), shortest), valid)
    start = torch.minimum(torch.floor(d["start"] * (valid - length + 1)), valid - length)   # randint(0, L-len]
    # bilinear resize with align_corners=False: output frame i samples (i + 0.5) * len / T' - 0.5 of the crop;
    # the speed warp bends the normalised time (i + 0.5) / T' to its power gamma (1 when off)
    u = (torch.arange(num_frames, device=valid.device, dtype=torch.float32) + 0.5) / num_frames
    gamma = torch.where(d["speed_on"], torch.exp((2 * d["speed"] - 1) * math.log(cfg.speed_max)),
                        torch.ones_like(d["speed"]))
    src = u.view(1, 1, -1) ** gamma.unsqueeze(-1) * length.unsqueeze(-1) - 0.5
    pos = start.unsqueeze(-1) + torch.minimum(src.clamp(min=0), (length - 1).unsqueeze(-1))
    # frame dropping: a dropped output frame repeats the last kept one (the first is always kept)
    rate = cfg.drop_max_rate * d["drop_rate"] * d["drop_on"]
    keep = d["drop"] >= rate.unsqueeze(-1)
    keep[..., 0] = True
    steps = torch.arange(num_frames, device=valid.device).expand_as(keep)
    last_kept = torch.where(keep, steps, torch.zeros_like(steps)).cummax(dim=-1).values
    return torch.gather(pos, -1, last_kept)


def corrupted_joints(cfg: AugmentConfig, views: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Mask (K, n, V) of the round(rate * V) joints each view would corrupt: a uniform choice (USDRL) or, when
    confidence-aware, a weighted one without replacement favouring joints with a low mean score."""
    v = views.shape[-1]
    count = int(round(cfg.corrupt_rate * v))
    if count == 0:
        return torch.zeros(keys.shape, dtype=torch.bool, device=keys.device)
    if cfg.confidence_aware and views.shape[2] >= 3:
        doubt = 1.0 - views[:, :, 2].mean(dim=2).clamp(0, 1)                   # (K, n, V)
        keys = torch.log(keys.clamp(min=1e-12)) / (doubt + 1e-3)              # Efraimidis-Spirakis keys
    top = keys.topk(count, dim=-1).indices
    return torch.zeros_like(keys, dtype=torch.bool).scatter_(-1, top, True)


def apply(cfg: AugmentConfig, x: torch.Tensor, valid_len: torch.Tensor, draws: dict, num_frames: int) -> torch.Tensor:
    """Augment joint clips x (n, C, T, V) with ``draws`` into views (K, n, C, num_frames, V)."""
    _check_valid(x, valid_len)
    dev = x.device
    d = {key: value.to(dev) for key, value in draws.items()}
    valid = valid_len.to(dev, torch.float32).view(1, -1)                       # (1, n)
    views = interpolate_frames(x, crop_positions(cfg, valid, d, num_frames))  # (K, n, C, T', V)
    if views.shape[2] < 2:
        return views
    xy, rest = views[:, :, :2], views[:, :, 2:]
    kn = xy.shape[:2]

    # exactly one spatial augmentation per view: joint corruption, else shear
    corrupt = d["corrupt_on"]
    hit = corrupted_joints(cfg, views, d["corrupt"]) & corrupt.unsqueeze(-1)  # (K, n, V)
    zeroed = hit & d["corrupt_zero"].unsqueeze(-1)
    mixed = hit & ~d["corrupt_zero"].unsqueeze(-1)
    mix = 2 * d["corrupt_mix"] - 1                                             # row-vector convention: xy @ M
    xy = torch.where(mixed.view(*kn, 1, 1, -1), torch.einsum("knij,knitv->knjtv", mix, xy), xy)
    s = cfg.shear * (2 * d["shear"] - 1)                                       # (K, n, 2) off-diagonals
    shear = torch.eye(2, device=dev).repeat(*kn, 1, 1)
    shear[..., 0, 1], shear[..., 1, 0] = s[..., 0], s[..., 1]
    xy = torch.where(corrupt.view(*kn, 1, 1, 1), xy, torch.einsum("knij,knjtv->knitv", shear, xy))

    # rigid 2-D similarity transform on top (rotation, scale, translation)
    on = d["rigid_on"]
    theta = torch.deg2rad(cfg.rotation_deg * (2 * d["angle"] - 1)) * on
    scale = torch.where(on, cfg.scale[0] + (cfg.scale[1] - cfg.scale[0]) * d["scale"], torch.ones_like(theta))
    cos, sin = torch.cos(theta) * scale, torch.sin(theta) * scale
    rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)
    shift = cfg.translation * (2 * d["shift"] - 1) * on.unsqueeze(-1)        # (K, n, 2)
    xy = torch.einsum("knij,knjtv->knitv", rot, xy) + shift.view(*kn, 2, 1, 1)

    # undetected joints (score 0 before the spatial step) and zeroed ones are exactly 0 in every channel
    absent = zeroed.view(*kn, 1, 1, -1)
    if rest.shape[2]:
        absent = absent | (rest[:, :, :1] == 0)
    out = torch.cat([xy, rest], dim=2)
    return torch.where(absent, torch.zeros_like(out), out)


class FourViewAugment:
    """Convenience wrapper: ``(x, valid_len, generator) -> views`` for single-process use and benchmarks."""

    def __init__(self, cfg: AugmentConfig, num_frames: int) -> None:
        self.cfg, self.num_frames = cfg, num_frames

    def __call__(self, x: torch.Tensor, valid_len: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        d = draw(self.cfg, x.shape[0], self.num_frames, x.shape[3], generator)
        return apply(self.cfg, x, valid_len, d, self.num_frames)
