"""Frozen-encoder feature extraction: one feature table per (encoder, packed dataset).

Each clip is prepared exactly as at pretraining time minus the randomness: all valid frames resampled to
the card's ``num_frames``, then the card's stream transform; the encoder runs in eval mode under
``torch.inference_mode`` in batches read straight from the memory-mapped dataset.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import torch

from mgfm.common.accel import pick_device
from mgfm.common.logs import Progress
from mgfm.core.feature_store import write_features
from mgfm.models.artifact import load_encoder
from mgfm.core.layout import to_stream
from mgfm.train.augment import resample_valid
from mgfm.train.skeleton_clips import PackedClips

log = logging.getLogger(__name__)


def prepare_clips(x: torch.Tensor, valid_len: torch.Tensor, card: dict) -> torch.Tensor:
    """Packed joint clips (B, C, T, V) -> the encoder's input: valid frames resampled, stream applied.

    Public so fine-tuning and any other consumer of ``load_encoder`` feed the encoder the same way.
    """
    return to_stream(resample_valid(x, valid_len, int(card["num_frames"])), card["stream"])


@torch.inference_mode()
def encode_dataset(encoder: torch.nn.Module, data: PackedClips, batch_size: int,
                   device: str | torch.device = "cpu", desc: str = "features") -> np.ndarray:
    """Features (N, D) float32 of every clip of ``data``."""
    encoder.eval()
    card = encoder.card
    n = len(data)
    out = np.empty((n, int(card["feature_dim"])), dtype=np.float32)
    bar = Progress(n, desc, unit="clip")
    for start in range(0, n, batch_size):
        batch = data[np.arange(start, min(start + batch_size, n))]
        x = prepare_clips(batch["x"].to(device), batch["valid_len"].to(device), card)
        out[start:start + len(x)] = encoder(x).float().cpu().numpy()
        bar.update(len(x))
    bar.close()
    return out


def matmul_precision(device: torch.device) -> str:
    """'tf32' when float32 matmuls on ``device`` may use TF32 tensor cores, else 'float32' (recorded with the
    features, so a spot check on another device knows how close to expect them)."""
    return "tf32" if device.type == "cuda" and torch.get_float32_matmul_precision() != "highest" else "float32"


def extract_features(model_dir: str | os.PathLike, dataset: str | os.PathLike, out: str | os.PathLike,
                     batch_size: int | None = None, device: str | None = None, params: dict | None = None) -> Path:
    """Write ``out`` (mgfm.core.feature_store format) with the frozen features of every clip of ``dataset``.

    ``batch_size`` overrides ``params`` (the pretrain section's ``features`` block, resolved by mgfm.config)."""
    dev = pick_device(device)  # the GPU when the job has one (TF32 for its float32 matmuls)
    encoder = load_encoder(model_dir, device=dev)
    card = encoder.card
    rgb = card.get("modality") == "rgb"
    if batch_size is None:
        from mgfm.config.steps import resolve_step

        step = "extract_rgb_features" if rgb else "extract_features"
        batch_size = int(resolve_step(step, params)["features"]["batch_size"])
    if batch_size < 1:
        raise ValueError(f"features batch_size must be >= 1, got {batch_size}")
    name = Path(dataset).name
    if rgb:
        from mgfm.train.rgb.clips import PackedRGBClips
        from mgfm.train.rgb.features import encode_rgb_dataset

        data = PackedRGBClips(dataset, int(card["num_frames"]), int(card["image_size"]))
        feats = encode_rgb_dataset(encoder, data, batch_size, dev, desc=f"features rgb/{name}")
    else:
        data = PackedClips(dataset, num_joints=int(card["num_joints"]), num_channels=card.get("num_channels"))
        feats = encode_dataset(encoder, data, batch_size, dev, desc=f"features {card['stream']}/{name}")
    if not np.isfinite(feats).all():
        bad = int(np.flatnonzero(~np.isfinite(feats).all(axis=1))[0])
        clip = data.meta["clip_id"].iloc[bad]
        raise RuntimeError(f"{dataset}: non-finite feature for meta row {bad} (clip_id {clip})")
    meta = data.meta
    info = {"card": card, "dataset": name, "dataset_path": str(dataset), "model_dir": str(model_dir),
            "device": dev.type, "precision": matmul_precision(dev)}
    write_features(out, meta, feats, info)
    log.info("features: wrote %s (%d clips x %d)", out, *feats.shape)
    return Path(out)
