"""SMILE Stage I synthetic motion augmentation: object tubelets pasted onto clips, vectorised over the batch.

SMILE pastes crops of real object instances; we generate the objects (no object dataset ships with mgfm): each
is a disk, square, triangle or ring, filled with a two-colour linear gradient. Per clip ``objects`` of them move
independently: start anywhere in the frame, constant velocity up to ``location_velocity`` px/frame (reflected at
the borders), rotation up to ``rotation_velocity`` degrees/frame, size from ``scale`` px changing by up to
``size_velocity`` of itself per frame, opacity U(``alpha``). Pixel values are SMILE's at ``reference_size`` (224 px)
and scale with the clip's size. Draws are made for the whole global batch from the step's generator, so DDP ranks
agree; ``render`` then pastes this process's rows with ``grid_sample``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

TEMPLATE_SIZE = 48
SHAPES = 4   # disk, square, triangle, ring


@dataclass(frozen=True)
class MotionConfig:
    """A resolved ``rgb_pretrain.motion`` block (defaults in the schema)."""

    objects: int
    scale: tuple[float, float]
    location_velocity: float
    rotation_velocity: float
    size_velocity: float
    alpha: tuple[float, float]
    reference_size: int

    @classmethod
    def from_section(cls, p: dict) -> MotionConfig:
        p = dict(p)
        for k in ("scale", "alpha"):
            p[k] = tuple(float(v) for v in p[k])
        return cls(**p)

    def to_dict(self) -> dict:
        return asdict(self)


def templates(kind: torch.Tensor, c1: torch.Tensor, c2: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """(M,) shape kinds, (M, 3) colours, (M,) gradient angles -> RGBA templates (M, 4, P, P) in [0, 1]."""
    r = torch.linspace(-1, 1, TEMPLATE_SIZE)
    v, u = torch.meshgrid(r, r, indexing="ij")
    u, v = u[None], v[None]
    rad = torch.sqrt(u * u + v * v)
    k = kind[:, None, None]
    alpha = torch.where(k == 0, rad < 0.95,
            torch.where(k == 1, torch.maximum(u.abs(), v.abs()) < 0.8,
            torch.where(k == 2, (v < 0.8) & (u.abs() < (0.8 - v) * 0.6) & (v > -0.9),
                        (rad < 0.95) & (rad > 0.5)))).float()
    g = ((u * torch.cos(phi)[:, None, None] + v * torch.sin(phi)[:, None, None]) + 1) / 2
    rgb = c1[:, :, None, None] * (1 - g[:, None]) + c2[:, :, None, None] * g[:, None]
    return torch.cat([rgb, alpha[:, None]], dim=1)


def draw(cfg: MotionConfig, batch: int, num_frames: int, size: int, generator: torch.Generator) -> dict:
    """Random objects and trajectories for ``batch`` clips: every tensor has batch as its first axis."""
    m = (batch, cfg.objects)
    u = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    px = size / cfg.reference_size
    kind = torch.randint(0, SHAPES, m, generator=generator)
    t = torch.arange(num_frames, dtype=torch.float32)
    centre0 = u(*m, 2) * size
    vel = (u(*m, 2) * 2 - 1) * cfg.location_velocity * px
    centre = centre0[:, :, None] + vel[:, :, None] * t[None, None, :, None]                   # (B, K, T, 2)
    period = 2.0 * size
    centre = torch.remainder(centre, period)
    centre = torch.where(centre > size, period - centre, centre)                               # reflect at borders
    angle = ((u(*m) * 360)[..., None] + (u(*m) * 2 - 1)[..., None] * cfg.rotation_velocity * t)             # (B, K, T) degrees
    side0 = (cfg.scale[0] + u(*m) * (cfg.scale[1] - cfg.scale[0])) * px
    growth = (u(*m) * 2 - 1) * cfg.size_velocity
    side = side0[..., None] * torch.clamp(1 + growth[..., None] * t, min=0.25)                # (B, K, T)
    opacity = cfg.alpha[0] + u(*m) * (cfg.alpha[1] - cfg.alpha[0])
    return {"kind": kind, "c1": u(*m, 3), "c2": u(*m, 3), "phi": u(*m) * 2 * math.pi, "centre": centre,
            "angle": angle, "side": side, "opacity": opacity}


def select(draws: dict, rows) -> dict:
    return {k: v[rows] for k, v in draws.items()}


def render(clips: torch.Tensor, draws: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """Paste the objects: clips (B, T, 3, S, S) in [0, 1] -> (augmented clips, object coverage (B, T, S, S))."""
    b, t, _, s, _ = clips.shape
    dev = clips.device
    k = draws["kind"].shape[1]
    tmpl = templates(draws["kind"].reshape(-1), draws["c1"].reshape(-1, 3), draws["c2"].reshape(-1, 3),
                     draws["phi"].reshape(-1)).to(dev)                                          # (B*K, 4, P, P)
    out, coverage = clips, torch.zeros(b, t, s, s, device=dev)
    for j in range(k):
        theta = _affine(draws["centre"][:, j].to(dev), draws["angle"][:, j].to(dev), draws["side"][:, j].to(dev), s)
        src = tmpl.view(b, k, 4, TEMPLATE_SIZE, TEMPLATE_SIZE)[:, j].repeat_interleave(t, dim=0)
        grid = F.affine_grid(theta.reshape(b * t, 2, 3), [b * t, 4, s, s], align_corners=False)
        obj = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(b, t, 4, s, s)
        a = obj[:, :, 3:] * draws["opacity"][:, j].to(dev).view(b, 1, 1, 1, 1)
        out = out * (1 - a) + obj[:, :, :3] * a
        coverage = torch.maximum(coverage, obj[:, :, 3])
    return out, coverage


def _affine(centre: torch.Tensor, angle: torch.Tensor, side: torch.Tensor, size: int) -> torch.Tensor:
    """Output-to-template maps (B, T, 2, 3) in affine_grid's normalised coordinates."""
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)           # R(-angle)
    lin = rot * (size / side)[..., None, None]
    off = (size / 2 - centre) * (2 / side)[..., None]
    return torch.cat([lin, (rot @ off[..., None])], dim=-1)


def trajectory_tokens(coverage: torch.Tensor, tubelet: int, patch: int, threshold: float = 0.5) -> torch.Tensor:
    """Object coverage (B, T, S, S) -> (B, t', h', w') bool: tokens an object crosses in any of their frames."""
    return F.max_pool3d(coverage[:, None], (tubelet, patch, patch))[:, 0] > threshold
