"""Encoder artifacts: ``encoder.safetensors`` (weights only) + ``card.json`` (everything needed to rebuild it).

Loading never unpickles: the card names the architecture and its keyword arguments, the weights are plain
tensors in safetensors. Evaluation stages only ever call ``load_encoder``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from mgfm.common.atomic import atomic_path
from mgfm.models.dste import DSTE

CARD_FORMAT = "mgfm-encoder/1"


def _videomae(**arch) -> torch.nn.Module:
    from mgfm.models.rgb.student import RGBEncoder  # imports transformers: only when an RGB encoder is loaded

    return RGBEncoder(**arch)


ARCHITECTURES = {"dste": DSTE, "videomae": _videomae}
#: card keys each architecture's consumers need besides architecture / arch / feature_dim
CARD_KEYS = {"dste": ("stream", "num_frames", "num_joints"), "videomae": ("stream", "num_frames", "image_size")}
WEIGHTS_NAME = "encoder.safetensors"
CARD_NAME = "card.json"


def save_encoder(model_dir: str | os.PathLike, encoder: torch.nn.Module, card: dict) -> None:
    """Write the encoder's weights and its card atomically (weights first, so a card always has its weights)."""
    model_dir = Path(model_dir)
    arch = card.get("architecture")
    if arch not in ARCHITECTURES:
        raise ValueError(f"{model_dir}: card architecture {arch!r} is not one of {sorted(ARCHITECTURES)}")
    state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in encoder.state_dict().items()}
    with atomic_path(model_dir / WEIGHTS_NAME) as tmp:
        save_file(state, str(tmp), metadata={"format": CARD_FORMAT})
    with atomic_path(model_dir / CARD_NAME) as tmp:
        tmp.write_text(json.dumps({"format": CARD_FORMAT, **card}, indent=2, sort_keys=True) + "\n")


def read_card(model_dir: str | os.PathLike) -> dict:
    """The model card of an encoder folder, checked for the fields ``load_encoder`` needs."""
    path = Path(model_dir) / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model card (expected {CARD_NAME} beside {WEIGHTS_NAME})")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON: {err}") from err
    if card.get("format") != CARD_FORMAT:
        raise ValueError(f"{path}: card format {card.get('format')!r}, expected {CARD_FORMAT!r}")
    for key in ("architecture", "arch", "feature_dim"):
        if key not in card:
            raise ValueError(f"{path}: card lacks {key!r}")
    if card["architecture"] not in ARCHITECTURES:
        raise ValueError(f"{path}: unknown architecture {card['architecture']!r}")
    for key in CARD_KEYS[card["architecture"]]:
        if key not in card:
            raise ValueError(f"{path}: card lacks {key!r}")
    return card


def load_encoder(model_dir: str | os.PathLike, device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the encoder of ``model_dir`` from card.json + encoder.safetensors, in eval mode.

    ``encoder(x)`` maps clips (B, C, T, V), already converted to ``encoder.card['stream']`` and resampled to
    ``card['num_frames']`` frames, to features (B, card['feature_dim']). The card is attached as ``.card``.
    """
    model_dir = Path(model_dir)
    card = read_card(model_dir)
    weights = model_dir / WEIGHTS_NAME
    if not weights.is_file():
        raise FileNotFoundError(f"{weights}: encoder weights missing")
    encoder = ARCHITECTURES[card["architecture"]](**card["arch"])
    state = load_file(str(weights), device="cpu")
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match the card's architecture: {err}") from err
    if encoder.feature_dim != card["feature_dim"]:
        raise ValueError(f"{model_dir}: card feature_dim {card['feature_dim']} != encoder's {encoder.feature_dim}")
    encoder.card = card
    return encoder.to(device).eval()
