"""SMILE's distillation targets: the teacher on the first frame of every tubelet, normalised per channel.

On a GPU the frozen teacher runs under bf16 autocast (its forward is most of a Stage 1 step's FLOPs: in float32
it took several times the student's whole bf16 step); the per-clip, per-channel normalisation always runs in
float32, so the targets carry bf16's rounding of the teacher's tokens only (``tests/test_rgb_teacher_bf16.py``
bounds the difference to float32 targets).
"""

from __future__ import annotations

import torch


def normalise_targets(tokens: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """(B, N, D) -> per clip and channel, (x - mean) / (std + eps) over the N tokens (unbiased std), as SMILE's
    engine_for_pretraining computes it."""
    mean = tokens.mean(dim=1, keepdim=True)
    var = tokens.var(dim=1, keepdim=True, unbiased=True)
    return (tokens - mean) / (var.sqrt() + eps)


def teacher_dtype(device: torch.device) -> torch.dtype:
    """The teacher's compute dtype on ``device``: bf16 on a GPU that has it, float32 elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


@torch.no_grad()
def teacher_targets(teacher: torch.nn.Module, clips: torch.Tensor, tubelet: int, eps: float = 1e-6,
                    dtype: torch.dtype | None = None) -> torch.Tensor:
    """Clips (B, T, 3, H, W) in [0, 1] -> normalised float32 targets (B, T/tubelet * h' * w', D) in the student's
    token order (t', h', w'): frames 0, tubelet, 2 tubelet, ... through the per-frame teacher, computed in
    ``dtype`` (default ``teacher_dtype``: bf16 autocast on a GPU) and normalised in float32."""
    b = clips.shape[0]
    frames = clips[:, ::tubelet]
    dtype = dtype or teacher_dtype(clips.device)
    with torch.autocast(clips.device.type, dtype=dtype, enabled=dtype != torch.float32):
        tokens = teacher(frames.reshape(-1, *frames.shape[2:]).float())
    return normalise_targets(tokens.reshape(b, -1, tokens.shape[-1]).float(), eps)
