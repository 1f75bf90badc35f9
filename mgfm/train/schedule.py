"""Learning-rate schedules: linear warm-up, then step decay (USDRL: x0.1 at epoch 351 of 451) or cosine.

The rate is a pure function of the global step, so resuming needs no scheduler state.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def learning_rate(step: int, steps_per_epoch: int, epochs: int, base_lr: float, schedule: str = "step",
                  warmup_epochs: float = 0.0, milestones: Sequence[int] = (), gamma: float = 0.1,
                  min_lr: float = 0.0) -> float:
    """The learning rate at optimiser step ``step`` (0-based)."""
    warmup = warmup_epochs * steps_per_epoch
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if schedule == "step":
        epoch = step // max(steps_per_epoch, 1)
        return base_lr * gamma ** sum(epoch >= m for m in milestones)
    if schedule == "cosine":
        total = max(epochs * steps_per_epoch - warmup, 1)
        progress = min(max(step - warmup, 0) / total, 1.0)
        return min_lr + 0.5 * (base_lr - min_lr) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown learning-rate schedule {schedule!r}; expected 'step' or 'cosine'")
