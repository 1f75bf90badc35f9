"""Mixup and CutMix for clip batches (the VideoMAE / SMILE fine-tuning recipe), with label-smoothed soft targets.

One draw per batch from the step's generator: which of the two (probability 0.5 when both are on), lambda ~
Beta(alpha, alpha), a permutation of the batch. CutMix pastes one box, the same on every frame, and sets lambda
to the kept area. Targets: lambda smooth(y) + (1 - lambda) smooth(y[perm]), smooth(y) = (1 - eps) onehot + eps / K.
"""

from __future__ import annotations

import numpy as np
import torch


def smooth_onehot(y: torch.Tensor, k: int, eps: float) -> torch.Tensor:
    return torch.nn.functional.one_hot(y, k).float() * (1 - eps) + eps / k


def mix_batch(x: torch.Tensor, y: torch.Tensor, k: int, eps: float, mixup: float, cutmix: float,
              generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips (B, T, C, H, W) and labels (B,) -> (mixed clips, soft targets (B, K)). Both alphas 0: no mixing."""
    target = smooth_onehot(y, k, eps)
    if mixup <= 0 and cutmix <= 0:
        return x, target
    rng = np.random.default_rng(int(torch.randint(0, 2**31 - 1, (1,), generator=generator)))
    perm = torch.randperm(len(y), generator=generator).to(x.device)
    use_cutmix = cutmix > 0 and (mixup <= 0 or rng.random() < 0.5)
    lam = float(rng.beta(cutmix, cutmix) if use_cutmix else rng.beta(mixup, mixup))
    if use_cutmix:
        h, w = x.shape[-2:]
        cut = np.sqrt(1 - lam)
        ch, cw = int(h * cut), int(w * cut)
        cy, cx = int(rng.integers(h)), int(rng.integers(w))
        y0, y1 = max(cy - ch // 2, 0), min(cy + ch // 2, h)
        x0, x1 = max(cx - cw // 2, 0), min(cx + cw // 2, w)
        x = x.clone()
        x[..., y0:y1, x0:x1] = x[perm][..., y0:y1, x0:x1]
        lam = 1 - (y1 - y0) * (x1 - x0) / (h * w)
    else:
        x = lam * x + (1 - lam) * x[perm]
    return x, lam * target + (1 - lam) * target[perm]
