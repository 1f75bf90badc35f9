"""A torch Dataset over a packed clip dataset: rows come straight from the memory-mapped array.

The array is opened lazily in each process (a memmap pickled into DataLoader workers would be copied), and
``__getitems__`` lets a DataLoader fetch a whole batch with one fancy-indexed read of sorted rows instead of
one small read per sample; nothing parses Parquet per sample.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mgfm.core.packed import open_packed


class PackedClips(Dataset):
    """Items are ``(clip tensor, index)``; ``meta`` is the dataset's metadata table (row i describes item i)."""

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        data, self.meta = open_packed(self.path)
        self.shape, self.dtype = data.shape, data.dtype
        self._data: np.ndarray | None = None

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def data(self) -> np.ndarray:
        if self._data is None:
            self._data = np.load(self.path / "data.npy", mmap_mode="r")
        return self._data

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.array(self.data[index])), int(index)

    def __getitems__(self, indices: list[int]) -> list[tuple[torch.Tensor, int]]:
        idx = np.asarray(indices, dtype=np.int64)
        order = np.argsort(idx, kind="stable")
        rows = np.empty((len(idx), *self.shape[1:]), self.dtype)
        rows[order] = self.data[idx[order]]  # one sorted gather from the memmap
        batch = torch.from_numpy(rows)
        return [(batch[i], int(k)) for i, k in enumerate(idx.tolist())]

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_data"] = None  # workers map the file themselves
        return state
