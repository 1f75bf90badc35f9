"""SMILE and VideoMAE checkpoints onto the MG-FM-RGB student, so pretraining and fine-tuning can start from them.

Three namings are read:

- SMILE's / VideoMAE's own code (fmthoker/SMILE, MCG-NJU/VideoMAE; their released ``.pth`` files): pretraining
  ``encoder.patch_embed.proj``, ``encoder.blocks.i.{norm1, attn.qkv, attn.q_bias, attn.v_bias, attn.proj, norm2,
  mlp.fc1, mlp.fc2}``, ``encoder.norm``, ``decoder.blocks.i.*``, ``decoder.norm``, ``decoder.head``,
  ``encoder_to_decoder``, ``mask_token``; fine-tuning the same block names without the ``encoder.`` prefix, plus
  ``fc_norm`` and ``head``. The fused ``qkv`` weight is split into transformers' query / key / value; a key bias,
  when a checkpoint has one, is dropped: it adds q . b_k, the same to every key of a query, which the softmax
  cancels. Layer scale (``gamma_1`` / ``gamma_2``) has no place in transformers' VideoMAE and is refused.
- ``transformers``' (``videomae.*``, ``decoder.decoder_layers.*``, ``fc_norm``, ``classifier``): already ours.

Files are read without unpickling code: safetensors, or ``torch.load(weights_only=True)`` (only
``argparse.Namespace`` is allowed besides tensors and containers: SMILE's checkpoints store their arguments).
The file's sha256 is checked against the pinned one first, and every tensor's shape against the model before any
weight is copied; a mismatch, a missing tensor or an unexpected one is an error that names the config key.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from torch import nn

from mgfm.common.digest import sha256_file

#: sub-dicts that hold the state dict in SMILE / VideoMAE / DeepSpeed checkpoints, tried in this order
STATE_KEYS = ("model", "module", "state_dict")

_BLOCK = {
    "norm1": "layernorm_before", "norm2": "layernorm_after",
    "attn.proj": "attention.output.dense", "mlp.fc1": "intermediate.dense", "mlp.fc2": "output.dense",
}
_QKV = ("attention.attention.query", "attention.attention.key", "attention.attention.value")


class CheckpointError(ValueError):
    """A reference checkpoint that cannot start this model; the message names the file and the config key."""


def _tensors_of(obj, path: Path, key: str) -> dict[str, torch.Tensor]:
    if isinstance(obj, Mapping):
        for name in STATE_KEYS:
            if isinstance(obj.get(name), Mapping):
                obj = obj[name]
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(f"{key}: {path} holds no state dict (looked for {', '.join(STATE_KEYS)} or a flat "
                              "name -> tensor mapping)")
    tensors = {str(k): v for k, v in obj.items() if torch.is_tensor(v)}
    if not tensors:
        raise CheckpointError(f"{key}: {path} holds no tensors")
    return tensors


def read_checkpoint(path: str | os.PathLike, sha256: str, key: str) -> dict[str, torch.Tensor]:
    """The state dict of a ``.safetensors`` or ``.pth`` / ``.pt`` / ``.bin`` file whose sha256 is ``sha256``.

    ``key`` is the config key that names the file (for the messages). Tensors come memory-mapped where the format
    allows, so nothing is allocated before ``check_shapes``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{key}: {path} does not exist")
    if not re.fullmatch(r"[0-9a-f]{64}", sha256 or ""):
        raise CheckpointError(f"{key}: a checkpoint must be pinned by its sha256 (64 hex digits) in "
                              f"{key.rsplit('.', 1)[0]}.sha256, got {sha256!r}")
    actual = sha256_file(path)
    if actual != sha256:
        raise CheckpointError(f"{key}: {path} has sha256 {actual}, the config pins {sha256} "
                              f"({key.rsplit('.', 1)[0]}.sha256); a different or corrupted file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path), device="cpu")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            try:
                obj = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as err:
                if "mmap" not in str(err):
                    raise
                obj = torch.load(path, map_location="cpu", weights_only=True)   # legacy (non-zip) format
    except Exception as err:  # noqa: BLE001 - pickle errors come in many types; all mean "not loadable safely"
        raise CheckpointError(f"{key}: {path} cannot be read as tensors without running pickled code "
                              f"(torch.load weights_only=True): {err}") from err
    return _tensors_of(obj, path, key)


def _block(rest: str, prefix: str, value: torch.Tensor, key: str, name: str) -> dict[str, torch.Tensor]:
    """One SMILE block tensor (``rest`` = what follows ``blocks.i.``) -> our names under ``prefix``."""
    for theirs, ours in _BLOCK.items():
        if rest.startswith(theirs + "."):
            return {f"{prefix}.{ours}.{rest[len(theirs) + 1:]}": value}
    if rest == "attn.qkv.weight":
        return {f"{prefix}.{q}.weight": w for q, w in zip(_QKV, value.chunk(3, dim=0))}
    if rest == "attn.qkv.bias":
        q, _, v = value.chunk(3, dim=0)     # the key bias is dropped: the softmax over keys cancels it
        return {f"{prefix}.{_QKV[0]}.bias": q, f"{prefix}.{_QKV[2]}.bias": v}
    if rest == "attn.q_bias":
        return {f"{prefix}.{_QKV[0]}.bias": value}
    if rest == "attn.v_bias":
        return {f"{prefix}.{_QKV[2]}.bias": value}
    if rest.startswith("gamma_"):
        raise CheckpointError(f"{key}: tensor {name} is layer scale (init_values > 0), which transformers' VideoMAE "
                              "does not have")
    raise CheckpointError(f"{key}: unexpected tensor {name} in a VideoMAE block")


def _encoder_names(name: str, value: torch.Tensor, key: str) -> dict[str, torch.Tensor]:
    """A SMILE encoder tensor without prefix (``patch_embed``, ``blocks.i``, ``norm``, ``fc_norm``, ``head``) ->
    our RGBEncoder names (``head`` is returned as ``head.*``, the classifier's)."""
    if name.startswith("patch_embed.proj."):
        return {"videomae.embeddings.patch_embeddings.projection." + name.split(".")[-1]: value}
    m = re.fullmatch(r"blocks\.(\d+)\.(.+)", name)
    if m:
        return _block(m.group(2), f"videomae.encoder.layer.{m.group(1)}", value, key, name)
    if name.startswith("norm."):
        return {"videomae.layernorm." + name[5:]: value}
    if name.startswith(("fc_norm.", "head.")):
        return {name: value}
    if name in ("pos_embed", "cls_token"):
        raise CheckpointError(f"{key}: tensor {name}: learned position embeddings / class tokens are not "
                              "VideoMAE's fixed sinusoid table that this student uses")
    raise CheckpointError(f"{key}: unexpected tensor {name}")


def _is_hf(state: Mapping) -> bool:
    return any(k.startswith(("videomae.", "encoder.videomae.")) for k in state)


def to_pretrain_state(state: Mapping[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    """A SMILE / VideoMAE pretraining state dict -> ``SmileModel``'s names (encoder + decoder)."""
    out: dict[str, torch.Tensor] = {}
    hf = _is_hf(state)
    for name, value in state.items():
        if hf:
            out[name if name.startswith(("encoder.", "decoder.", "encoder_to_decoder.", "mask_token"))
                else f"encoder.{name}"] = value
        elif name.startswith("encoder."):
            out.update({f"encoder.{k}": v for k, v in _encoder_names(name[8:], value, key).items()})
        elif name.startswith("decoder.blocks."):
            m = re.fullmatch(r"decoder\.blocks\.(\d+)\.(.+)", name)
            out.update(_block(m.group(2), f"decoder.decoder_layers.{m.group(1)}", value, key, name))
        elif name.startswith(("decoder.norm.", "decoder.head.", "encoder_to_decoder.")) or name == "mask_token":
            out[name] = value
        else:
            raise CheckpointError(f"{key}: unexpected tensor {name} for a pretraining model")
    return out


def to_classifier_state(state: Mapping[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    """A SMILE / VideoMAE state dict (fine-tuning or pretraining) -> our classifier's names: ``encoder.*`` (an
    RGBEncoder, ``fc_norm`` included when the file has one) and ``head.*`` when it has a head.

    A pretraining file's decoder, ``encoder_to_decoder`` and ``mask_token`` are left out (fine-tuning has no
    decoder), as SMILE's fine-tuning script leaves them out."""
    out: dict[str, torch.Tensor] = {}
    hf = _is_hf(state)
    for name, value in state.items():
        if name.startswith(("decoder.", "encoder_to_decoder.")) or name == "mask_token":
            continue
        if hf:
            bare = name.removeprefix("encoder.")
            bare = "head." + bare[len("classifier."):] if bare.startswith("classifier.") else bare
            converted = {bare: value}
        else:
            converted = _encoder_names(name.removeprefix("encoder.").removeprefix("backbone."), value, key)
        for k, v in converted.items():
            out[k if k.startswith("head.") else f"encoder.{k}"] = v
    return out


def check_shapes(model: nn.Module, state: Mapping[str, torch.Tensor], key: str, path: str | os.PathLike,
                 optional: tuple[str, ...] = (), ignored: tuple[str, ...] = ()) -> list[str]:
    """Every tensor of ``model`` present in ``state`` with its shape, before anything is copied; returns the names
    of ``model``'s tensors that ``state`` lacks and that may start fresh (prefixes in ``optional``).

    Tensors of ``state`` under a prefix in ``ignored`` are not this model's and are skipped."""
    own = model.state_dict()
    theirs = {k: v for k, v in state.items() if not k.startswith(ignored)}
    unexpected = sorted(set(theirs) - set(own))
    if unexpected:
        raise CheckpointError(f"{key}: {path} has tensors this model does not: {', '.join(unexpected[:6])}"
                              f"{' ...' if len(unexpected) > 6 else ''} (rgb_pretrain.model sizes or the wrong file?)")
    missing = sorted(set(own) - set(theirs))
    required = [k for k in missing if not k.startswith(optional)]
    if required:
        raise CheckpointError(f"{key}: {path} lacks tensors this model needs: {', '.join(required[:6])}"
                              f"{' ...' if len(required) > 6 else ''}")
    wrong = [f"{k} {tuple(theirs[k].shape)} vs {tuple(own[k].shape)}" for k in theirs
             if tuple(theirs[k].shape) != tuple(own[k].shape)]
    if wrong:
        raise CheckpointError(f"{key}: {path} has tensors of other shapes than the model's (file vs model): "
                              f"{'; '.join(wrong[:4])}{' ...' if len(wrong) > 4 else ''} (rgb_pretrain.model sizes?)")
    return missing


def load_into(model: nn.Module, state: Mapping[str, torch.Tensor], key: str, path: str | os.PathLike,
              optional: tuple[str, ...] = (), ignored: tuple[str, ...] = ()) -> list[str]:
    """``check_shapes``, then copy the tensors into ``model``; returns the tensors left as initialised."""
    fresh = check_shapes(model, state, key, path, optional, ignored)
    theirs = {k: v for k, v in state.items() if not k.startswith(ignored)}
    with torch.no_grad():
        own = model.state_dict()
        for name, value in theirs.items():
            own[name].copy_(value)
    return fresh


DECODER_PARTS = ("decoder.", "encoder_to_decoder.", "mask_token")


def start_pretraining_from(model: nn.Module, init: Mapping, key: str = "rgb_pretrain.init") -> dict:
    """Load ``init`` (``rgb_pretrain.init``: checkpoint, sha256, decoder) into a ``SmileModel``; returns what was
    loaded, for the model card."""
    path = init["checkpoint"]
    state = to_pretrain_state(read_checkpoint(path, init["sha256"], f"{key}.checkpoint"), f"{key}.checkpoint")
    skip = () if init["decoder"] else DECODER_PARTS
    try:
        fresh = load_into(model, state, f"{key}.checkpoint", path, optional=skip, ignored=skip)
    except CheckpointError as err:
        if init["decoder"] and "decoder" in str(err):
            raise CheckpointError(f"{err}; to load the encoder only, set {key}.decoder: false") from err
        raise
    return {"checkpoint": str(path), "sha256": init["sha256"], "decoder": bool(init["decoder"]),
            "fresh": fresh}


def start_finetuning_from(encoder: nn.Module, init: Mapping, key: str = "eval.finetune.rgb.init") -> dict:
    """Load ``init`` (checkpoint, sha256) into a fine-tuning ``RGBEncoder``: the encoder's tensors, and fc_norm when
    the file has one (else it starts as initialised); the file's head and a pretraining file's final norm are left
    out (the encoder pools with fc_norm). Returns what was loaded."""
    path = init["checkpoint"]
    state = to_classifier_state(read_checkpoint(path, init["sha256"], f"{key}.checkpoint"), f"{key}.checkpoint")
    state = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    ignored = ("videomae.layernorm.",) if getattr(encoder, "pooling", "mean") == "fc_norm" else ()
    fresh = load_into(encoder, state, f"{key}.checkpoint", path, optional=("fc_norm.",), ignored=ignored)
    return {"checkpoint": str(path), "sha256": init["sha256"], "fresh": fresh}
