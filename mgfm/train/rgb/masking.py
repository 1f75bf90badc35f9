"""Masks of MG-FM-RGB pretraining, as (B, N) bool over the token grid (t', h', w') row-major, True = masked.

Every clip hides the same number of tokens (the encoder drops them by reshaping): ``int(ratio * h' w') * t'``,
SMILE's integer count (156 of 196 per slice at ratio 0.8).
- Tube masking (VideoMAE, SMILE Stage II): the same random spatial positions hidden in every temporal slice.
- Trajectory-aware masking (SMILE Stage I, its ``tube+traj_mask`` generator): a tube mask; the trajectory is every
  token inside a pasted object's box over the tubelet's frames, grown by one patch to the right and below (SMILE's
  ``ceil(max / patch) + 1``); the trajectory is hidden except ``int(visible_fraction * its tokens)`` random ones;
  then the count is balanced: surplus hidden tokens are revealed at random among the tube's non-trajectory
  tokens (then among hidden trajectory tokens), a shortfall is hidden at random among the visible non-trajectory
  tokens (then among the revealed trajectory tokens). So what is left of the tube has random holes.
Random numbers are drawn for the whole global batch from the step's generator and each process takes its ``rows``,
so N processes mask their clips as one process would.
"""

from __future__ import annotations

import torch


def masked_per_slice(hw: int, ratio: float) -> int:
    """Tokens hidden per temporal slice: SMILE's ``int(ratio * h' w')``."""
    n = int(ratio * hw)
    if not 0 < n < hw:
        raise ValueError(f"mask ratio {ratio} hides {n} of {hw} positions per slice; need at least one hidden "
                         "and one visible (config key rgb_pretrain.masking.ratio)")
    return n


def masked_count(grid: tuple[int, int, int], ratio: float) -> int:
    t, h, w = grid
    return masked_per_slice(h * w, ratio) * t


def _tube(batch: int, grid: tuple[int, int, int], ratio: float, generator: torch.Generator) -> torch.Tensor:
    """(batch, t' h' w') tube masks: a random set of ``masked_per_slice`` positions, repeated over the slices."""
    t, h, w = grid
    chosen = torch.rand(batch, h * w, generator=generator).topk(masked_per_slice(h * w, ratio), dim=1).indices
    spatial = torch.zeros(batch, h * w, dtype=torch.bool).scatter_(1, chosen, True)
    return spatial.repeat(1, t)


def tube_mask(batch: int, grid: tuple[int, int, int], ratio: float, generator: torch.Generator) -> torch.Tensor:
    return _tube(batch, grid, ratio, generator)


def _pick(candidates: torch.Tensor, k: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Per row, ``k`` (or all, when fewer) of the ``candidates`` chosen uniformly at random: those with the ``k``
    smallest ``scores`` (float64 uniforms, so ties do not occur in practice)."""
    keyed = torch.where(candidates, scores, torch.full_like(scores, 2.0))
    kth = keyed.sort(dim=1).values.gather(1, (k.clamp(1, keyed.shape[1]) - 1)[:, None])
    return candidates & (keyed <= kth) & (k[:, None] > 0)


def box_tokens(boxes: torch.Tensor, grid: tuple[int, int, int], patch: int) -> torch.Tensor:
    """Object boxes (B, K, T, 4) x0, y0, x1, y1 in px -> trajectory tokens (B, t', h', w') bool: per tubelet slice,
    every token of the union of the object's boxes over the slice's frames, from ``floor(x0 / patch)`` to
    ``ceil(x1 / patch) + 1`` (exclusive) and likewise in y, clipped to the grid (SMILE's generator)."""
    b, k, frames, _ = boxes.shape
    t, h, w = grid
    per = boxes.reshape(b, k, t, frames // t, 4)
    lo, hi = per[..., :2].amin(dim=3), per[..., 2:].amax(dim=3)                 # (B, K, t', 2)
    start = torch.floor(lo / patch).clamp(min=0)
    stop = torch.minimum(torch.ceil(hi / patch) + 1, torch.tensor([w, h], dtype=hi.dtype))
    xs, ys = torch.arange(w, dtype=boxes.dtype), torch.arange(h, dtype=boxes.dtype)
    in_x = (xs >= start[..., :1]) & (xs < stop[..., :1])                      # (B, K, t', w')
    in_y = (ys >= start[..., 1:]) & (ys < stop[..., 1:])                      # (B, K, t', h')
    return (in_y[..., :, None] & in_x[..., None, :]).any(dim=1)


def trajectory_mask(trajectory: torch.Tensor, ratio: float, visible_fraction: float, generator: torch.Generator,
                    rows: slice | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Trajectory tokens of the whole global batch (G, t', h', w') bool -> (mask (B, N), the trajectory tokens left
    visible (B, N)) for this process's ``rows`` of it."""
    g, t, h, w = trajectory.shape
    traj = trajectory.reshape(g, -1)
    n = traj.shape[1]
    total = masked_count((t, h, w), ratio)
    tube = _tube(g, (t, h, w), ratio, generator)
    scores = torch.rand(3, g, n, generator=generator, dtype=torch.float64)
    # the trajectory hidden, except int(visible_fraction * its tokens) random ones
    shown = _pick(traj, (visible_fraction * traj.sum(dim=1).double()).long(), scores[0])
    mask = (tube | traj) & ~shown
    diff = mask.sum(dim=1) - total
    # too many hidden: reveal tube tokens off the trajectory first, then hidden trajectory tokens
    spare = tube & ~traj
    over = diff.clamp(min=0)
    reveal = _pick(spare, over, scores[1])
    reveal |= _pick(traj & mask, (over - spare.sum(dim=1)).clamp(min=0), scores[2])
    # too few hidden: hide visible tokens off the trajectory first, then revealed trajectory tokens
    free = ~tube & ~traj
    under = (-diff).clamp(min=0)
    hide = _pick(free, under, scores[1]) | _pick(shown, (under - free.sum(dim=1)).clamp(min=0), scores[2])
    mask = (mask & ~reveal) | hide
    if rows is not None:
        mask, traj = mask[rows], traj[rows]
    if bool((mask.sum(dim=1) != total).any()):
        raise AssertionError("trajectory mask: hidden-token count is off the budget")
    return mask, traj & ~mask
