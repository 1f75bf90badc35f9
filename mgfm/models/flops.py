"""Analytic FLOPs of MG-FM-Skele pretraining, so a measured step time can be stated as a share of a device's peak.

Counted: every matrix product (2 FLOPs per multiply-add) of the encoder, projectors and loss; elementwise work,
norms and softmax are left out (they are bandwidth-bound and a few percent at paper size). Backward is taken
as twice the forward, the usual estimate for matrix products (one product for the input gradient, one for the
weight gradient). tests/test_models_flops.py checks the forward count against torch's FLOP counter.
"""

from __future__ import annotations

from collections.abc import Sequence

from mgfm.models.dste import DSTEConfig


def _stream_forward(length: int, in_dim: int, cfg: DSTEConfig) -> int:
    """Matrix-product FLOPs of one stream of one clip: token MLP + ``depth`` DST layers."""
    d, n = cfg.hidden, length
    mlp = max(1, int(round(d * cfg.mlp_ratio)))
    embed = 2 * n * (in_dim * d + d * d)
    attention = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * n * d   # in-proj, out-proj, QK^T and AV
    layer = (2 * n * d * d                     # CA's pointwise conv
             + 3 * attention                   # one shared attention over CA's, DSA's shifted and original tokens
             + 3 * 2 * n * 2 * d * mlp          # CA's MLP and DSA's MLP on two token sets
             + 2 * 2 * n * n * d)               # dense shift wt1, wt2 over the token axis
    return embed + cfg.depth * layer


def _projector(in_dim: int, dims: Sequence[int]) -> int:
    flops, prev = 0, in_dim
    for out in dims:
        flops += 2 * prev * out
        prev = out
    return flops


def encoder_forward_flops(cfg: DSTEConfig) -> int:
    """Forward FLOPs of the encoder for one clip (one view)."""
    mv = cfg.num_persons * cfg.num_joints
    return (_stream_forward(cfg.num_frames, mv * cfg.num_channels, cfg)
            + _stream_forward(mv, cfg.num_frames * cfg.num_channels, cfg))


def pretrain_flops_per_clip(cfg: DSTEConfig, projector_dims: Sequence[int], instance_projector_dims: Sequence[int],
                            num_views: int) -> dict[str, int]:
    """FLOPs per clip of one pretraining step: forward per view and the whole step (all views, forward + backward).

    The loss's covariance and cross-correlation products (D x D per view and per view pair, shared by the
    batch) are included per clip.
    """
    view = (encoder_forward_flops(cfg) + 2 * _projector(cfg.hidden, projector_dims)
            + _projector(2 * cfg.hidden, instance_projector_dims))
    dims = [projector_dims[-1], projector_dims[-1], instance_projector_dims[-1]]
    pairs = num_views * (num_views - 1) // 2
    loss = sum((num_views + pairs) * 2 * dim * dim for dim in dims)
    forward = num_views * view + loss
    return {"forward_per_view": view, "encoder_forward_per_view": encoder_forward_flops(cfg),
            "loss_forward": loss, "train_step": 3 * forward}
