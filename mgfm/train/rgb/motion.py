"""SMILE Stage I synthetic motion augmentation: objects pasted onto clips along smoothed random paths, vectorised
over the batch.

Per clip ``objects`` objects (SMILE: 2), each drawn as SMILE's ``PatchMask`` with ``motion_type gaussian`` draws it:
- box shape: one of SMILE's anchors (``scales`` x ``ratios``: width s sqrt(r), height s / sqrt(r)), each side
  jittered by exp(U(-``scale_jitter``, ``scale_jitter``)), clipped to [1, S - 1];
- path: ``path_points`` (48) centres uniform inside the frame (the box kept inside), smoothed by a Gaussian of
  sigma ``path_sigma`` (8, reflected at the ends), rescaled to an extent of an integer in ``path_extent``
  ([40, 180) px), shifted by a random integer offset, clipped to the frame, and read at ``num_frames`` evenly
  spaced points (rounded to integer pixels);
- size: a random walk over 0-2 inner key frames (``key_frame_probs``): each side times exp(U(-v d, v d)) for
  ``size_velocity`` v over d frames, interpolated between key frames linearly, accelerating or decelerating
  (probabilities 0.7 / 0.15 / 0.15, per segment and clip); boxes rounded to integer pixels;
- rotation: the same kind of walk from 0 degrees with steps U(-``rotation_velocity`` d, ``rotation_velocity`` d),
  truncated to whole degrees;
- the larger object (by mean box area) is pasted first.
Objects are RGBA images from a folder (``rgb_objects``; their own alpha, as SMILE's real object crops) or, when
none is configured, generated: a disk, square, triangle or ring filled with a two-colour gradient, opacity
U(``alpha``). Pixel values are SMILE's at ``reference_size`` (224 px) and scale with the clip. Draws are made for
the whole global batch from the step's generator, so DDP ranks agree; ``render`` pastes this process's rows with
``grid_sample`` (rotation about the box centre, the object stretched to its box, as SMILE resizes it).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from mgfm.config.sections import section_values

TEMPLATE_SIZE = 48
SHAPES = 4   # disk, square, triangle, ring
#: how key-frame segments are interpolated (SMILE's extend_key_frame_to_all 'random'): linear, accelerating,
#: decelerating
INTERPOLATION_PROBS = (0.7, 0.15, 0.15)


@dataclass(frozen=True)
class MotionConfig:
    """A resolved ``rgb_pretrain.motion`` block (defaults in the schema)."""

    objects: int
    objects_dir: str
    object_size: int
    scales: tuple[float, ...]
    ratios: tuple[float, ...]
    scale_jitter: float
    path_points: int
    path_sigma: float
    path_extent: tuple[int, int]
    rotation_velocity: float
    size_velocity: float
    key_frame_probs: tuple[float, ...]
    alpha: tuple[float, float]
    reference_size: int

    def __post_init__(self) -> None:
        if abs(sum(self.key_frame_probs) - 1.0) > 1e-6:
            raise ValueError(f"rgb_pretrain.motion.key_frame_probs must sum to 1, got {list(self.key_frame_probs)}")
        if not 0 < self.path_extent[0] < self.path_extent[1]:
            raise ValueError(f"rgb_pretrain.motion.path_extent must be [low, high) with 0 < low < high, got "
                             f"{list(self.path_extent)}")
        if int(4 * self.path_sigma + 0.5) >= self.path_points:
            raise ValueError("rgb_pretrain.motion.path_points must exceed the Gaussian's reach (4 path_sigma)")

    @classmethod
    def from_section(cls, p: dict) -> MotionConfig:
        """From the resolved ``rgb_pretrain.motion`` block; a missing or unknown key is an error naming it."""
        p = section_values(cls, p, "rgb_pretrain.motion")
        for k in ("scales", "ratios", "alpha", "key_frame_probs"):
            p[k] = tuple(float(v) for v in p[k])
        p["path_extent"] = tuple(int(v) for v in p["path_extent"])
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


def _key_frames(n: int, frames: int, probs: tuple[float, ...], g: torch.Generator) -> torch.Tensor:
    """(n, K + 2) sorted key frames per row (SMILE's sample_key_frames): 0, up to K = len(probs) - 1 inner ones
    (their number drawn from ``probs``, each at i T / (c + 1) plus a jitter in [-j, j) with j = int(T / (c + 1) / 3)),
    and T - 1; unused slots repeat T - 1 (zero-length segments)."""
    inner = len(probs) - 1
    count = torch.multinomial(torch.tensor(probs, dtype=torch.float64).expand(n, -1), 1, generator=g)[:, 0]
    avg = frames / (count.double() + 1)                                                  # (n,)
    i = torch.arange(1, inner + 1, dtype=torch.float64)
    ticks = torch.floor(avg[:, None] * i)
    reach = torch.floor(avg / 3)[:, None]
    jitter = torch.floor(torch.rand(n, inner, generator=g, dtype=torch.float64) * 2 * reach) - reach
    ticks = torch.where(i[None] <= count[:, None], ticks + jitter, torch.full_like(ticks, frames - 1))
    ticks = ticks.clamp(0, frames - 1)
    ends = torch.tensor([0.0, frames - 1.0], dtype=torch.float64).expand(n, -1)
    return torch.cat([ends[:, :1], ticks, ends[:, 1:]], dim=1).sort(dim=1).values


def _walk(keys: torch.Tensor, start: torch.Tensor, step: float, g: torch.Generator, multiplicative: bool
          ) -> torch.Tensor:
    """Values at the key frames (n, K, d): a random walk from ``start`` (n, d), each step U(-step d, step d) over d
    frames (added, or as exp(.) multiplied)."""
    gaps = keys.diff(dim=1)[..., None]                                                      # (n, K - 1, 1)
    shifts = (torch.rand(*gaps.shape[:2], start.shape[-1], generator=g, dtype=torch.float64) * 2 - 1) * step * gaps
    if multiplicative:
        return start[:, None] * torch.cat([torch.ones_like(start[:, None]), shifts.exp().cumprod(dim=1)], dim=1)
    return start[:, None] + torch.cat([torch.zeros_like(start[:, None]), shifts.cumsum(dim=1)], dim=1)


def _interpolate(keys: torch.Tensor, values: torch.Tensor, frames: int, g: torch.Generator, group: int = 1
                 ) -> torch.Tensor:
    """Key-frame values (n, K, d) -> every frame (n, T, d), each segment linear, accelerating (u^2) or decelerating
    (1 - (1 - u)^2) by ``INTERPOLATION_PROBS``, the same kind for each ``group`` consecutive rows (a clip's
    objects)."""
    n, k, _ = values.shape
    kinds = torch.multinomial(torch.tensor(INTERPOLATION_PROBS, dtype=torch.float64).expand(n // group * (k - 1), -1),
                              1, generator=g).view(n // group, k - 1).repeat_interleave(group, dim=0)
    t = torch.arange(frames, dtype=torch.float64)
    seg = (torch.searchsorted(keys.contiguous(), t.expand(n, -1).contiguous(), right=True) - 1).clamp(0, k - 2)
    a, b = keys.gather(1, seg), keys.gather(1, seg + 1)
    u = torch.where(b > a, (t - a) / (b - a).clamp(min=1e-9), torch.ones_like(a))
    kind = kinds.gather(1, seg)
    f = torch.where(kind == 0, u, torch.where(kind == 1, u * u, 1 - (1 - u) ** 2))[..., None]
    idx = seg[..., None].expand(-1, -1, values.shape[-1])
    v0, v1 = values.gather(1, idx), values.gather(1, idx + 1)
    return v0 + (v1 - v0) * f


def _smooth(points: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing along the last axis with half-sample symmetric ends (scipy's gaussian_filter1d, mode
    'reflect', truncate 4)."""
    radius = int(4 * sigma + 0.5)
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    padded = torch.cat([points[..., :radius].flip(-1), points, points[..., -radius:].flip(-1)], dim=-1)
    shape = padded.shape
    out = F.conv1d(padded.reshape(-1, 1, shape[-1]), kernel.view(1, 1, -1))
    return out.view(*shape[:-1], -1)


def _paths(cfg: MotionConfig, shape: torch.Tensor, frames: int, size: int, px: float, g: torch.Generator
           ) -> torch.Tensor:
    """Object centres (n, T, 2) on SMILE's smoothed random paths, for box shapes (n, 2)."""
    n = shape.shape[0]
    low = 1 + shape / 2
    high = size - 1 - shape / 2
    pts = low[..., None] + (high - low)[..., None] * torch.rand(n, 2, cfg.path_points, generator=g, dtype=torch.float64)
    smooth = _smooth(pts, cfg.path_sigma)
    smooth = smooth - smooth.amin(dim=-1, keepdim=True)
    smooth = smooth / smooth.amax(dim=-1, keepdim=True).clamp(min=1e-12)
    lo, hi = cfg.path_extent
    extent = torch.floor(lo + torch.rand(n, 1, 1, generator=g, dtype=torch.float64) * (hi - lo)) * px
    offset = torch.floor(torch.rand(n, 2, 1, generator=g, dtype=torch.float64) * (size - extent).clamp(min=1))
    path = (smooth * extent + offset).clamp(0, size - 1)
    at = torch.round(torch.linspace(0, cfg.path_points - 1, frames, dtype=torch.float64)).long()
    return torch.floor(path[..., at]).transpose(1, 2)                                         # (n, T, 2)


def draw(cfg: MotionConfig, batch: int, num_frames: int, size: int, generator: torch.Generator,
         bank_size: int = 0) -> dict:
    """Random objects and their box paths for ``batch`` clips: every tensor has batch as its first axis, objects as
    its second. ``box`` (B, K, T, 4) x0, y0, x1, y1 in px; ``angle`` (B, K, T) degrees; ``object`` (B, K) the
    bank index (with ``bank_size`` > 0) and ``kind``, ``c1``, ``c2``, ``phi`` a generated object's look;
    ``opacity`` (B, K)."""
    g = generator
    b, k, t = batch, cfg.objects, num_frames
    n = b * k
    px = size / cfg.reference_size
    u = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
    scales = torch.tensor(cfg.scales, dtype=torch.float64)
    ratios = torch.tensor(cfg.ratios, dtype=torch.float64).sqrt()
    anchors = torch.stack([(scales[None] * ratios[:, None]).reshape(-1), (scales[None] / ratios[:, None]).reshape(-1)],
                          dim=1)                                                           # SMILE's ratio-major order
    pick = torch.randint(0, len(anchors), (n,), generator=g)
    shape = anchors[pick] * torch.exp((u(n, 2) * 2 - 1) * cfg.scale_jitter) * px
    shape = shape.clamp(1, size - 1)
    centre = _paths(cfg, shape, t, size, px, g)                                              # (n, T, 2)
    # sizes and angles walk over key frames shared by a clip's objects, one interpolation kind per segment
    size_keys = _key_frames(b, t, cfg.key_frame_probs, g).repeat_interleave(k, dim=0)
    sides = _walk(size_keys, shape, cfg.size_velocity, g, multiplicative=True)
    sides = _interpolate(size_keys, sides, t, g, k)                                           # (n, T, 2)
    turn_keys = _key_frames(b, t, cfg.key_frame_probs, g).repeat_interleave(k, dim=0)
    turns = _walk(turn_keys, torch.zeros(n, 1, dtype=torch.float64), cfg.rotation_velocity, g, multiplicative=False)
    angle = torch.trunc(_interpolate(turn_keys, turns, t, g, k)[..., 0])                      # (n, T)
    box = torch.round(torch.cat([centre - sides / 2, centre + sides / 2], dim=-1))             # (n, T, 4)
    out = {"box": box.view(b, k, t, 4).float(), "angle": angle.view(b, k, t).float()}
    if bank_size:
        out["object"] = torch.randint(0, bank_size, (b, k), generator=g)
        out["opacity"] = torch.ones(b, k)
    else:
        out.update(kind=torch.randint(0, SHAPES, (b, k), generator=g), c1=u(b, k, 3).float(), c2=u(b, k, 3).float(),
                   phi=(u(b, k) * 2 * math.pi).float(),
                   opacity=(cfg.alpha[0] + u(b, k) * (cfg.alpha[1] - cfg.alpha[0])).float())
    # SMILE pastes the larger object first, so a small one is not hidden under it
    wh = out["box"][..., 2:] - out["box"][..., :2]
    order = wh.mean(dim=2).prod(dim=-1).argsort(dim=1, descending=True, stable=True)
    return {key: v.gather(1, order.view(b, k, *([1] * (v.dim() - 2))).expand(-1, -1, *v.shape[2:]))
            for key, v in out.items()}


def select(draws: dict, rows) -> dict:
    return {k: v[rows] for k, v in draws.items()}


def render(clips: torch.Tensor, draws: dict, bank=None) -> torch.Tensor:
    """Paste the objects: clips (B, T, 3, S, S) in [0, 1] -> the augmented clips. ``bank`` (M, P, P, 4) uint8
    RGBA objects, indexed by ``draws['object']``, or None for generated ones."""
    b, t, _, s, _ = clips.shape
    dev = clips.device
    k = draws["box"].shape[1]
    if bank is not None:
        idx = draws["object"].reshape(-1).numpy()
        tmpl = torch.from_numpy(bank[idx]).to(dev).permute(0, 3, 1, 2).float().div_(255.0)     # (B*K, 4, P, P)
    else:
        tmpl = templates(draws["kind"].reshape(-1), draws["c1"].reshape(-1, 3), draws["c2"].reshape(-1, 3),
                         draws["phi"].reshape(-1)).to(dev)
    side = tmpl.shape[-1]
    out = clips
    for j in range(k):
        theta = _affine(draws["box"][:, j].to(dev), draws["angle"][:, j].to(dev), s)
        src = tmpl.view(b, k, 4, side, side)[:, j].repeat_interleave(t, dim=0)
        grid = F.affine_grid(theta.reshape(b * t, 2, 3), [b * t, 4, s, s], align_corners=False)
        obj = F.grid_sample(src, grid, mode="bilinear", padding_mode="zeros", align_corners=False).view(b, t, 4, s, s)
        a = obj[:, :, 3:] * draws["opacity"][:, j].to(dev).view(b, 1, 1, 1, 1)
        out = out * (1 - a) + obj[:, :, :3] * a
    return out


def _affine(box: torch.Tensor, angle: torch.Tensor, size: int) -> torch.Tensor:
    """Output-to-template maps (B, T, 2, 3) in affine_grid's normalised coordinates: the template stretched over the
    box, rotated by ``angle`` about the box centre."""
    centre = (box[..., :2] + box[..., 2:]) / 2
    half = ((box[..., 2:] - box[..., :2]) / 2).clamp(min=0.5)
    rad = torch.deg2rad(angle)
    cos, sin = torch.cos(rad), torch.sin(rad)
    rot = torch.stack([torch.stack([cos, sin], -1), torch.stack([-sin, cos], -1)], -2)           # R(-angle)
    lin = rot / half[..., :, None] * (size / 2)
    off = (rot @ (size / 2 - centre)[..., None]) / half[..., :, None]
    return torch.cat([lin, off], dim=-1)
