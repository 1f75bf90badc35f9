"""Dense Spatio-Temporal Encoder (DSTE) of MG-FM-Skele, after USDRL, for single- or multi-person 2-D clips.

Two token streams read the same clip: the temporal stream sees T tokens (one per frame, M*V*C values
each) and models motion dynamics; the spatial stream sees M*V tokens (one per joint, T*C values each) and
models body structure. Each stream: token MLP -> positional encoding (sinusoidal in time, learned over
joints) -> ``depth`` dense-shift layers -> LayerNorm -> max-pool over tokens. The clip feature is the
concatenation of both pooled vectors (2 * hidden; 2048 at paper size).

Dense-shift layer (our reading of USDRL's DSA, written from its description): one multi-head attention is
used twice, as plain attention (CA: queries, keys and values from the same tokens) and as dense-shift
attention (DSA: keys and values come from a learned "dense shift" of the sequence, a Linear map over the
sequence axis, one for keys and one for values, which leaves every ``gap``-th position unshifted so each
token keeps an anchor to its own content). The layer mixes them as ``alpha * CA + (1 - alpha) * DSA`` in a
pre-norm residual block followed by an MLP (``mlp_ratio``), with stochastic depth (DropPath).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class DSTEConfig:
    """Every size of the encoder; stored verbatim in the model card so ``load_encoder`` rebuilds it."""

    num_frames: int = 64
    num_joints: int = 63
    num_channels: int = 3
    num_persons: int = 1
    hidden: int = 1024
    depth: int = 2
    heads: int = 1
    gap: int = 4
    alpha: float = 0.5
    mlp_ratio: float = 2.0
    drop_path: float = 0.1

    def __post_init__(self) -> None:
        for key in ("num_frames", "num_joints", "num_channels", "num_persons", "hidden", "depth", "heads", "gap"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"DSTE: {key} must be >= 1, got {getattr(self, key)}")
        if self.hidden % self.heads:
            raise ValueError(f"DSTE: hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"DSTE: alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"DSTE: drop_path must be in [0, 1), got {self.drop_path}")

    @property
    def feature_dim(self) -> int:
        return 2 * self.hidden

    def to_dict(self) -> dict:
        return asdict(self)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole residual branch per sample during training (scaled to keep the mean)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class DenseShift(nn.Module):
    """A learned mixing of positions along the sequence axis; every ``gap``-th position passes through unchanged.

    Initialised to the identity plus small noise so training starts from plain attention and learns the shift.
    """

    def __init__(self, length: int, gap: int) -> None:
        super().__init__()
        self.mix = nn.Linear(length, length)
        with torch.no_grad():
            self.mix.weight.copy_(torch.eye(length) + 0.02 * torch.randn(length, length))
            self.mix.bias.zero_()
        keep = (torch.arange(length) % gap == 0).float()
        self.register_buffer("keep", keep.view(1, length, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        shifted = self.mix(x.transpose(1, 2)).transpose(1, 2)
        return self.keep * x + (1.0 - self.keep) * shifted


class DenseShiftLayer(nn.Module):
    """Pre-norm block: alpha * CA + (1 - alpha) * DSA (one shared attention), then an MLP; both with DropPath."""

    def __init__(self, length: int, dim: int, heads: int, gap: int, alpha: float, mlp_ratio: float,
                 drop_path: float) -> None:
        super().__init__()
        self.alpha = float(alpha)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.shift_k = DenseShift(length, gap)
        self.shift_v = DenseShift(length, gap)
        self.norm2 = nn.LayerNorm(dim)
        hidden = max(1, int(round(dim * mlp_ratio)))
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        mixed = 0.0
        if self.alpha > 0:
            mixed = self.alpha * self.attn(h, h, h, need_weights=False)[0]
        if self.alpha < 1:
            mixed = mixed + (1.0 - self.alpha) * self.attn(h, self.shift_k(h), self.shift_v(h), need_weights=False)[0]
        x = x + self.drop_path(mixed)
        return x + self.drop_path(self.mlp(self.norm2(x)))


def token_embedding(in_dim: int, hidden: int) -> nn.Sequential:
    """The 2-layer token MLP: Linear, LayerNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, hidden))


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine positional encoding (1, length, dim) of the temporal stream."""
    pos = torch.arange(length, dtype=torch.float64).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float64) * (-math.log(10000.0) / dim))
    pe = torch.zeros(length, dim, dtype=torch.float64)
    pe[:, 0::2] = torch.sin(pos * freq)
    pe[:, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe.float().unsqueeze(0)


class TokenStream(nn.Module):
    """One DSTE stream: embed tokens, add positions, run the dense-shift layers, max-pool to (B, hidden)."""

    def __init__(self, length: int, in_dim: int, cfg: DSTEConfig, learned_pe: bool) -> None:
        super().__init__()
        self.embed = token_embedding(in_dim, cfg.hidden)
        if learned_pe:
            self.pos = nn.Parameter(torch.zeros(1, length, cfg.hidden))
            nn.init.trunc_normal_(self.pos, std=0.02)
        else:
            self.register_buffer("pos", sinusoidal_encoding(length, cfg.hidden), persistent=False)
        rates = torch.linspace(0, cfg.drop_path, cfg.depth).tolist() if cfg.depth > 1 else [cfg.drop_path]
        self.layers = nn.ModuleList(
            DenseShiftLayer(length, cfg.hidden, cfg.heads, cfg.gap, cfg.alpha, cfg.mlp_ratio, rate) for rate in rates)
        self.norm = nn.LayerNorm(cfg.hidden)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens) + self.pos
        for layer in self.layers:
            x = layer(x)
        return self.norm(x).amax(dim=1)


class DSTE(nn.Module):
    """The dual-stream encoder; ``forward(x)`` maps clips (B, C, T, V) or (B, C, T, V, M) to features (B, 2*hidden)."""

    def __init__(self, **kwargs) -> None:
        super().__init__()
        self.cfg = cfg = DSTEConfig(**kwargs)
        mv = cfg.num_persons * cfg.num_joints
        self.temporal = TokenStream(cfg.num_frames, mv * cfg.num_channels, cfg, learned_pe=False)
        self.spatial = TokenStream(mv, cfg.num_frames * cfg.num_channels, cfg, learned_pe=True)

    @property
    def feature_dim(self) -> int:
        return self.cfg.feature_dim

    def _check(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        if x.ndim == 4:
            x = x.unsqueeze(-1)
        want = (cfg.num_channels, cfg.num_frames, cfg.num_joints, cfg.num_persons)
        if x.ndim != 5 or tuple(x.shape[1:]) != want:
            raise ValueError(f"DSTE expects clips (B, C, T, V[, M]) = (B, {want[0]}, {want[1]}, {want[2]}"
                             f"{', ' + str(want[3]) if want[3] > 1 else ''}), got {tuple(x.shape)}")
        return x

    def stream_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Pooled temporal and spatial features, each (B, hidden): the inputs of the grain projectors."""
        x = self._check(x)
        b, c, t, v, m = x.shape
        temporal_tokens = x.permute(0, 2, 4, 3, 1).reshape(b, t, m * v * c)  # frame t: all persons, joints, channels
        spatial_tokens = x.permute(0, 4, 3, 2, 1).reshape(b, m * v, t * c)   # joint (m, v): all frames, channels
        return self.temporal(temporal_tokens), self.spatial(spatial_tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zt, zs = self.stream_features(x)
        return torch.cat([zt, zs], dim=1)
