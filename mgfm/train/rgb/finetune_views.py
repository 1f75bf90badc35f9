"""Which part of a stored RGB clip fine-tuning sees: the test views (temporal x spatial, averaged at test time, as
SMILE / VideoMAE test) and the random temporal window of training.

A packed clip stores T_s frames of S_s x S_s pixels; the model takes T frames of S x S. Where the dataset stores
more, the views read it. Each clip stores ``starts`` starts of T consecutive frames: T_s - T + 1 for a plain
dataset (every stored frame is a frame of the clip), the ``view_starts`` column for the views layout (frames at a
fixed stride; a clip too short for the stride stores one start, its later slots repeat the last frame, and a
window never reaches them). Temporal views start at SMILE's ``int(k * (starts - 1) / (n - 1))``, per clip;
spatial views are S x S crops at evenly spaced positions along the frame's longer side (along x when square),
centred on the other, at the same positions; one view is the centred one. A clip's duplicate views (fewer starts
than temporal views) count once. Where the stored clip is exactly the model's input (the plain layout of the
evaluation datasets), every view is the same and it is evaluated once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


def view_starts(stored: int, wanted: int, n: int) -> list[int]:
    """The distinct start offsets of ``n`` views of length ``wanted`` in ``stored`` (in order)."""
    if stored < wanted:
        raise ValueError(f"a view of {wanted} does not fit in {stored} stored")
    if n < 1:
        raise ValueError(f"the number of views must be >= 1, got {n}")
    if n == 1:
        return [(stored - wanted) // 2]
    return sorted({int(k * (stored - wanted) / (n - 1)) for k in range(n)})


def clip_starts(starts: torch.Tensor, n: int) -> torch.Tensor:
    """(B, ``n``) start frames of each clip's temporal views, for clips storing ``starts`` (B,) starts of T frames:
    SMILE's ``int(k * (starts - 1) / (n - 1))``, the middle start for n = 1 (duplicates kept)."""
    if n < 1:
        raise ValueError(f"the number of views must be >= 1, got {n}")
    last = starts.long().clamp(min=1) - 1
    if n == 1:
        return (last // 2)[:, None]
    return torch.arange(n, device=last.device)[None] * last[:, None] // (n - 1)


@dataclass(frozen=True)
class TestViews:
    """The test views of a packed dataset: ``temporal`` start positions per clip (``clip_starts``) x the
    distinct spatial crops ``places`` (y, x), for a model of ``num_frames`` x ``size``."""

    temporal: int
    places: tuple[tuple[int, int], ...]
    num_frames: int
    size: int

    def starts(self, starts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Per clip the temporal views' start frames (B, temporal) and which of them are a clip's first of
        their start (B, temporal) bool: the distinct ones."""
        t0 = clip_starts(starts, self.temporal)
        earlier = (t0[:, :, None] == t0[:, None, :]).tril(diagonal=-1).any(-1)
        return t0, ~earlier


def evaluation_views(stored_shape: tuple[int, ...], num_frames: int, size: int, temporal: int,
                     spatial: int) -> TestViews:
    """The test views of clips stored as (..., T_s, H_s, W_s, 3)."""
    t_s, h_s, w_s = stored_shape[-4:-1]
    if t_s < num_frames:
        raise ValueError(f"clips of {t_s} frames are shorter than the model's {num_frames}")
    if h_s > w_s:      # along the longer side, centred on the other
        places = [(y, (w_s - size) // 2) for y in view_starts(h_s, size, spatial)]
    else:
        places = [((h_s - size) // 2, x) for x in view_starts(w_s, size, spatial)]
    return TestViews(int(temporal), tuple(places), int(num_frames), int(size))


def window(x: torch.Tensor, start: torch.Tensor, num_frames: int) -> torch.Tensor:
    """Stored clips (B, T_s, ...) -> (B, ``num_frames``, ...): per clip the frames from its ``start`` (B,)."""
    if bool((start == start[0]).all()):                     # one slice when every clip starts at the same frame
        s = int(start[0])
        return x[:, s:s + num_frames]
    idx = (start.to(x.device)[:, None] + torch.arange(num_frames, device=x.device)[None])
    return x[torch.arange(len(x), device=x.device)[:, None], idx]


def crop_view(x: torch.Tensor, start: torch.Tensor, place: tuple[int, int], num_frames: int,
              size: int) -> torch.Tensor:
    """Stored clips (B, T_s, H_s, W_s, 3) -> the view (B, T, S, S, 3) from per-clip frame ``start`` (B,) at
    ``place`` (y, x)."""
    y, xx = place
    return window(x, start, num_frames)[:, :, y:y + size, xx:xx + size]


def random_window(x: torch.Tensor, num_frames: int, generator: torch.Generator,
                  starts: torch.Tensor | None = None) -> torch.Tensor:
    """Stored clips (B, T_s, ...) -> (B, T, ...): per clip ``num_frames`` consecutive frames from a random one of
    its ``starts`` (default: every start in the stored frames; no draw when every clip has one)."""
    b, t_s = x.shape[:2]
    if t_s < num_frames:
        raise ValueError(f"clips of {t_s} frames are shorter than the model's {num_frames}")
    if starts is None:
        starts = torch.full((b,), t_s - num_frames + 1, dtype=torch.int64)
    starts = starts.long().cpu()
    if int(starts.max()) > t_s - num_frames + 1:
        raise ValueError(f"a clip names {int(starts.max())} starts of {num_frames} frames but stores {t_s}")
    if bool((starts <= 1).all()):
        return x[:, :num_frames]
    start = (torch.rand(b, generator=generator, dtype=torch.float64) * starts.clamp(min=1)).long()
    return window(x, start, num_frames)
