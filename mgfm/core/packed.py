"""Packed clip datasets: one memory-mappable array plus one metadata table per dataset folder.

Layout of a dataset folder (e.g. ``results/packs/skeleton/mg_train/``):
    data.npy      skeleton: float32 (N, C, T, V), channels x, y, score; RGB: uint8 (N, T, H, W, 3), or in the
                  views layout (the pretraining clips) uint8 (N, F, S', S', 3): F >= T frames at a fixed stride
                  and a context margin around the crop, from which pretraining takes a view every epoch
    meta.parquet  one row per clip, row i describes data[i]: clip_id, video_id, subject_id, split, label
                  (int, -1 when unlabeled), valid_len (frames before padding), start_frame, end_frame
                  (inclusive, at the normalised fps), plus any extra columns a builder adds (views layout:
                  ``view_starts``, how many starts of T frames at the stride the clip stores)
    info.json     how it was built (parameters, shapes), for humans and model cards; the views layout adds
                  ``views`` = {num_frames T, size S, frames F, side S', stride, context}
Opening a dataset maps the array, so a batch reads only its rows and no Parquet is parsed per sample.
Skeleton and RGB datasets of the same clips share ``clip_id``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_dir
from mgfm.common.disk import check_free_space, reserve

META_COLUMNS = ("clip_id", "video_id", "subject_id", "split", "label", "valid_len", "start_frame", "end_frame")


def clip_metadata(catalog: pd.DataFrame, valid_len: np.ndarray, extra: dict[str, np.ndarray]) -> pd.DataFrame:
    """The metadata table of a packed dataset built from a clip catalogue, in one column order for every builder.

    ``extra`` holds the builder's own per-clip columns (e.g. where its normalisation or crop box came from).
    """
    meta = catalog.drop(columns="_row", errors="ignore")
    meta["valid_len"] = valid_len
    meta["n_frames"] = (meta["end_frame"] - meta["start_frame"] + 1).astype(np.int64)
    for name, values in extra.items():
        meta[name] = values
    return meta[list(META_COLUMNS) + ["clip_index", "n_frames", *extra]]


def _write_meta_and_info(path: Path, tmp: Path, meta: pd.DataFrame, shape: tuple[int, ...], dtype: np.dtype,
                         info: dict | None) -> None:
    missing = [c for c in META_COLUMNS if c not in meta.columns]
    if missing or len(meta) != shape[0]:
        raise ValueError(f"{path}: metadata needs columns {list(META_COLUMNS)} (missing {missing}) and "
                         f"{shape[0]} rows (has {len(meta)})")
    meta.reset_index(drop=True).to_parquet(tmp / "meta.parquet", index=False)
    (tmp / "info.json").write_text(json.dumps({"shape": list(shape), "dtype": str(dtype), **(info or {})}, indent=2))


def write_packed(path: str | os.PathLike, data: np.ndarray, meta: pd.DataFrame, info: dict | None = None) -> None:
    """Write a packed dataset folder atomically. ``meta`` must have the ``META_COLUMNS`` and len(data) rows."""
    with atomic_dir(path) as tmp:
        _write_meta_and_info(Path(path), tmp, meta, data.shape, data.dtype, info)
        np.save(tmp / "data.npy", data)


class PackedWriter:
    """Fills a packed dataset whose size is known up front, one clip or chunk at a time, without holding it in memory."""

    def __init__(self, path: str | os.PathLike, shape: tuple[int, ...], dtype) -> None:
        self.path = Path(path)
        self._ctx = atomic_dir(self.path)
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)

    def __enter__(self) -> PackedWriter:
        self.tmp = self._ctx.__enter__()
        try:
            # the blocks are reserved before any page is written: a full disk is an error naming the dataset,
            # never a SIGBUS in the middle of filling the map
            check_free_space(self.tmp, int(np.prod(self.shape)) * self.dtype.itemsize, f"dataset {self.path}")
            self.data = np.lib.format.open_memmap(self.tmp / "data.npy", mode="w+", dtype=self.dtype,
                                                  shape=self.shape)
            reserve(self.tmp / "data.npy", (self.tmp / "data.npy").stat().st_size, f"dataset {self.path}")
        except BaseException as err:
            self.data = None
            self._ctx.__exit__(type(err), err, err.__traceback__)
            raise
        return self

    def finish(self, meta: pd.DataFrame, info: dict | None = None) -> None:
        """Record the metadata table; call once, inside the ``with`` block, after filling ``data``."""
        _write_meta_and_info(self.path, self.tmp, meta, self.shape, self.dtype, info)

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc_type is None:
            self.data.flush()
        del self.data
        if exc_type is None and not (self.tmp / "meta.parquet").exists():
            err = RuntimeError(f"{self.path}: finish() was never called")
            self._ctx.__exit__(RuntimeError, err, None)  # removes the temporary folder
            raise err
        return self._ctx.__exit__(exc_type, exc, tb)


def open_packed(path: str | os.PathLike, mmap: bool = True) -> tuple[np.ndarray, pd.DataFrame]:
    """Return (data, meta) of a packed dataset; ``data`` is memory-mapped unless ``mmap`` is False."""
    path = Path(path)
    if not (path / "data.npy").exists() or not (path / "meta.parquet").exists():
        raise FileNotFoundError(f"{path}: not a packed dataset (needs data.npy and meta.parquet)")
    data = np.load(path / "data.npy", mmap_mode="r" if mmap else None)
    meta = pd.read_parquet(path / "meta.parquet")
    if len(meta) != len(data):
        raise ValueError(f"{path}: {len(meta)} metadata rows for {len(data)} clips")
    return data, meta


def read_info(path: str | os.PathLike) -> dict:
    """The ``info.json`` of a packed dataset."""
    return json.loads((Path(path) / "info.json").read_text())
