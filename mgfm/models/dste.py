"""Dense Spatio-Temporal Encoder (DSTE) of MG-FM-Skele: USDRL's encoder (model/DSTE.py), with the token lengths
taken from the data instead of NTU's hard-coded 64 frames and 50 joints.

Two token streams read the same clip: the temporal stream sees T tokens (one per frame, M*V*C values each),
the spatial stream M*V tokens (one per joint, T*C values each). Each stream: token MLP (Linear, LayerNorm,
ReLU, Linear) -> ``depth`` DST layers, positions added before every layer (fixed sinusoid over frames, learned
over joints) -> max-pool over tokens. The clip feature is concat(temporal, spatial) = 2 * hidden.

A DST layer is ``alpha * CA(x) + (1 - alpha) * DSA(x)``; CA and DSA use ONE multi-head attention and are
otherwise separate (own LayerNorms and MLPs):
- DSA: dense shift along the token axis, ``F_h = W2 relu(W1 F) + F`` with W1, W2 Linear(L, L) over the token
  axis, every ``gap``-th token restored to its unshifted value; then two pre-norm blocks
  ``y = t + attn(norm1(t)); y + mlp(norm2(y))``, one on F_h and one on x, sharing norms, attention and MLP,
  averaged.
- CA: ``t = x + relu(conv1(x))`` (pointwise Conv1d over channels), ``y = x + attn(norm1(t))``, and CA returns
  ``mlp(norm2(y))``: no residual around that MLP (as in the reference).
DropPath (``drop_path``, the same rate everywhere) wraps every attention and MLP output. Linear weights are
trunc-normal(0.02) with zero biases, LayerNorms 1 / 0 (``init_weights``). ``mgfm.models.usdrl`` maps a USDRL
state dict onto these module names; tests/test_usdrl_parity.py checks the outputs number for number.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from mgfm.config.sections import section_values

#: keys of ``pretrain.model`` that size the grain projectors (``mgfm.models.projectors.ProjectorConfig``), not the
#: encoder
PROJECTOR_KEYS = ("projector_dims", "instance_projector_dims")


@dataclass(frozen=True)
class DSTEConfig:
    """Every size of the encoder; built from the resolved ``pretrain.model`` section (the schema holds the
    defaults) and stored verbatim in the model card so ``load_encoder`` rebuilds it."""

    num_frames: int
    num_joints: int
    num_channels: int
    num_persons: int
    hidden: int
    depth: int
    heads: int
    gap: int
    alpha: float
    mlp_ratio: float
    drop_path: float

    def __post_init__(self) -> None:
        for key in ("num_frames", "num_joints", "num_channels", "num_persons", "hidden", "depth", "heads", "gap"):
            if int(getattr(self, key)) < 1:
                raise ValueError(f"pretrain.model.{key} must be >= 1, got {getattr(self, key)}")
        if self.hidden % self.heads:
            raise ValueError(f"pretrain.model.hidden ({self.hidden}) must be divisible by heads ({self.heads})")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"pretrain.model.alpha must be in [0, 1], got {self.alpha}")
        if not 0.0 <= self.drop_path < 1.0:
            raise ValueError(f"pretrain.model.drop_path must be in [0, 1), got {self.drop_path}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"pretrain.model.mlp_ratio must be > 0, got {self.mlp_ratio}")

    @classmethod
    def from_section(cls, model: dict) -> DSTEConfig:
        """The encoder keys of a resolved ``pretrain.model`` dict, or of a model card's ``arch`` (projector keys
        are left to ``ProjectorConfig``); a missing or unknown key is an error naming it, since defaults live only
        in the schema."""
        return cls(**section_values(cls, model, "pretrain.model", ignored=PROJECTOR_KEYS))

    @property
    def feature_dim(self) -> int:
        return 2 * self.hidden

    def to_dict(self) -> dict:
        return asdict(self)


class DropPath(nn.Module):
    """Stochastic depth: drop a whole branch per sample during training (scaled to keep the mean)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class MLP(nn.Module):
    """fc1 -> GELU -> fc2 (the reference's MLP, dropout 0)."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


def attend(attn: nn.MultiheadAttention, h: torch.Tensor) -> torch.Tensor:
    """Self-attention output of normalised tokens h (B, L, D)."""
    return attn(h, h, h, need_weights=False)[0]


class DenseShiftAttention(nn.Module):
    """DSA: dense shift over the token axis, then the shifted and the original tokens through the same
    pre-norm attention + MLP block, averaged. ``prepare`` and ``finish`` split the work around the shared
    attention so the layer runs CA's and both DSA attentions as one batched call."""

    def __init__(self, length: int, dim: int, gap: int, mlp_hidden: int, drop_path: float) -> None:
        super().__init__()
        self.wt1 = nn.Linear(length, length)
        self.wt2 = nn.Linear(length, length)
        self.act = nn.ReLU()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_hidden)
        self.drop = DropPath(drop_path)
        keep = torch.arange(length) % gap == 0          # positions 0, gap, 2*gap, ... keep their own content
        self.register_buffer("unshifted", keep.view(1, length, 1), persistent=False)

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """F_h = wt2(relu(wt1(F))) + F over the token axis, every gap-th token left as it was; (B, L, D).

        wt(F) on the (B, D, L) transpose equals W @ x + b[:, None] on (B, L, D): no transposed copies.
        """
        h = self.act(torch.matmul(self.wt1.weight, x) + self.wt1.bias[:, None])
        shifted = torch.matmul(self.wt2.weight, h) + self.wt2.bias[:, None] + x
        return torch.where(self.unshifted, x, shifted)

    def prepare(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Block inputs (shifted, original) stacked on the batch axis, and their normalised form."""
        t = torch.cat([self.shift(x), x], dim=0)
        return t, self.norm1(t)

    def finish(self, t: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        y = self.drop(attended) + t
        y = y + self.drop(self.mlp(self.norm2(y)))
        shifted, original = y.chunk(2, dim=0)
        return (shifted + original) * 0.5


class ConvAttention(nn.Module):
    """CA: pointwise Conv1d + ReLU residual, attention with a residual to x, then MLP(norm2(.)) without one."""

    def __init__(self, dim: int, mlp_hidden: int, drop_path: float) -> None:
        super().__init__()
        self.conv1 = nn.Conv1d(dim, dim, kernel_size=1)
        self.act = nn.ReLU()
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, mlp_hidden)
        self.drop = DropPath(drop_path)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        # the pointwise Conv1d over (B, D, L) is a Linear over channels on (B, L, D)
        conv = nn.functional.linear(x, self.conv1.weight.squeeze(-1), self.conv1.bias)
        return self.norm1(x + self.act(conv))

    def finish(self, x: torch.Tensor, attended: torch.Tensor) -> torch.Tensor:
        return self.drop(self.mlp(self.norm2(self.drop(attended) + x)))


class DSTLayer(nn.Module):
    """alpha * CA(x) + (1 - alpha) * DSA(x); CA and DSA share ``attn`` (registered once, here)."""

    def __init__(self, length: int, cfg: DSTEConfig) -> None:
        super().__init__()
        mlp_hidden = max(1, int(round(cfg.hidden * cfg.mlp_ratio)))
        self.alpha = float(cfg.alpha)
        self.attn = nn.MultiheadAttention(cfg.hidden, cfg.heads, dropout=0.0, batch_first=True)
        self.ca = ConvAttention(cfg.hidden, mlp_hidden, cfg.drop_path)
        self.dsa = DenseShiftAttention(length, cfg.hidden, cfg.gap, mlp_hidden, cfg.drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h_ca = self.ca.prepare(x)
        t_dsa, h_dsa = self.dsa.prepare(x)
        attended = attend(self.attn, torch.cat([h_ca, h_dsa], dim=0))          # one call for all three blocks
        ca = self.ca.finish(x, attended[:b])
        dsa = self.dsa.finish(t_dsa, attended[b:])
        return self.alpha * ca + (1.0 - self.alpha) * dsa


def token_embedding(in_dim: int, hidden: int) -> nn.Sequential:
    """The 2-layer token MLP: Linear, LayerNorm, ReLU, Linear."""
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.LayerNorm(hidden), nn.ReLU(inplace=True),
                         nn.Linear(hidden, hidden))


def sinusoidal_encoding(length: int, dim: int) -> torch.Tensor:
    """The fixed sine/cosine positional encoding (1, length, dim), computed in float32 exactly as the reference."""
    pos = torch.arange(length).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    pe = torch.zeros(1, length, dim)
    pe[0, :, 0::2] = torch.sin(pos * freq)
    pe[0, :, 1::2] = torch.cos(pos * freq)[:, : dim // 2]
    return pe


class TokenStream(nn.Module):
    """One DSTE stream: embed tokens, then for every layer add positions and apply it; tokens (B, L, hidden)."""

    def __init__(self, length: int, in_dim: int, cfg: DSTEConfig, learned_pe: bool) -> None:
        super().__init__()
        self.embed = token_embedding(in_dim, cfg.hidden)
        if learned_pe:
            self.pos = nn.Parameter(torch.zeros(1, length, cfg.hidden))
            nn.init.trunc_normal_(self.pos, std=0.02)
        else:
            self.register_buffer("pos", sinusoidal_encoding(length, cfg.hidden), persistent=False)
        self.layers = nn.ModuleList(DSTLayer(length, cfg) for _ in range(cfg.depth))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)
        for layer in self.layers:
            x = layer(x + self.pos)
        return x


def init_weights(module: nn.Module) -> None:
    """The reference's init: Linear trunc-normal(0.02) and zero bias, LayerNorm weight 1 and bias 0."""
    if isinstance(module, nn.Linear):
        nn.init.trunc_normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


class DSTE(nn.Module):
    """The dual-stream encoder; ``forward(x)`` maps clips (B, C, T, V) or (B, C, T, V, M) to features (B, 2*hidden).

    Built from a ``DSTEConfig`` only: whoever builds the model builds the config once, from the resolved
    ``pretrain.model`` section or a model card's ``arch`` (``DSTEConfig.from_section``); the model never reads
    or resolves config itself.
    """

    def __init__(self, cfg: DSTEConfig) -> None:
        super().__init__()
        if not isinstance(cfg, DSTEConfig):
            raise TypeError(f"DSTE takes a DSTEConfig (DSTEConfig.from_section of the resolved pretrain.model "
                            f"section), got {type(cfg).__name__}")
        self.cfg = cfg
        mv = cfg.num_persons * cfg.num_joints
        self.temporal = TokenStream(cfg.num_frames, mv * cfg.num_channels, cfg, learned_pe=False)
        self.spatial = TokenStream(mv, cfg.num_frames * cfg.num_channels, cfg, learned_pe=True)
        self.apply(init_weights)

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

    @staticmethod
    def stream_tokens(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Clips (B, C, T, V, M) -> temporal tokens (B, T, M*V*C) and spatial tokens (B, M*V, T*C)."""
        b, c, t, v, m = x.shape
        return (x.permute(0, 2, 4, 3, 1).reshape(b, t, m * v * c),   # frame t: all persons, joints, channels
                x.permute(0, 4, 3, 2, 1).reshape(b, m * v, t * c))   # joint (m, v): all frames, channels

    def tokens(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone tokens before pooling: temporal (B, T, hidden) and spatial (B, M*V, hidden)."""
        xt, xs = self.stream_tokens(self._check(x))
        return self.temporal(xt), self.spatial(xs)

    def stream_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Max-pooled temporal and spatial features, each (B, hidden): the inputs of the grain projectors."""
        yt, ys = self.tokens(x)
        return yt.amax(dim=1), ys.amax(dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        zt, zs = self.stream_features(x)
        return torch.cat([zt, zs], dim=1)
