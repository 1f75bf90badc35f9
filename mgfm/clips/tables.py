"""The dataset tables as the clips stage needs them: loaded by the dataset contract, plus the small views the
sampler and the dataset builders read (video subsets, the MG duration prior)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.ingest import contract



def load_manifest(path: str | os.PathLike) -> pd.DataFrame:
    """The manifest's label-free columns (video_id, subject_id, subset, split; ``split`` is "" for unlabeled
    videos), checked by the dataset contract: the manifest itself or its label-free view (``mgfm.ingest.views``)."""
    return contract.load_manifest(path, labels=False)


def load_annotations(path: str | os.PathLike, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """The MG instances (frames inclusive, int64), checked by the contract (against the manifest when given)."""
    return contract.load_annotations(path, manifest=manifest)


def load_intervals(path: str | os.PathLike, manifest: pd.DataFrame | None = None) -> pd.DataFrame:
    """The MG instances' intervals only (video_id, start_frame, end_frame): what sampling and MG-IoD read, from
    the annotation table or its label-free view, so a corrected class reruns neither."""
    return contract.load_annotations(path, manifest=manifest, labels=False)


def videos_of(manifest: pd.DataFrame, subset: str, split: str | None = None) -> list[str]:
    """Video ids of a subset (and split), in manifest order."""
    sel = manifest["subset"] == subset
    if split is not None:
        sel &= manifest["split"] == split
    return manifest.loc[sel, "video_id"].tolist()


def pose_fps(video_ids: list[str], pose_dir: str | os.PathLike) -> dict[str, float]:
    """Frame rate of each video's frame numbers, from its pose file's metadata (the normalised video's rate,
    config key download.fps when the videos were normalised here)."""
    from mgfm.core.pose_store import read_pose_meta

    rates = {}
    for vid in video_ids:
        path = Path(pose_dir) / f"{vid}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no pose file, so the frame rate of video {vid!r} is unknown")
        fps = read_pose_meta(path).get("fps")
        if not isinstance(fps, (int, float)) or not fps > 0:
            raise ValueError(f"{path}: pose metadata has no positive fps (got {fps!r})")
        rates[vid] = float(fps)
    return rates


def video_fps(video_ids: list[str], video_dir: str | os.PathLike) -> dict[str, float]:
    """Frame rate of each video from its probed metadata (``{video_id}.json`` of the ingest stage)."""
    import json

    rates = {}
    for vid in video_ids:
        path = Path(video_dir) / f"{vid}.json"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: no video metadata, so the frame rate of video {vid!r} is unknown")
        fps = json.loads(path.read_text()).get("fps")
        if not isinstance(fps, (int, float)) or not fps > 0:
            raise ValueError(f"{path}: video metadata has no positive fps (got {fps!r})")
        rates[vid] = float(fps)
    return rates


def clips_fps(clips: pd.DataFrame) -> dict[str, float]:
    """Frame rate of each video of a sampled ``clips.parquet`` table (frames over seconds of its clips)."""
    rate = (clips["end_frame"] - clips["start_frame"] + 1) / clips["duration_s"]
    return rate.groupby(clips["video_id"]).median().astype(float).to_dict()


def with_fps(annotations: pd.DataFrame, fps: Mapping[str, float]) -> pd.DataFrame:
    """The annotations with column ``fps``: the frame rate of each row's video (NaN where ``fps`` lacks it)."""
    return annotations.assign(fps=annotations["video_id"].map(dict(fps)).astype(np.float64))


def annotation_video_ids(annotations: pd.DataFrame) -> list[str]:
    """The videos that have MG instances, in first-seen order."""
    return annotations["video_id"].drop_duplicates().tolist()


def train_durations(manifest: pd.DataFrame, annotations: pd.DataFrame,
                    rate_source: str = "column fps of the annotations") -> np.ndarray:
    """Durations in seconds of the MG instances of the labeled training split: the prior of Eq. 4.

    Frame numbers are converted at each video's own rate, column ``fps`` of the annotations (``with_fps``);
    ``rate_source`` says where the caller took the rates from, for the error of a video without one.
    """
    train = set(videos_of(manifest, "labeled", "train"))
    ann = annotations[annotations["video_id"].isin(train)]
    if "fps" not in ann.columns:
        raise ValueError("annotations carry no frame rate (column fps, see mgfm.clips.tables.with_fps)")
    unknown = ann.loc[~(ann["fps"] > 0), "video_id"].drop_duplicates().tolist()
    if unknown:
        raise ValueError(f"no frame rate for labeled train video(s) {unknown[:5]} ({rate_source})")
    return (ann["end_frame"] - ann["start_frame"] + 1).to_numpy(np.float64) / ann["fps"].to_numpy(np.float64)


def load_prior(prior: str, manifest: pd.DataFrame, annotations: pd.DataFrame,
               rate_source: str = "column fps of the annotations") -> np.ndarray:
    """The duration prior in seconds: ``train_split`` (annotations with their videos' rates, ``with_fps``;
    ``rate_source`` names where they came from) or a file of durations (CSV column ``duration_s`` or one per
    line)."""
    if prior == "train_split":
        durations = train_durations(manifest, annotations, rate_source)
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
