"""The MG-FM-RGB student: a VideoMAE ViT from ``transformers`` (tubelet embedding, fixed sinusoid positions,
encoder over the visible tokens only) and a light decoder that predicts the teacher's features of the masked tokens.

``transformers``' ``VideoMAEModel`` / ``VideoMAEDecoder`` are used as they are (researchers' VideoMAE checkpoints
load into ``RGBEncoder.videomae`` unchanged); only the decoder's head is ours: it outputs the teacher's feature width
instead of pixels (SMILE's semantic reconstruction). Inputs are (B, T, 3, H, W) float clips normalised with
``IMAGENET_MEAN`` / ``IMAGENET_STD`` (``normalise_clips``). Every LayerNorm (encoder, decoder, fc_norm) takes
``layer_norm_eps`` (SMILE's 1e-6 by default; ``transformers`` would use 1e-12 and 1e-5 in the decoder's last norm).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from mgfm.config.sections import section_values

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class StudentConfig:
    """Student sizes: a resolved ``rgb_pretrain.model`` block (defaults live in the schema), or a model card's
    ``arch`` without its fine-tuning keys."""

    num_frames: int
    image_size: int
    patch_size: int
    tubelet_size: int
    hidden: int
    depth: int
    heads: int
    mlp_ratio: float
    decoder_hidden: int
    decoder_depth: int
    decoder_heads: int
    layer_norm_eps: float

    def __post_init__(self) -> None:
        if self.num_frames % self.tubelet_size or self.image_size % self.patch_size:
            raise ValueError(f"rgb_pretrain.model: num_frames {self.num_frames} must be a multiple of tubelet_size "
                             f"{self.tubelet_size} and image_size {self.image_size} of patch_size {self.patch_size}")
        if self.hidden % self.heads or self.decoder_hidden % self.decoder_heads:
            raise ValueError("rgb_pretrain.model: hidden and decoder_hidden must be divisible by their heads")
        if not self.layer_norm_eps > 0:
            raise ValueError(f"rgb_pretrain.model.layer_norm_eps must be > 0, got {self.layer_norm_eps}")

    @classmethod
    def from_section(cls, p: dict) -> StudentConfig:
        """From the resolved ``rgb_pretrain.model`` block; a missing or unknown key is an error naming it."""
        return cls(**section_values(cls, p, "rgb_pretrain.model"))

    @property
    def grid(self) -> tuple[int, int, int]:
        """Token grid (t', h', w')."""
        g = self.image_size // self.patch_size
        return self.num_frames // self.tubelet_size, g, g

    @property
    def num_tokens(self) -> int:
        t, h, w = self.grid
        return t * h * w

    def to_dict(self) -> dict:
        return asdict(self)

    def hf_config(self):
        from transformers import VideoMAEConfig

        return VideoMAEConfig(
            image_size=self.image_size, patch_size=self.patch_size, num_channels=3, num_frames=self.num_frames,
            tubelet_size=self.tubelet_size, hidden_size=self.hidden, num_hidden_layers=self.depth,
            num_attention_heads=self.heads, intermediate_size=int(self.hidden * self.mlp_ratio),
            hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, qkv_bias=True,
            layer_norm_eps=self.layer_norm_eps, use_mean_pooling=False, decoder_num_attention_heads=self.decoder_heads,
            decoder_hidden_size=self.decoder_hidden, decoder_num_hidden_layers=self.decoder_depth,
            decoder_intermediate_size=int(self.decoder_hidden * self.mlp_ratio), norm_pix_loss=False)


def normalise_clips(x: torch.Tensor) -> torch.Tensor:
    """uint8 or [0, 1] float clips (B, T, 3, H, W) -> ImageNet-normalised float32."""
    if x.dtype == torch.uint8:
        x = x.float() / 255.0
    mean = torch.tensor(IMAGENET_MEAN, device=x.device, dtype=x.dtype).view(1, 1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device, dtype=x.dtype).view(1, 1, 3, 1, 1)
    return (x - mean) / std


#: cards written before ``layer_norm_eps`` was a key hold models trained with transformers' default
LEGACY_LAYER_NORM_EPS = 1e-12
#: how ``encoder(x)`` pools its tokens: "mean" = mean of the final LayerNorm-ed tokens (pretraining, frozen
#: features); "fc_norm" = LayerNorm of the mean of the last layer's tokens, no final per-token norm (SMILE's and
#: VideoMAE's fine-tuning model, whose head reads it)
POOLINGS = ("mean", "fc_norm")


def keep_on_device(module: nn.Module, name: str) -> None:
    """Make the plain tensor attribute ``module.<name>`` a non-persistent buffer, so ``.to(device)`` moves it.

    ``transformers``' VideoMAE keeps its fixed sinusoid position table as a plain CPU tensor and copies it to the
    input's device on every forward: a host-to-device copy (and a sync) per step on a GPU. As a buffer it lives
    on the model's device, and the per-forward copy stays on the GPU. Not persistent, so state dicts and saved
    weights are unchanged."""
    table = getattr(module, name)
    if name in module._buffers or not torch.is_tensor(table):
        return
    delattr(module, name)
    module.register_buffer(name, table, persistent=False)


class RGBEncoder(nn.Module):
    """The VideoMAE encoder; ``encoder(x)`` -> (B, hidden) pooled as ``pooling`` says (``POOLINGS``).

    Built from a ``StudentConfig`` (whoever builds the model builds the config once; the model never resolves
    config) plus the fine-tuning choices ``pooling`` and ``drop_path``; ``arch`` is the model card's record of all
    three, from which ``mgfm.models.artifact`` rebuilds it. ``drop_path`` > 0 adds stochastic depth to the layers'
    residual branches (``stochastic_depth``) without renaming a parameter.
    """

    def __init__(self, cfg: StudentConfig, pooling: str = "mean", drop_path: float = 0.0) -> None:
        super().__init__()
        from transformers import VideoMAEModel

        if not isinstance(cfg, StudentConfig):
            raise TypeError(f"RGBEncoder takes a StudentConfig (StudentConfig.from_section of the resolved "
                            f"rgb_pretrain.model section), got {type(cfg).__name__}")
        if pooling not in POOLINGS:
            raise ValueError(f"RGB encoder pooling must be one of {POOLINGS}, got {pooling!r}")
        self.cfg = cfg
        self.videomae = VideoMAEModel(self.cfg.hf_config())
        self.feature_dim = self.cfg.hidden
        keep_on_device(self.videomae.embeddings, "position_embeddings")
        self.pooling, self.drop_path = pooling, float(drop_path)
        self.fc_norm = None
        if pooling == "fc_norm":
            self.videomae.layernorm = None        # VideoMAEModel then returns the last layer's tokens as they are
            self.fc_norm = nn.LayerNorm(self.cfg.hidden, eps=self.cfg.layer_norm_eps)
        if self.drop_path > 0:
            from mgfm.models.rgb.stochastic_depth import add_stochastic_depth

            add_stochastic_depth(self.videomae.encoder.layer, self.drop_path)

    @property
    def arch(self) -> dict:
        """The keyword arguments that rebuild this encoder (a card's ``arch``)."""
        return {**self.cfg.to_dict(), "pooling": self.pooling, "drop_path": self.drop_path}

    def tokens(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, T, 3, H, W) normalised clips -> tokens (B, L, hidden); with ``mask`` (B, N) bool (True = masked,
        the same count per clip) only the visible ones, in token order."""
        return self.videomae(pixel_values=x, bool_masked_pos=mask).last_hidden_state

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.tokens(x).mean(dim=1)
        return pooled if self.fc_norm is None else self.fc_norm(pooled)

    def layer_of(self, name: str) -> int:
        """Depth of parameter ``name`` for layer-wise lr decay: 0 embeddings, i + 1 encoder layer i, depth + 1
        the final LayerNorm (and anything after it)."""
        parts = name.split(".")
        if "embeddings" in parts:
            return 0
        if "layer" in parts:
            return int(parts[parts.index("layer") + 1]) + 1
        return self.cfg.depth + 1


class SmileModel(nn.Module):
    """Student encoder + decoder: ``model(x, mask)`` -> predictions (B, n_masked, target_dim) of the masked tokens,
    in token order (the order of ``targets[mask]``). ``decay_exempt`` chooses its optimiser groups."""

    #: parameters SMILE's optimiser never decays beyond biases and norms (its ``no_weight_decay()``); ours has no
    #: learned position table or class token, but a loaded checkpoint's would be exempt too
    NO_DECAY = ("mask_token", "pos_embed", "position_embeddings", "cls_token")

    def __init__(self, cfg: StudentConfig, target_dim: int, decay_exempt: bool = True) -> None:
        super().__init__()
        from transformers.models.videomae.modeling_videomae import VideoMAEDecoder, get_sinusoid_encoding_table

        self.cfg, self.target_dim, self.decay_exempt = cfg, target_dim, decay_exempt
        self.encoder = RGBEncoder(cfg)
        hf = cfg.hf_config()
        hf._attn_implementation = "sdpa"   # the decoder is built outside a PreTrainedModel, which would set it
        self.encoder_to_decoder = nn.Linear(cfg.hidden, cfg.decoder_hidden, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_hidden))
        self.register_buffer("decoder_pos", get_sinusoid_encoding_table(cfg.num_tokens, cfg.decoder_hidden)[0],
                             persistent=False)
        self.decoder = VideoMAEDecoder(hf)
        self.decoder.head = nn.Linear(cfg.decoder_hidden, target_dim)   # teacher features, not pixels
        self.decoder.norm = nn.LayerNorm(cfg.decoder_hidden, eps=cfg.layer_norm_eps)
        for m in [self.encoder_to_decoder, *self.decoder.modules()]:   # VideoMAE's init (xavier, zero bias)
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def decays(self, name: str, param: nn.Parameter) -> bool:
        """Whether weight decay applies to parameter ``name``: not to biases, norms (every 1-D tensor), the mask
        token or position tables (SMILE's groups); to everything with ``decay_exempt`` False."""
        if not self.decay_exempt:
            return True
        return not (param.ndim <= 1 or name.endswith(".bias") or name.split(".")[-1] in self.NO_DECAY)

    def optimizer_groups(self, weight_decay: float) -> list[dict]:
        """The optimiser's parameter groups (``mgfm.train.loop`` uses them): decayed and exempt."""
        named = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        decay = [p for n, p in named if self.decays(n, p)]
        exempt = [p for n, p in named if not self.decays(n, p)]
        return [g for g in ({"params": decay, "weight_decay": weight_decay}, {"params": exempt, "weight_decay": 0.0})
                if g["params"]]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        n_mask = int(mask[0].sum())
        if n_mask == 0 or bool((mask.sum(dim=1) != n_mask).any()):
            raise ValueError("mask must hide the same, non-zero number of tokens in every clip")
        vis = self.encoder_to_decoder(self.encoder.tokens(x, mask))
        pos = self.decoder_pos.to(vis.dtype).expand(b, -1, -1)
        pos_vis = pos[~mask].reshape(b, -1, pos.shape[-1])
        pos_mask = pos[mask].reshape(b, n_mask, pos.shape[-1])
        full = torch.cat([vis + pos_vis, self.mask_token.to(vis.dtype) + pos_mask], dim=1)
        return self.decoder(full, n_mask).logits
