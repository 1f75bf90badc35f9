"""Masks of MG-FM-RGB pretraining, as (B, N) bool over the token grid (t', h', w') row-major, True = masked.

Every clip hides the same number of tokens (the encoder drops them by reshaping), ``round(ratio * h' w') * t'``:
- tube masking (VideoMAE): the same random spatial positions hidden in every temporal slice;
- trajectory-aware masking (SMILE Stage I): tokens crossed by a pasted object's trajectory are hidden first,
  except a random ``visible_fraction`` of them; the rest of the budget is filled tube-wise (the same spatial
  ranking in every slice), so what stays visible is mostly static background plus a few object glimpses.
"""

from __future__ import annotations

import torch


def masked_count(grid: tuple[int, int, int], ratio: float) -> int:
    t, h, w = grid
    n = round(ratio * h * w)
    if not 0 < n < h * w:
        raise ValueError(f"mask ratio {ratio} hides {n} of {h * w} positions per slice; need at least one hidden "
                         "and one visible (config key rgb_pretrain.masking.ratio)")
    return n * t


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    mask = torch.zeros_like(scores, dtype=torch.bool)
    mask.scatter_(1, scores.topk(k, dim=1).indices, True)
    return mask


def tube_mask(batch: int, grid: tuple[int, int, int], ratio: float, generator: torch.Generator) -> torch.Tensor:
    t, h, w = grid
    spatial = torch.rand(batch, h * w, generator=generator)
    return _top(spatial.repeat(1, t), masked_count(grid, ratio))


def trajectory_mask(trajectory: torch.Tensor, ratio: float, visible_fraction: float, generator: torch.Generator,
                    rows: slice | None = None, global_batch: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``trajectory`` (B, t', h', w') bool -> (mask (B, N), which trajectory tokens were left visible (B, N)).

    Under DDP, ``global_batch`` and this process's ``rows`` make the random draws those of the whole batch, so N
    processes mask their clips as one process would."""
    b, t, h, w = trajectory.shape
    traj = trajectory.reshape(b, -1)
    n = global_batch or b
    rows = rows if rows is not None else slice(None)
    spatial = torch.rand(n, h * w, generator=generator)[rows].repeat(1, t)     # tube order in [0, 1)
    keep = traj & (torch.rand(n, t * h * w, generator=generator)[rows] < visible_fraction)
    scores = spatial + 2.0 * (traj & ~keep) - 2.0 * keep
    mask = _top(scores, masked_count((t, h, w), ratio))
    return mask, keep & ~mask
