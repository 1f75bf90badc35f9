"""Frozen MG-FM-RGB features: every clip of a packed RGB dataset through the encoder, batch by batch from the
memmap, in eval mode under ``torch.inference_mode`` (the clip as stored: no masking, no augmentation)."""

from __future__ import annotations

import numpy as np
import torch

from mgfm.common.logs import Progress
from mgfm.models.rgb.student import normalise_clips
from mgfm.train.rgb.clips import PackedRGBClips, to_unit


def prepare_rgb(x: torch.Tensor) -> torch.Tensor:
    """uint8 clips (B, T, S, S, 3) -> the encoder's input (B, T, 3, S, S), ImageNet-normalised. Public so
    fine-tuning feeds the encoder exactly as feature extraction does."""
    return normalise_clips(to_unit(x))


@torch.inference_mode()
def encode_rgb_dataset(encoder: torch.nn.Module, data: PackedRGBClips, batch_size: int,
                       device: str | torch.device = "cpu", desc: str = "features rgb") -> np.ndarray:
    """Features (N, D) float32 of every clip of ``data``."""
    encoder.eval()
    n = len(data)
    out = np.empty((n, int(encoder.card["feature_dim"])), dtype=np.float32)
    bar = Progress(n, desc, unit="clip")
    for start in range(0, n, batch_size):
        x = data[np.arange(start, min(start + batch_size, n))]["x"].to(device)
        out[start:start + len(x)] = encoder(prepare_rgb(x)).float().cpu().numpy()
        bar.update(len(x))
    bar.close()
    return out
