"""Grain projectors of MG-FM-Skele and the pretraining model that ties them to the encoder.

USDRL maps the pooled temporal and spatial features and the concatenated clip feature to three embedding
spaces ("grains") where the decorrelation loss is computed. Each projector is (Linear, BatchNorm, ReLU)
repeated, then a final Linear: 1024 -> 2048 -> 2048 -> 2048 for the temporal and spatial grains and
2048 -> 2048 -> 2048 -> 4096 for the instance grain at paper size. Linear layers start as the encoder's
(trunc-normal 0.02, zero bias), as in the reference.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

import torch
from torch import nn

from mgfm.config.sections import section_values
from mgfm.models.dste import DSTE, DSTEConfig, init_weights

GRAINS = ("temporal", "spatial", "instance")


@dataclass(frozen=True)
class ProjectorConfig:
    """Layer widths of the grain projectors: the projector keys of the resolved ``pretrain.model`` section (its
    encoder keys make the ``DSTEConfig``)."""

    projector_dims: tuple[int, ...]            # temporal and spatial grains
    instance_projector_dims: tuple[int, ...]   # instance grain

    @classmethod
    def from_section(cls, model: dict) -> ProjectorConfig:
        values = section_values(cls, model, "pretrain.model", ignored=[f.name for f in fields(DSTEConfig)])
        return cls(**{k: tuple(v) for k, v in values.items()})

    def to_dict(self) -> dict:
        """The widths as the config writes them (lists), for cards and fingerprints."""
        return {"projector_dims": list(self.projector_dims),
                "instance_projector_dims": list(self.instance_projector_dims)}


def projector(in_dim: int, dims: Sequence[int]) -> nn.Sequential:
    """(Linear, BatchNorm1d, ReLU) for every dim but the last, then a plain Linear to ``dims[-1]``."""
    dims = [int(d) for d in dims]
    if not dims or min(dims) < 1:
        raise ValueError(f"projector dims must be a non-empty list of positive sizes, got {dims}")
    layers: list[nn.Module] = []
    prev = in_dim
    for d in dims[:-1]:
        layers += [nn.Linear(prev, d), nn.BatchNorm1d(d), nn.ReLU(inplace=True)]
        prev = d
    layers.append(nn.Linear(prev, dims[-1]))
    return nn.Sequential(*layers)


class PretrainModel(nn.Module):
    """Encoder plus the three grain projectors; ``forward`` turns a batch of views into per-grain embeddings.

    ``gather_fn`` (none by default) is applied to the pooled features before the projectors: under
    DistributedDataParallel it all-gathers them with gradients, so BatchNorm and the loss see the whole
    global batch and a multi-process run computes exactly what one process would on the same batch.
    """

    def __init__(self, encoder: DSTE, projectors: ProjectorConfig) -> None:
        super().__init__()
        if not isinstance(projectors, ProjectorConfig):
            raise TypeError(f"PretrainModel takes a ProjectorConfig (ProjectorConfig.from_section of the resolved "
                            f"pretrain.model section), got {type(projectors).__name__}")
        self.encoder = encoder
        hidden = encoder.cfg.hidden
        self.temporal_projector = projector(hidden, projectors.projector_dims)
        self.spatial_projector = projector(hidden, projectors.projector_dims)
        self.instance_projector = projector(2 * hidden, projectors.instance_projector_dims)
        for head in (self.temporal_projector, self.spatial_projector, self.instance_projector):
            head.apply(init_weights)
        self.gather_fn: Callable[[torch.Tensor], torch.Tensor] | None = None

    def forward(self, views: torch.Tensor) -> dict[str, torch.Tensor]:
        """``views`` (K, B, C, T, V): K augmented views of B clips -> {grain: (K, B', D_grain)}, B' the global batch."""
        k, b = views.shape[:2]
        zt, zs = self.encoder.stream_features(views.reshape(k * b, *views.shape[2:]))
        zt, zs = zt.view(k, b, -1), zs.view(k, b, -1)
        if self.gather_fn is not None:
            zt, zs = self.gather_fn(zt), self.gather_fn(zs)
        # BatchNorm statistics are taken per view (each view is its own batch), as when views are projected one by one
        out = {
            "temporal": self._per_view(self.temporal_projector, zt),
            "spatial": self._per_view(self.spatial_projector, zs),
            "instance": self._per_view(self.instance_projector, torch.cat([zt, zs], dim=-1)),
        }
        return out

    @staticmethod
    def _per_view(head: nn.Module, z: torch.Tensor) -> torch.Tensor:
        return torch.stack([head(z[i]) for i in range(z.shape[0])])
