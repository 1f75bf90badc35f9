"""Which part of a stored RGB clip fine-tuning sees: the test views (temporal x spatial, averaged at test time, as
SMILE / VideoMAE test) and the random temporal window of training.

A packed clip stores T_s frames of S_s x S_s pixels; the model takes T frames of S x S. Where the dataset stores
more (T_s > T or S_s > S), the views read it: temporal views start at evenly spaced frames 0 .. T_s - T, spatial
views are S x S crops at evenly spaced positions along the frame's longer side (along x when square), centred on
the other, SMILE's ``int(k * (L - l) / (n - 1))`` positions; one view is the centred one. Where the stored clip is
exactly the model's input (the plain layout), every view is the same and it is evaluated once.
"""

from __future__ import annotations

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


def evaluation_views(stored_shape: tuple[int, ...], num_frames: int, size: int, temporal: int,
               spatial: int) -> list[tuple[int, int, int]]:
    """(t0, y0, x0) of every distinct view of clips stored as (..., T_s, H_s, W_s, 3)."""
    t_s, h_s, w_s = stored_shape[-4:-1]
    times = view_starts(t_s, num_frames, temporal)
    if h_s > w_s:      # along the longer side, centred on the other
        places = [(y, (w_s - size) // 2) for y in view_starts(h_s, size, spatial)]
    else:
        places = [((h_s - size) // 2, x) for x in view_starts(w_s, size, spatial)]
    return [(t, y, x) for t in times for y, x in places]


def crop_view(x: torch.Tensor, view: tuple[int, int, int], num_frames: int, size: int) -> torch.Tensor:
    """Stored clips (B, T_s, H_s, W_s, 3) -> the view (B, T, S, S, 3)."""
    t, y, xx = view
    return x[:, t:t + num_frames, y:y + size, xx:xx + size]


def random_window(x: torch.Tensor, num_frames: int, generator: torch.Generator) -> torch.Tensor:
    """Stored clips (B, T_s, ...) -> (B, T, ...): per clip ``num_frames`` consecutive frames from a random start
    (all of them when T_s = T)."""
    b, t_s = x.shape[:2]
    if t_s < num_frames:
        raise ValueError(f"clips of {t_s} frames are shorter than the model's {num_frames}")
    if t_s == num_frames:
        return x
    start = torch.randint(t_s - num_frames + 1, (b,), generator=generator)
    idx = (start[:, None] + torch.arange(num_frames)[None]).to(x.device)
    return x[torch.arange(b, device=x.device)[:, None], idx]
