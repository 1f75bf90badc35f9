"""Stochastic depth (drop-path) for ``transformers``' VideoMAE layers, which have none of their own.

SMILE and VideoMAE fine-tune with drop-path 0.1: in training, each residual branch of layer i is dropped for a
whole sample with probability rate_i (rates linear from 0 to ``rate`` over the layers) and kept ones are scaled
by 1 / (1 - rate_i). A ``VideoMAELayer`` adds its two branches inside ``forward``; their outputs are those of
``layer.attention`` (attention + projection) and of ``layer.output.dense`` (the MLP's second linear; the dropout
after it has p = 0), so a forward hook on each applies drop-path to exactly the branch, before the residual add.
No module is replaced or renamed, so checkpoints load and save unchanged, and eval mode is the plain layer.
"""

from __future__ import annotations

import torch
from torch import nn


def drop_path(x: torch.Tensor, rate: float, training: bool) -> torch.Tensor:
    """Zero whole samples of ``x`` (B, ...) with probability ``rate``, scale the rest by 1 / (1 - rate)."""
    if rate <= 0 or not training:
        return x
    keep = 1.0 - rate
    mask = torch.empty((x.shape[0],) + (1,) * (x.ndim - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    return x * mask / keep


def layer_rates(rate: float, depth: int) -> list[float]:
    """Per-layer rates, linear from 0 to ``rate`` (timm's and SMILE's stochastic depth decay rule), computed on
    the CPU whatever the default device (an encoder is first built on the meta device to check its shapes)."""
    return [float(r) for r in torch.linspace(0, rate, depth, device="cpu")]


def _hook(rate: float):
    def apply(module: nn.Module, args, output):
        if isinstance(output, tuple):       # attention modules may return (output, weights)
            return (drop_path(output[0], rate, module.training), *output[1:])
        return drop_path(output, rate, module.training)

    return apply


def add_stochastic_depth(layers: nn.ModuleList, rate: float) -> list:
    """Drop-path on both residual branches of every ``VideoMAELayer`` in ``layers``; returns the hook handles."""
    if not 0 <= rate < 1:
        raise ValueError(f"drop_path must be in [0, 1), got {rate}")
    handles = []
    for layer, r in zip(layers, layer_rates(rate, len(layers))):
        if r <= 0:
            continue
        handles.append(layer.attention.register_forward_hook(_hook(r)))
        handles.append(layer.output.dense.register_forward_hook(_hook(r)))
    return handles
