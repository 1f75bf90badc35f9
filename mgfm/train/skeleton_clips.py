"""Packed skeleton clips as a batch-indexed torch Dataset (one memmap read per batch, no per-clip Parquet)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mgfm.core.packed import open_packed


class PackedClips(Dataset):
    """``ds[list_of_indices]`` -> {"x": float32 (n, C, T, V), "valid_len": int64 (n,), "index": int64 (n,)}.

    Checks the dataset against the model's joints and channels up front, so a mismatch fails before training.
    """

    def __init__(self, path: str | os.PathLike, num_joints: int | None = None, num_channels: int | None = None) -> None:
        self.path = Path(path)
        self.data, self.meta = open_packed(self.path)
        if self.data.ndim != 4:
            raise ValueError(f"{self.path}: skeleton data must be (N, C, T, V), got shape {self.data.shape}")
        n, c, t, v = self.data.shape
        if num_channels is not None and c != num_channels:
            raise ValueError(f"{self.path}: {c} channels, the model expects {num_channels} (model.num_channels)")
        if num_joints is not None and v != num_joints:
            raise ValueError(f"{self.path}: {v} joints, the model expects {num_joints} (model.num_joints)")
        self.valid_len = self.meta["valid_len"].to_numpy().astype(np.int64)
        bad = np.flatnonzero((self.valid_len < 1) | (self.valid_len > t))
        if len(bad):
            row = int(bad[0])
            raise ValueError(f"{self.path}: meta row {row} (clip_id {self.meta['clip_id'].iloc[row]}) has valid_len "
                             f"{self.valid_len[row]} outside [1, {t}] ({len(bad)} bad rows)")

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices) -> dict:
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        x = np.asarray(self.data[idx], dtype=np.float32)
        return {"x": torch.from_numpy(x), "valid_len": torch.from_numpy(self.valid_len[idx]),
                "index": torch.from_numpy(idx)}
