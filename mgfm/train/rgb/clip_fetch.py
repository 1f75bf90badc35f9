"""Fetch the paper's CLIP ViT-B/16 teacher: OpenAI's checkpoint (pinned URL + sha256) -> a safetensors file of the
image tower in ``CLIPVisionModel`` naming, which is all training ever reads.

OpenAI publishes TorchScript archives. They are opened once here with ``torch.jit.load`` (TorchScript's own
loader, which restores TorchScript modules and tensors only, not arbitrary Python objects), and the tensors are
written with safetensors; the .pt is removed afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from mgfm.common.atomic import atomic_path
from mgfm.models.rgb.teacher import openai_clip_to_hf
from mgfm.pose.fetch import fetch_file


def convert_openai_clip(checkpoint: str | os.PathLike, out: str | os.PathLike) -> Path:
    """OpenAI CLIP TorchScript archive -> ``out`` (safetensors, CLIPVisionModel keys)."""
    module = torch.jit.load(str(checkpoint), map_location="cpu")
    state = openai_clip_to_hf({k: v.float() for k, v in module.state_dict().items()})
    with atomic_path(out) as tmp:
        save_file(state, str(tmp), metadata={"source": Path(checkpoint).name})
    return Path(out)


def fetch_clip_teacher(url: str, sha256: str, out: str | os.PathLike) -> Path:
    if not url or not sha256:
        raise ValueError("config keys rgb_pretrain.teacher.url and rgb_pretrain.teacher.sha256 are both needed "
                         "to fetch the CLIP teacher")
    out = Path(out)
    raw = fetch_file(url, sha256, out.with_suffix(".pt"))
    try:
        return convert_openai_clip(raw, out)
    finally:
        raw.unlink(missing_ok=True)
