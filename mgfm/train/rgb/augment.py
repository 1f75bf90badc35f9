"""SMILE's / VideoMAE's fine-tuning augmentation of RGB clips, in torch on the training device, a batch at a time.

Per clip, in SMILE's order (kinetics.py ``_aug_frame``): RandAugment (``rand-m7-n4-mstd0.5-inc1``: 4 ops drawn
with replacement from the 15 "increasing" ops, each applied with probability 0.5 at a magnitude ~ N(7, 0.5)
clipped to [0, 10], random sign where the op has one), then a random resized crop (area scale, aspect ratio) to the
model's size with a horizontal flip, then ImageNet normalisation, then random erasing (one box, the same on every
frame, filled with per-pixel N(0, 1) noise). Every choice is made once per clip and applied to all its frames, as
SMILE applies one transform to a clip's list of frames; histogram ops (auto-contrast, equalize, contrast's mean)
work per frame, as PIL does on each frame. Geometric ops resample bicubically with grey (128) fill, as SMILE's
RandAugment does.

All random draws come from the step's CPU generator (same draws on any device); the pixel work is batched on the
clips' device: clips that drew the same op are transformed together with per-clip parameters.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

MAX_LEVEL = 10.0
FILL = 128 / 255
#: timm's _RAND_INCREASING_TRANSFORMS, the ops of SMILE's ``inc1`` policy, in its order
OPS = ("AutoContrast", "Equalize", "Invert", "Rotate", "PosterizeIncreasing", "SolarizeIncreasing", "SolarizeAdd",
       "ColorIncreasing", "ContrastIncreasing", "BrightnessIncreasing", "SharpnessIncreasing", "ShearX", "ShearY",
       "TranslateXRel", "TranslateYRel")


@dataclass(frozen=True)
class ClipAugment:
    """The fine-tuning augmentation settings (``eval.finetune.rgb``'s keys, defaults in the eval schema; 0 turns a
    part off)."""

    randaugment_ops: int
    randaugment_magnitude: float
    randaugment_magnitude_std: float
    crop_scale: tuple[float, float]
    crop_ratio: tuple[float, float]
    flip: float
    erasing: float

    @classmethod
    def from_section(cls, recipe: dict) -> ClipAugment:
        """From the resolved ``eval.finetune.rgb`` block (its other keys shape the model and training)."""
        ra, crop = recipe["randaugment"], recipe["crop"]
        return cls(int(ra["num_ops"]), float(ra["magnitude"]), float(ra["magnitude_std"]),
                   tuple(crop["scale"]), tuple(crop["ratio"]), float(crop["flip"]), float(recipe["random_erasing"]))

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------- geometry
def _warp(x: torch.Tensor, matrix: torch.Tensor, out_hw: tuple[int, int], mode: str, fill: float) -> torch.Tensor:
    """Resample clips (n, T, C, H, W) with per-clip pixel-space affine maps ``matrix`` (n, 2, 3) from output
    coordinates to input coordinates (PIL's convention; pixel (i, j) spans [j, j + 1] x [i, i + 1]); outside the
    input is ``fill``."""
    n, t, c, h, w = x.shape
    oh, ow = out_hw
    m = torch.cat([matrix.to(torch.float64), matrix.new_tensor([0.0, 0.0, 1.0], dtype=torch.float64)
                  .expand(n, 1, 3)], dim=1)
    to_in = torch.tensor([[2 / w, 0, -1], [0, 2 / h, -1], [0, 0, 1]], dtype=torch.float64)
    from_out = torch.tensor([[ow / 2, 0, ow / 2], [0, oh / 2, oh / 2], [0, 0, 1]], dtype=torch.float64)
    theta = (to_in @ m @ from_out)[:, :2].to(device=x.device, dtype=torch.float32)
    grid = F.affine_grid(theta, [n, t * c, oh, ow], align_corners=False)
    out = F.grid_sample(x.reshape(n, t * c, h, w) - fill, grid, mode=mode, padding_mode="zeros",
                        align_corners=False) + fill
    return out.reshape(n, t, c, oh, ow)


def _affine(a, b, c, d, e, f) -> torch.Tensor:
    return torch.stack([torch.stack([a, b, c], -1), torch.stack([d, e, f], -1)], dim=-2)


def _geometric(name: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    h, w = x.shape[-2:]
    one, zero = torch.ones_like(level), torch.zeros_like(level)
    if name == "Rotate":                         # PIL Image.rotate: counter-clockwise about the centre
        a = -torch.deg2rad(level * 30.0 * sign)
        cos, sin = torch.cos(a), torch.sin(a)
        cx, cy = w / 2, h / 2
        m = _affine(cos, sin, cx - cos * cx - sin * cy, -sin, cos, cy + sin * cx - cos * cy)
    elif name == "ShearX":
        m = _affine(one, level * 0.3 * sign, zero, zero, one, zero)
    elif name == "ShearY":
        m = _affine(one, zero, zero, level * 0.3 * sign, one, zero)
    elif name == "TranslateXRel":
        m = _affine(one, zero, level * 0.45 * sign * w, zero, one, zero)
    else:                                        # TranslateYRel
        m = _affine(one, zero, zero, zero, one, level * 0.45 * sign * h)
    return _warp(x, m, (h, w), "bicubic", FILL).clamp_(0, 1)


# ---------------------------------------------------------------------------------------------- colour
def _levels(x: torch.Tensor) -> torch.Tensor:
    return (x * 255).round_().clamp_(0, 255)


def _gray(x: torch.Tensor) -> torch.Tensor:
    """PIL's "L" conversion (ITU-R 601-2 luma), (n, T, 1, H, W)."""
    r, g, b = x.unbind(dim=2)
    return (0.299 * r + 0.587 * g + 0.114 * b).unsqueeze(2)


def _per_clip(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1, 1)


def _blend(degenerate: torch.Tensor, x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance: degenerate + factor * (image - degenerate), clipped."""
    return (degenerate + _per_clip(factor) * (x - degenerate)).clamp_(0, 1)


def _equalize(x: torch.Tensor) -> torch.Tensor:
    """PIL ImageOps.equalize per frame and channel: lut[i] = (step // 2 + #pixels below i) // step, step = (all
    pixels - those of the highest level present) // 255; identity when step is 0."""
    shape = x.shape
    q = _levels(x).long().reshape(-1, shape[-2] * shape[-1])
    hist = torch.zeros(q.shape[0], 256, device=x.device, dtype=torch.long).scatter_add_(1, q, torch.ones_like(q))
    top = 255 - (hist > 0).flip(1).long().argmax(1, keepdim=True)
    step = (hist.sum(1, keepdim=True) - hist.gather(1, top)) // 255
    below = hist.cumsum(1) - hist
    lut = ((below + step // 2) // step.clamp(min=1)).clamp_(max=255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device).expand_as(lut))
    return (lut.gather(1, q).float() / 255).reshape(shape)


def _sharpness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """PIL ImageEnhance.Sharpness: blend with the SMOOTH-filtered frame (3x3, centre 5, sum 13; border pixels
    kept)."""
    n, t, c, h, w = x.shape
    kernel = torch.ones(3, 3, device=x.device, dtype=x.dtype)
    kernel[1, 1] = 5
    kernel = (kernel / 13).expand(t * c, 1, 3, 3)
    smooth = F.conv2d(x.reshape(n, t * c, h, w), kernel, groups=t * c).reshape(n, t, c, h - 2, w - 2)
    degenerate = x.clone()
    degenerate[..., 1:-1, 1:-1] = smooth
    return _blend(degenerate, x, factor)


def _colour(name: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    if name == "AutoContrast":                   # per frame and channel, min -> 0 and max -> 1
        lo = x.amin(dim=(-2, -1), keepdim=True)
        hi = x.amax(dim=(-2, -1), keepdim=True)
        return torch.where(hi > lo, (x - lo) / (hi - lo).clamp(min=1e-12), x)
    if name == "Equalize":
        return _equalize(x)
    if name == "Invert":
        return 1 - x
    if name == "PosterizeIncreasing":            # keep 4 - int(4 level) most significant bits
        shift = _per_clip(8 - (4 - (level * 4).floor())).to(x.dtype)
        return (torch.floor(_levels(x) / 2 ** shift) * 2 ** shift) / 255
    if name == "SolarizeIncreasing":             # invert the levels >= 256 - int(256 level)
        q = _levels(x)
        return torch.where(q >= _per_clip(256 - (level * 256).floor()), 255 - q, q) / 255
    if name == "SolarizeAdd":                    # add int(110 level) to the levels below 128
        q = _levels(x)
        return torch.where(q < 128, (q + _per_clip((level * 110).floor())).clamp(max=255), q) / 255
    factor = 1.0 + level * 0.9 * sign            # the *Increasing enhance ops: 1 +- 0.9 level
    if name == "ColorIncreasing":
        return _blend(_gray(x), x, factor)
    if name == "ContrastIncreasing":             # towards the frame's mean grey level (PIL rounds it)
        mean = (_gray(x).mean(dim=(-3, -2, -1), keepdim=True) * 255).add_(0.5).floor_() / 255
        return _blend(mean.expand_as(x), x, factor)
    if name == "BrightnessIncreasing":
        return _blend(torch.zeros_like(x), x, factor)
    return _sharpness(x, factor)                 # SharpnessIncreasing


def apply_op(name: str, x: torch.Tensor, level: torch.Tensor, sign: torch.Tensor) -> torch.Tensor:
    """One RandAugment op on clips (n, T, C, H, W) in [0, 1]; ``level`` = magnitude / 10 and ``sign`` (+-1) per
    clip (n,), on ``x``'s device."""
    if name not in OPS:
        raise ValueError(f"unknown RandAugment op {name!r}")
    if name in ("Rotate", "ShearX", "ShearY", "TranslateXRel", "TranslateYRel"):
        return _geometric(name, x, level.cpu(), sign.cpu())
    return _colour(name, x, level.to(x.device, x.dtype), sign.to(x.device, x.dtype))


def rand_augment(x: torch.Tensor, num_ops: int, magnitude: float, magnitude_std: float,
                 generator: torch.Generator) -> torch.Tensor:
    """SMILE's RandAugment on clips (B, T, C, H, W) in [0, 1]: per clip ``num_ops`` ops drawn with replacement,
    each applied with probability 0.5 at magnitude ~ N(magnitude, magnitude_std) clipped to [0, 10]."""
    b = x.shape[0]
    x = x.clone()
    for _ in range(num_ops):
        op = torch.randint(len(OPS), (b,), generator=generator)
        used = torch.rand(b, generator=generator) < 0.5
        mag = (magnitude + magnitude_std * torch.randn(b, generator=generator)).clamp(0, MAX_LEVEL)
        sign = torch.where(torch.rand(b, generator=generator) > 0.5, -1.0, 1.0)
        for k in torch.unique(op[used]).tolist():
            rows = torch.nonzero(used & (op == k)).squeeze(1)
            dev_rows = rows.to(x.device)
            x[dev_rows] = apply_op(OPS[k], x[dev_rows], mag[rows] / MAX_LEVEL, sign[rows])
    return x


# ---------------------------------------------------------------------------------------------- crop, erase
def _boxes(b: int, h: int, w: int, area: float, scale: tuple[float, float], ratio: tuple[float, float], tries: int,
           strict: bool, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    """Per clip the first of ``tries`` boxes (area ``area`` x U(scale), log-uniform aspect ``ratio``) that fits in
    h x w (strictly smaller with ``strict``), as torchvision's / SMILE's RandomResizedCrop and RandomErasing draw
    them: (top, left, height, width, found)."""
    target = area * (scale[0] + (scale[1] - scale[0]) * torch.rand(b, tries, generator=generator))
    logr = math.log(ratio[0]) + (math.log(ratio[1]) - math.log(ratio[0])) * torch.rand(b, tries, generator=generator)
    bw = torch.sqrt(target * torch.exp(logr)).round().long()
    bh = torch.sqrt(target / torch.exp(logr)).round().long()
    ok = (bw > 0) & (bh > 0) & ((bw < w) & (bh < h) if strict else (bw <= w) & (bh <= h))
    first = ok.long().argmax(1, keepdim=True)
    bh, bw, found = bh.gather(1, first).squeeze(1), bw.gather(1, first).squeeze(1), ok.any(1)
    top = (torch.rand(b, generator=generator) * (h - bh + 1).clamp(min=1)).floor().long()
    left = (torch.rand(b, generator=generator) * (w - bw + 1).clamp(min=1)).floor().long()
    return top, left, bh, bw, found


def random_resized_crop(x: torch.Tensor, size: int, scale: tuple[float, float], ratio: tuple[float, float],
                        flip: float, generator: torch.Generator) -> torch.Tensor:
    """Clips (B, T, C, H, W) -> (B, T, C, size, size): per clip one box of ``scale`` x size^2 pixels and aspect
    ``ratio`` anywhere in the frame (10 tries, else the central size x size window), the same on every frame,
    resized bilinearly, mirrored with probability ``flip``.

    The area is relative to the model's view, not the stored frame: where the stored frame is the view (H = W =
    size) this is SMILE's crop of the frame; where a dataset keeps more pixels around it, the box moves over all
    of them at the scale the test views (``rgb_finetune_views``) see, instead of zooming out."""
    b, _, _, h, w = x.shape
    if h < size or w < size:
        raise ValueError(f"RGB clips of {h}x{w} px are smaller than the model's {size} px view")
    top, left, bh, bw, found = _boxes(b, h, w, size * size, scale, ratio, 10, False, generator)
    top, left = torch.where(found, top, (h - size) // 2), torch.where(found, left, (w - size) // 2)
    bh, bw = torch.where(found, bh, size), torch.where(found, bw, size)
    mirror = torch.rand(b, generator=generator) < flip
    sx, sy = bw.double() / size, bh.double() / size
    zero = torch.zeros(b, dtype=torch.float64)
    m = _affine(torch.where(mirror, -sx, sx), zero, torch.where(mirror, left + bw, left).double(),
                zero, sy, top.double())
    return _warp(x, m, (size, size), "bilinear", 0.0)


def random_erasing(x: torch.Tensor, probability: float, generator: torch.Generator) -> torch.Tensor:
    """SMILE's RandomErasing (``cube``, ``pixel`` mode, one box) on normalised clips (B, T, C, H, W): with
    ``probability`` per clip, one box of 2-33 % of the frame (aspect 0.3-3.3, 100 tries), the same on every frame,
    filled with fresh N(0, 1) noise per pixel and frame."""
    b, _, _, h, w = x.shape
    top, left, bh, bw, found = _boxes(b, h, w, h * w, (0.02, 1 / 3), (0.3, 1 / 0.3), 100, True, generator)
    erase = found & (torch.rand(b, generator=generator) < probability)
    if not bool(erase.any()):
        return x
    dev = x.device
    ys, xs = torch.arange(h, device=dev), torch.arange(w, device=dev)
    top, left, bh, bw, erase = (v.to(dev) for v in (top, left, bh, bw, erase))
    inside = (((ys[None] >= top[:, None]) & (ys[None] < (top + bh)[:, None]))[:, :, None]
              & ((xs[None] >= left[:, None]) & (xs[None] < (left + bw)[:, None]))[:, None, :])
    inside = (inside & erase[:, None, None]).view(b, 1, 1, h, w)
    noise_gen = torch.Generator(device=dev).manual_seed(int(torch.randint(2**62, (1,), generator=generator)))
    noise = torch.randn(x.shape, generator=noise_gen, device=dev, dtype=x.dtype)
    return torch.where(inside, noise, x)


def augment_clips(x: torch.Tensor, size: int, aug: ClipAugment, generator: torch.Generator) -> torch.Tensor:
    """[0, 1] clips (B, T, C, H, W) -> augmented, ImageNet-normalised clips (B, T, C, size, size)."""
    from mgfm.models.rgb.student import normalise_clips

    if aug.randaugment_ops > 0:
        x = rand_augment(x, aug.randaugment_ops, aug.randaugment_magnitude, aug.randaugment_magnitude_std, generator)
    x = random_resized_crop(x, size, aug.crop_scale, aug.crop_ratio, aug.flip, generator)
    x = normalise_clips(x)
    if aug.erasing > 0:
        x = random_erasing(x, aug.erasing, generator)
    return x
