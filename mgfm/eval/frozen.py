"""Frozen-encoder guarantees: a weight digest that must not change while an encoder is used frozen, and a
spot check that cached features still match their encoder (a stale cache would silently skew every table)."""

from __future__ import annotations

import hashlib
import logging
from contextlib import contextmanager

import numpy as np
import torch

log = logging.getLogger(__name__)


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 over every parameter and buffer (name, dtype, shape, bytes)."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


@contextmanager
def frozen(module: torch.nn.Module, what: str = "encoder"):
    """Run the block with ``module`` in eval mode and no grad; raise if its weights changed meanwhile."""
    before = weights_digest(module)
    was_training = module.training
    module.eval()
    try:
        with torch.inference_mode():
            yield module
    finally:
        module.train(was_training)
    if weights_digest(module) != before:
        raise RuntimeError(f"{what}: weights changed while the encoder was meant to be frozen")


#: Spot-check tolerance (relative to the largest cached magnitude) by how the cached features were computed:
#: float32 throughout, or on a GPU with TF32 matmuls (10-bit mantissa inputs, ~1e-3 per product, compounding
#: over the encoder's layers). A stale table (another encoder or dataset) differs by a large fraction.
TOLERANCE = {"float32": 1e-3, "tf32": 2e-2}


def verify_cached_features(model_dir: str, dataset: str, features: str, n_clips: int = 8,
                           tolerance: float | None = None) -> float:
    """Re-encode ``n_clips`` evenly spaced clips of ``dataset`` with the frozen encoder (on the CPU, in float32)
    and compare them with the cached table ``features``; returns the largest relative difference, raises
    ValueError above ``tolerance`` (relative to the largest cached magnitude; default by the precision the table
    records, ``TOLERANCE``)."""
    from mgfm.core.feature_store import read_feature_info, read_features
    from mgfm.models.artifact import load_encoder
    from mgfm.train.encoder_inputs import open_clips, prepare_input

    encoder = load_encoder(model_dir)
    card = encoder.card
    clips = open_clips(dataset, card)
    meta, cached = read_features(features)
    if tolerance is None:
        tolerance = TOLERANCE.get(read_feature_info(features).get("precision", "float32"), TOLERANCE["tf32"])
    pos = {c: i for i, c in enumerate(meta["clip_id"])}
    rows = np.unique(np.linspace(0, len(clips) - 1, min(n_clips, len(clips))).round().astype(int))
    ids = clips.meta["clip_id"].to_numpy()[rows]
    missing = [c for c in ids if c not in pos]
    if missing:
        raise ValueError(f"{features}: clips {missing[:3]} of {dataset} are missing: re-extract the features")
    with frozen(encoder, f"{model_dir}"):
        b = clips[rows]
        fresh = encoder(prepare_input(b["x"], b["valid_len"], card)).float().numpy()
    ref = cached[[pos[c] for c in ids]]
    if fresh.shape != ref.shape:
        raise ValueError(f"{features}: feature dim {ref.shape[1]} but {model_dir} gives {fresh.shape[1]}: re-extract")
    rel = float(np.abs(fresh - ref).max() / max(float(np.abs(ref).max()), 1e-12))
    if rel > tolerance:
        raise ValueError(f"{features}: cached features differ from {model_dir}'s output by {rel:.2e} (relative) "
                         "on spot-checked clips: they are stale, re-extract them")
    log.info("%s: %d clips re-encoded, max relative difference %.1e, weights unchanged", features, len(rows), rel)
    return rel
