"""SMILE's distillation targets: the teacher on the first frame of every tubelet, normalised per channel."""

from __future__ import annotations

import torch


def normalise_targets(tokens: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, N, D) -> per clip and channel, (x - mean) / (std + eps) over the N tokens (unbiased std), as SMILE's
    engine_for_pretraining computes it."""
    mean = tokens.mean(dim=1, keepdim=True)
    var = tokens.var(dim=1, keepdim=True, unbiased=True)
    return (tokens - mean) / (var.sqrt() + eps)


@torch.no_grad()
def teacher_targets(teacher: torch.nn.Module, clips: torch.Tensor, tubelet: int, eps: float = 1e-6) -> torch.Tensor:
    """Clips (B, T, 3, H, W) in [0, 1] -> normalised targets (B, T/tubelet * h' * w', D) in the student's token
    order (t', h', w'): frames 0, tubelet, 2 tubelet, ... through the per-frame teacher."""
    b = clips.shape[0]
    frames = clips[:, ::tubelet]
    tokens = teacher(frames.reshape(-1, *frames.shape[2:]).float())
    return normalise_targets(tokens.reshape(b, -1, tokens.shape[-1]).float(), eps)
