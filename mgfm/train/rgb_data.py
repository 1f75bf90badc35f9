"""Packed uint8 RGB clips as a batch-indexed torch Dataset, and their conversion to the student's layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mgfm.core.packed import open_packed


class PackedRGBClips(Dataset):
    """``ds[list_of_indices]`` -> {"x": uint8 (n, T, S, S, 3), "valid_len", "index": int64 (n,)}: one memmap read per batch,
    converted to float on the training device (``to_student``), so a batch crosses to the GPU as uint8."""

    def __init__(self, path: str | os.PathLike, num_frames: int | None = None, image_size: int | None = None,
                 larger: bool = False) -> None:
        """``larger``: clips may hold more frames / pixels than the model takes (its reader picks the views)."""
        self.path = Path(path)
        self.data, self.meta = open_packed(self.path)
        if self.data.ndim != 5 or self.data.shape[-1] != 3 or self.data.dtype != np.uint8:
            raise ValueError(f"{self.path}: RGB data must be uint8 (N, T, S, S, 3), got {self.data.dtype} "
                             f"{self.data.shape}")
        _, t, s, _, _ = self.data.shape
        if num_frames is not None and (t < num_frames if larger else t != num_frames):
            raise ValueError(f"{self.path}: {t} frames, the model expects {num_frames} (rgb_pretrain.model.num_frames)")
        if image_size is not None and (s < image_size if larger else s != image_size):
            raise ValueError(f"{self.path}: {s} px frames, the model expects {image_size} "
                             "(rgb_pretrain.model.image_size)")
        self.valid_len = self.meta["valid_len"].to_numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices) -> dict:
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        order = np.argsort(idx)                       # memmap reads in file order
        x = np.empty((len(idx), *self.data.shape[1:]), np.uint8)
        x[order] = self.data[idx[order]]
        return {"x": torch.from_numpy(x), "valid_len": torch.from_numpy(self.valid_len[idx]),
                "index": torch.from_numpy(idx)}


class TargetsFromCache(Dataset):
    """``PackedRGBClips`` batches plus ``"target"``: the cached teacher targets of the same clips (float16
    (n, tokens, D), as stored), so the loader's workers read them beside the clips and they cross to the GPU
    with the batch; the step converts them to float32 there."""

    def __init__(self, clips: PackedRGBClips, cache: np.ndarray) -> None:
        if len(cache) != len(clips):
            raise ValueError(f"{clips.path}: {len(clips)} clips but the target cache holds {len(cache)}")
        self.clips, self.cache = clips, cache

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, indices) -> dict:
        batch = self.clips[indices]
        idx = batch["index"].numpy()
        order = np.argsort(idx)                       # memmap reads in file order
        target = np.empty((len(idx), *self.cache.shape[1:]), self.cache.dtype)
        target[order] = self.cache[idx[order]]
        return {**batch, "target": torch.from_numpy(target)}


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, T, S, S, 3) -> float32 (B, T, 3, S, S) in [0, 1]."""
    return x.permute(0, 1, 4, 2, 3).float().div_(255.0)
