"""The dataset tables as the clips stage needs them: loaded by the dataset contract, plus the small views the
sampler and the dataset builders read (video subsets, the MG duration prior)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.core.constants import FPS
from mgfm.data import contract

#: Frame rate of annotation frame numbers (the contract: inclusive frames at the normalised 25 fps).
ANNOTATION_FPS = float(FPS)


def load_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """The manifest, checked by the dataset contract (``split`` is "" for unlabeled videos)."""
    return contract.load_manifest(path)


def load_annotations(path: str | os.PathLike, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """The MG instances (frames inclusive, int64), checked by the contract (against the manifest when given)."""
    return contract.load_annotations(path, manifest=manifest)


def videos_of(manifest: pd.DataFrame, subset: str, split: str | None = None) -> list[str]:
    """Video ids of a subset (and split), in manifest order."""
    sel = manifest["subset"] == subset
    if split is not None:
        sel &= manifest["split"] == split
    return manifest.loc[sel, "video_id"].tolist()


def train_durations(manifest: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """Durations in seconds of the MG instances of the labeled training split: the prior of Eq. 4."""
    train = set(videos_of(manifest, "labeled", "train"))
    ann = annotations[annotations["video_id"].isin(train)]
    return ((ann["end_frame"] - ann["start_frame"] + 1) / ANNOTATION_FPS).to_numpy(np.float64)


def load_prior(prior: str, manifest: pd.DataFrame, annotations: pd.DataFrame) -> np.ndarray:
    """The duration prior in seconds: ``train_split`` or a file of durations (CSV column ``duration_s`` or one per line)."""
    if prior == "train_split":
        durations = train_durations(manifest, annotations)
        source = "the labeled train split's MG instances"
    else:
        path = Path(prior)
        if not path.is_file():
            raise FileNotFoundError(f"config key clips.prior: file not found: {prior}")
        if path.suffix == ".parquet":
            df = pd.read_parquet(path)
        else:
            df = pd.read_csv(path)
            if "duration_s" not in df.columns:
                df = pd.read_csv(path, header=None, names=["duration_s"])
        if "duration_s" not in df.columns:
            raise ValueError(f"{path}: duration prior needs a 'duration_s' column")
        durations = pd.to_numeric(df["duration_s"], errors="coerce").to_numpy(np.float64)
        source = str(path)
        if not np.isfinite(durations).all() or (durations <= 0).any():
            raise ValueError(f"{path}: durations must be positive numbers (config key clips.prior)")
    if len(durations) == 0:
        raise ValueError(f"config key clips.prior: no durations in {source}")
    return durations
