"""Encoder artifacts: ``encoder.safetensors`` (weights only) + ``card.json`` (everything needed to rebuild it).

Loading never unpickles: the card names the architecture and stores its model section (``arch``), the weights are
plain tensors in safetensors. A card's ``arch`` becomes the model's typed config through the same
``from_section`` the training stage used (``encoder_from_arch``). Evaluation stages only ever call ``load_encoder``.

A card is data from a models folder, possibly another person's: its sizes are checked against bounds
(``ARCH_BOUNDS``), the encoder is first built on PyTorch's meta device (shapes only, nothing allocated) and its
tensor shapes compared with the weights file's header (``mgfm.models.weights``); only a card whose encoder is
exactly what the file holds is built for real. A two-number edit of a card therefore fails in milliseconds,
naming the file, instead of allocating a model of the edited size.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from mgfm.common.atomic import atomic_path
from mgfm.models.dste import DSTE, DSTEConfig
from mgfm.models.weights import check_shapes, load_weights, meta_shapes, read_header

CARD_FORMAT = "mgfm-encoder/1"


def _dste(arch: dict) -> torch.nn.Module:
    return DSTE(DSTEConfig.from_section(arch))


def _videomae(arch: dict) -> torch.nn.Module:
    """The card's ``rgb_pretrain.model`` keys make the StudentConfig; ``pooling`` and ``drop_path`` (a fine-tuned
    encoder's) are the encoder's own arguments; a card from before ``layer_norm_eps`` was a key holds a model
    trained with transformers' default."""
    # imports transformers: only when an RGB encoder is built
    from mgfm.models.rgb.student import LEGACY_LAYER_NORM_EPS, RGBEncoder, StudentConfig

    model = {"layer_norm_eps": LEGACY_LAYER_NORM_EPS, **arch}
    extra = {k: model.pop(k) for k in ("pooling", "drop_path") if k in model}
    return RGBEncoder(StudentConfig.from_section(model), **extra)


#: architecture -> builder of its encoder from a card's ``arch``
ARCHITECTURES = {"dste": _dste, "videomae": _videomae}
#: card keys each architecture's consumers need besides architecture / arch / feature_dim
CARD_KEYS = {"dste": ("stream", "num_frames", "num_joints"), "videomae": ("stream", "num_frames", "image_size")}
WEIGHTS_NAME = "encoder.safetensors"
CARD_NAME = "card.json"
#: Allowed range of every size in a card's ``arch`` (inclusive; a float range for the fractional keys): wide
#: enough for any model of the paper's family, narrow enough that a card can never ask for an absurd model.
ARCH_BOUNDS = {
    "dste": {"num_frames": (1, 4096), "num_joints": (1, 1024), "num_channels": (1, 64), "num_persons": (1, 16),
             "hidden": (1, 8192), "depth": (1, 128), "heads": (1, 256), "gap": (1, 4096),
             "alpha": (0.0, 1.0), "mlp_ratio": (0.0, 64.0), "drop_path": (0.0, 1.0)},
    "videomae": {"num_frames": (1, 1024), "image_size": (1, 4096), "patch_size": (1, 1024),
                 "tubelet_size": (1, 64), "hidden": (1, 8192), "depth": (1, 128), "heads": (1, 256),
                 "mlp_ratio": (0.0, 64.0), "decoder_hidden": (1, 8192), "decoder_depth": (1, 128),
                 "decoder_heads": (1, 256), "layer_norm_eps": (0.0, 1.0), "drop_path": (0.0, 1.0)},
}
#: Keys of an ``arch`` that may be absent (the encoder's default then applies): cards written before
#: ``layer_norm_eps`` was a key, and ``pooling`` / ``drop_path``, which only a fine-tuned RGB encoder records.
ARCH_OPTIONAL = {"dste": frozenset(), "videomae": frozenset({"layer_norm_eps", "drop_path", "pooling"})}
#: Keys of an ``arch`` that take one of a few strings (mgfm.models.rgb.student.POOLINGS)
ARCH_CHOICES = {"dste": {}, "videomae": {"pooling": ("mean", "fc_norm")}}


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
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: unreadable card: {err}") from err
    if not isinstance(card, dict):
        raise ValueError(f"{path}: not a model card (a JSON object)")
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
    check_arch(card, path)
    return card


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_arch(card: dict, path: str | os.PathLike) -> None:
    """Every size of the card's ``arch`` is present (unless optional), of its type and inside ``ARCH_BOUNDS``, a
    choice key holds one of its choices; ``feature_dim`` and the sizes its consumers read (num_frames,
    num_joints, image_size) are positive integers."""
    architecture = card["architecture"]
    bounds, optional, choices = ARCH_BOUNDS[architecture], ARCH_OPTIONAL[architecture], ARCH_CHOICES[architecture]
    arch = card["arch"]
    if not isinstance(arch, dict):
        raise ValueError(f"{path}: card arch must be an object, got {type(arch).__name__}")
    known = set(bounds) | set(choices)
    unknown, missing = sorted(set(arch) - known), sorted(known - optional - set(arch))
    if unknown or missing:
        raise ValueError(f"{path}: card arch of a {architecture} encoder: unknown keys {unknown}, "
                         f"missing keys {missing}")
    for key, (lo, hi) in bounds.items():
        if key not in arch:
            continue
        value = arch[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        typed = _is_int(value) if isinstance(lo, int) else number
        if not typed or not lo <= value <= hi:
            kind = "an integer" if isinstance(lo, int) else "a number"
            raise ValueError(f"{path}: card arch.{key} = {value!r}: must be {kind} in [{lo}, {hi}]")
    for key, allowed in choices.items():
        if key in arch and arch[key] not in allowed:
            raise ValueError(f"{path}: card arch.{key} = {arch[key]!r}: must be one of {', '.join(allowed)}")
    for key in ("feature_dim", *(k for k in CARD_KEYS[architecture] if k != "stream")):
        if not _is_int(card[key]) or card[key] < 1:
            raise ValueError(f"{path}: card {key} = {card[key]!r}: must be a positive integer")


def encoder_from_arch(architecture: str, arch: dict) -> torch.nn.Module:
    """A freshly initialised encoder of a card's ``architecture`` and ``arch`` (its model section)."""
    if architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {architecture!r} (known: {sorted(ARCHITECTURES)})")
    return ARCHITECTURES[architecture](arch)


def _build(card: dict, path: Path, device: str | torch.device | None = None) -> torch.nn.Module:
    """The card's encoder, on ``device`` ("meta": shapes only, no memory); a card the architecture refuses is
    a ValueError naming it."""
    try:
        if device is None:
            return encoder_from_arch(card["architecture"], card["arch"])
        with torch.device(device):
            return encoder_from_arch(card["architecture"], card["arch"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path / CARD_NAME}: the card's arch does not make a {card['architecture']} encoder: "
                         f"{err}") from err


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
    header = read_header(weights)             # before anything is built: the file says what it holds
    shapes = _build(card, model_dir, "meta")  # what the card would build, without memory
    check_shapes(weights, header, meta_shapes(shapes), f"the encoder {model_dir / CARD_NAME} describes")
    if shapes.feature_dim != card["feature_dim"]:
        raise ValueError(f"{model_dir / CARD_NAME}: card feature_dim {card['feature_dim']} != encoder's "
                         f"{shapes.feature_dim}")
    encoder = _build(card, model_dir)
    state = load_weights(weights)
    try:
        encoder.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise ValueError(f"{weights}: weights do not match the card's architecture: {err}") from err
    encoder.card = card
    return encoder.to(device).eval()
