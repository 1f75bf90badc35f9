"""Synthetic packed RGB datasets for the RGB branch's tests: a person-like blob whose motion class is the label."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from mgfm.core.packed import write_packed


def synthetic_rgb(n: int, frames: int = 8, size: int = 64, classes: int = 4, seed: int = 0
                  ) -> tuple[np.ndarray, np.ndarray]:
    """uint8 clips (n, T, S, S, 3) of a bright disk on a textured background moving in one of ``classes``
    directions (the label), and the labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % classes
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle = 2 * np.pi * labels / classes
    start = rng.uniform(0.3, 0.7, (n, 2)) * size
    t = np.arange(frames, dtype=np.float32)
    cx = start[:, 0, None] + np.cos(angle)[:, None] * t * size / 40
    cy = start[:, 1, None] + np.sin(angle)[:, None] * t * size / 40
    d2 = (xx[None, None] - cx[..., None, None]) ** 2 + (yy[None, None] - cy[..., None, None]) ** 2
    blob = (d2 < (size / 8) ** 2).astype(np.float32)
    background = rng.uniform(0, 80, (n, 1, size, size, 3)).astype(np.float32)
    colour = rng.uniform(150, 255, (n, 1, 1, 1, 3)).astype(np.float32)
    clips = background * (1 - blob[..., None]) + colour * blob[..., None]
    return clips.clip(0, 255).astype(np.uint8), labels


def write_synthetic_rgb(path: str | os.PathLike, n: int, frames: int = 8, size: int = 64, classes: int = 4,
                        seed: int = 0, split: str = "train") -> pd.DataFrame:
    clips, labels = synthetic_rgb(n, frames, size, classes, seed)
    meta = pd.DataFrame({
        "clip_id": [f"c{seed}_{i}" for i in range(n)], "video_id": [f"v{i % 6}" for i in range(n)],
        "subject_id": [f"s{i % 6}" for i in range(n)], "split": split, "label": labels.astype(np.int64),
        "valid_len": np.full(n, frames, np.int64), "start_frame": np.zeros(n, np.int64),
        "end_frame": np.full(n, frames - 1, np.int64)})
    write_packed(path, clips, meta, {"modality": "rgb"})
    return meta


def add_rgb_branch(root: str | os.PathLike, model: dict | None = None, seed: int = 0) -> dict:
    """Beside ``write_synthetic_encoders``' skeleton datasets in ``root``: RGB datasets with the same clips (ids,
    subjects, labels) whose motion direction is the label, a tiny MG-FM-RGB encoder (random weights, real artifact
    format) at ``root/models/rgb/rgb`` and its features at ``root/features/rgb/rgb/{mg_train,mg_test}.parquet``."""
    from pathlib import Path

    import torch

    from mgfm.core.packed import open_packed
    from mgfm.eval.members import feature_table
    from mgfm.models.artifact import save_encoder
    from mgfm.models.rgb.student import RGBEncoder
    from tests.support.models import student_config
    from mgfm.train.features import extract_features

    root = Path(root)
    arch = {"num_frames": 8, "image_size": 64, "patch_size": 16, "tubelet_size": 2, "hidden": 32, "depth": 1,
            "heads": 2, "mlp_ratio": 2.0, "decoder_hidden": 16, "decoder_depth": 1, "decoder_heads": 2, **(model or {})}
    for i, name in enumerate(("mg_train", "mg_test")):
        _, meta = open_packed(root / "packs" / "skeleton" / name)
        labels = meta["label"].to_numpy()
        k = int(labels.max()) + 1
        clips, _ = synthetic_rgb(len(meta), arch["num_frames"], arch["image_size"], classes=1, seed=seed + i)
        moved, _ = synthetic_rgb(len(meta) * k, arch["num_frames"], arch["image_size"], classes=k, seed=seed + 10 + i)
        clips = moved[np.arange(len(meta)) * k + labels]            # clip i moves in direction labels[i]
        write_packed(root / "packs" / "rgb" / name, clips, meta.assign(valid_len=arch["num_frames"]),
                     {"modality": "rgb"})
    cfg = student_config(**arch)
    torch.manual_seed(seed)
    enc = RGBEncoder(cfg)
    card = {"architecture": "videomae", "modality": "rgb", "arch": cfg.to_dict(), "stream": "rgb", "stage": 2,
            "feature_dim": cfg.hidden, "num_frames": cfg.num_frames, "image_size": cfg.image_size}
    mdir = root / "models" / "rgb" / "rgb"
    save_encoder(mdir, enc, card)
    for name in ("mg_train", "mg_test"):
        extract_features(mdir, root / "packs" / "rgb" / name, feature_table(root / "features", "rgb", "rgb", name),
                         batch_size=32, device="cpu")
    return {"model": mdir}
