"""Multi-grained feature decorrelation loss of USDRL, as used by MG-FM-Skele (paper Sec. 4.3.1).

For each grain g (temporal, spatial, instance) with K views z_0..z_{K-1} of shape (B, D) (K = 4 in the
paper; the last view is the anchor):
    sim   = sum_{k<K-1} MSE(z_k, z_{K-1}) + sum_{k<K-1} MSE(z_k, c),   c = mean(z_0 .. z_{K-2})
    vac   = sum_k [ std_weight * mean_d relu(1 - sqrt(var_d(z_k) + var_eps)) + sum_{i!=j} cov(z_k)_ij^2 / D ]
            (VICReg variance and covariance terms; var and cov unbiased over the batch, cov on centred z)
    xcorr = sum over view pairs (a < b) of Barlow Twins on batch-standardised z:
            sum_i (1 - C_ii)^2 + barlow_lambda * sum_{i!=j} C_ij^2,   C = z_a^T z_b / B,
            standardised as (z - mean) / std with the unbiased std and no epsilon (torch.std, as USDRL)
Each term combines grains as instance_weight * term_instance + temporal_weight * term_temporal +
spatial_weight * term_spatial (1, 0.5, 0.5), and total = sim_weight * sim + vac_weight * vac +
xcorr_weight * xcorr (5, 1, 1e-3). Computed in float32 at least (under autocast the inputs are upcast).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import combinations

import torch
import torch.nn.functional as F

from mgfm.config.sections import section_values

GRAINS = ("temporal", "spatial", "instance")


@dataclass(frozen=True)
class DecorrelationWeights:
    """Every weight and constant of the loss, from the resolved ``pretrain.loss`` section (the schema holds the
    reference values as defaults)."""

    sim_weight: float
    vac_weight: float
    xcorr_weight: float
    instance_weight: float
    temporal_weight: float
    spatial_weight: float
    std_weight: float
    var_eps: float
    barlow_lambda: float

    @classmethod
    def from_section(cls, loss: dict) -> DecorrelationWeights:
        """Every key of a resolved ``pretrain.loss`` dict; a missing or unknown key is an error naming it."""
        return cls(**{n: float(v) for n, v in section_values(cls, loss, "pretrain.loss").items()})

    def to_dict(self) -> dict:
        return asdict(self)


def _check_views(z: torch.Tensor, grain: str) -> None:
    if z.ndim != 3:
        raise ValueError(f"decorrelation loss: grain {grain!r} needs views shaped (K, B, D), got {tuple(z.shape)}")
    if z.shape[0] < 2:
        raise ValueError(f"decorrelation loss: grain {grain!r} needs at least 2 views, got {z.shape[0]}")
    if z.shape[1] < 2:
        raise ValueError(f"decorrelation loss: grain {grain!r} has a batch of {z.shape[1]}; variance and "
                         "covariance need at least 2 clips per batch")


def similarity_term(z: torch.Tensor) -> torch.Tensor:
    """Invariance: every non-anchor view to the anchor (last view) and to the mean of the non-anchor views."""
    anchor, others = z[-1], z[:-1]
    centre = others.mean(dim=0)
    return sum(F.mse_loss(v, anchor) + F.mse_loss(v, centre) for v in others)


def variance_covariance_term(z: torch.Tensor, std_weight: float, var_eps: float) -> torch.Tensor:
    """VICReg variance hinge plus squared off-diagonal covariance / D, summed over views."""
    k, b, d = z.shape
    centred = z - z.mean(dim=1, keepdim=True)
    var = centred.pow(2).sum(dim=1) / (b - 1)                                  # (K, D)
    std_loss = F.relu(1.0 - torch.sqrt(var + var_eps)).mean(dim=1)            # (K,)
    cov = torch.einsum("kbi,kbj->kij", centred, centred) / (b - 1)            # (K, D, D)
    off = cov.pow(2).sum(dim=(1, 2)) - torch.diagonal(cov, dim1=1, dim2=2).pow(2).sum(dim=1)
    return (std_weight * std_loss + off / d).sum()


def cross_correlation_term(z: torch.Tensor, barlow_lambda: float) -> torch.Tensor:
    """Barlow Twins on every pair of views, features standardised over the batch with the unbiased std (USDRL)."""
    k, b, d = z.shape
    zn = (z - z.mean(dim=1, keepdim=True)) / z.std(dim=1, keepdim=True)
    total = z.new_zeros(())
    for a, c in combinations(range(k), 2):
        corr = zn[a].T @ zn[c] / b
        diag = torch.diagonal(corr)
        total = total + (1.0 - diag).pow(2).sum() + barlow_lambda * (corr.pow(2).sum() - diag.pow(2).sum())
    return total


def multi_grained_decorrelation_loss(
    views: dict[str, torch.Tensor], w: DecorrelationWeights
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Total loss and its detached parts (sim, vac, xcorr and each per grain) from {grain: (K, B, D)} embeddings."""
    missing = [g for g in GRAINS if g not in views]
    if missing:
        raise ValueError(f"decorrelation loss: missing grains {missing}; got {sorted(views)}")
    grain_weight = {"instance": w.instance_weight, "temporal": w.temporal_weight, "spatial": w.spatial_weight}
    terms: dict[str, torch.Tensor] = {}
    combined = {"sim": 0.0, "vac": 0.0, "xcorr": 0.0}
    for grain in GRAINS:
        z = views[grain]
        _check_views(z, grain)
        z = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
        with torch.autocast(device_type=z.device.type, enabled=False):  # covariances need full precision
            parts = {
                "sim": similarity_term(z),
                "vac": variance_covariance_term(z, w.std_weight, w.var_eps),
                "xcorr": cross_correlation_term(z, w.barlow_lambda),
            }
        for name, value in parts.items():
            combined[name] = combined[name] + grain_weight[grain] * value
            terms[f"{name}_{grain}"] = value.detach()
    total = w.sim_weight * combined["sim"] + w.vac_weight * combined["vac"] + w.xcorr_weight * combined["xcorr"]
    terms.update({name: value.detach() for name, value in combined.items()})
    return total, terms
