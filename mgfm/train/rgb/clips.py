"""Packed uint8 RGB clips as a batch-indexed torch Dataset, and their conversion to the student's layout."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from mgfm.core.packed import open_packed, read_info
from mgfm.train.rgb.pretrain_views import ViewAugment, centre_views, draw_views, read_views


class PackedRGBClips(Dataset):
    """``ds[list_of_indices]`` -> {"x": uint8 (n, T, S, S, 3), "valid_len", "index": int64 (n,)}, converted to float on
    the training device (``to_unit``), so a batch crosses to the GPU as uint8.

    A plain dataset (N, T, S, S, 3) is read in one memmap read per batch. A dataset in the ``views`` layout
    (N, F, S', S', 3, more frames at a fixed stride and a context margin; ``mgfm.core.packed``) gives its centre
    view, or, with ``augment`` and a batch that carries its epoch (``mgfm.train.loop.IndexBatch``), a per-epoch
    pretraining view (``mgfm.train.rgb.pretrain_views``) seeded by (``seed``, clip id, epoch); ``augment`` crops a
    plain dataset too.

    ``larger`` (fine-tuning, whose reader picks its own windows and test views: ``mgfm.train.rgb.finetune_views``):
    the clips as stored, which may hold more frames / pixels than the model takes, plus ``"starts"`` (n,): how
    many starts of the model's T frames each clip stores (T_s - T + 1 for a plain dataset; the views layout's
    ``view_starts``, whose frames at the stride beyond them repeat the clip's last frame)."""

    def __init__(self, path: str | os.PathLike, num_frames: int | None = None, image_size: int | None = None,
                 augment: ViewAugment | None = None, seed: int = 0, larger: bool = False) -> None:
        self.path = Path(path)
        if augment is not None and larger:
            raise ValueError(f"{self.path}: pretraining views (augment) and fine-tuning's stored clips (larger) "
                             "are two readers; open the dataset with one")
        self.data, self.meta = open_packed(self.path)
        if self.data.ndim != 5 or self.data.shape[-1] != 3 or self.data.dtype != np.uint8:
            raise ValueError(f"{self.path}: RGB data must be uint8 (N, T, S, S, 3), got {self.data.dtype} "
                             f"{self.data.shape}")
        self.views = read_info(self.path).get("views") if (self.path / "info.json").is_file() else None
        self.augment, self.seed, self.larger = augment, seed, larger
        if self.views:
            t, s = int(self.views["num_frames"]), int(self.views["size"])
            if "view_starts" not in self.meta.columns or self.data.shape[2] < s or self.data.shape[1] < t:
                raise ValueError(f"{self.path}: views layout of {t} x {s} px clips needs more stored frames and "
                                 f"pixels than {self.data.shape[1:4]} and a view_starts column")
            self.starts = self.meta["view_starts"].to_numpy().astype(np.int64)
        else:
            _, t, s, _, _ = self.data.shape
            self.starts = np.full(len(self.data), t - (num_frames or t) + 1 if larger else 1, np.int64)
        self.num_frames, self.size = t, s
        self.clip_ids = self.meta["clip_id"].astype(str).to_numpy()
        # the views layout was built for one T x S input; plain clips read whole may be larger than the model's
        at_least = larger and not self.views
        if num_frames is not None and (t < num_frames if at_least else t != num_frames):
            raise ValueError(f"{self.path}: {t} frames, the model expects {num_frames} (rgb_pretrain.model.num_frames)")
        if image_size is not None and (s < image_size if at_least else s != image_size):
            raise ValueError(f"{self.path}: {s} px frames, the model expects {image_size} "
                             "(rgb_pretrain.model.image_size)")
        self.valid_len = self.meta["valid_len"].to_numpy().astype(np.int64)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, indices) -> dict:
        idx = np.atleast_1d(np.asarray(indices, dtype=np.int64))
        epoch = getattr(indices, "epoch", None)
        side = self.data.shape[2]
        extra = {}
        if self.augment is not None and epoch is not None:
            views = draw_views(self.clip_ids[idx], self.starts[idx], side, self.size, self.augment, self.seed, epoch)
            x = read_views(self.data, idx, views, self.num_frames, self.size)
        elif self.views and not self.larger:
            x = read_views(self.data, idx, centre_views(self.starts[idx], side, self.size), self.num_frames, self.size)
        else:
            order = np.argsort(idx)                   # memmap reads in file order
            clips = np.empty((len(idx), *self.data.shape[1:]), np.uint8)
            clips[order] = self.data[idx[order]]
            x = torch.from_numpy(clips)
            if self.larger:
                extra = {"starts": torch.from_numpy(self.starts[idx])}
        return {"x": x, "valid_len": torch.from_numpy(self.valid_len[idx]), "index": torch.from_numpy(idx), **extra}


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
