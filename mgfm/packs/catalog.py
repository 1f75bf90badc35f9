"""Which clips make up each named dataset, with the metadata shared by its skeleton and RGB versions.

Names (the results layout's contract): ``pretrain`` (sampled clips of unlabeled videos, split "unlabeled",
label -1), ``mg_train`` / ``mg_test`` (annotated MG instances of labeled train / test videos, label = class_id),
``video_clips`` (sampled clips of labeled videos, label -1, split train/test, for emotion recognition).
Clip ids: ``{video_id}_c{clip_index:03d}`` for sampled clips, ``{video_id}_mg{index:04d}`` for MG instances
(index = order of the video's instances by start, end, class), so both modalities of one clip share an id.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mgfm.clips.tables import videos_of
from mgfm.core.constants import PACK_NAMES
from mgfm.core.constants import SAMPLED_DATASETS as SAMPLED


def dataset_clips(name: str, manifest: pd.DataFrame, annotations: pd.DataFrame | None = None,
                  clips: pd.DataFrame | None = None) -> pd.DataFrame:
    """Clips of dataset ``name`` in manifest video order: clip_id, video_id, subject_id, split, label,
    start_frame, end_frame, clip_index (valid_len is filled by the builders)."""
    if name not in PACK_NAMES:
        raise ValueError(f"unknown dataset {name!r}; expected one of {PACK_NAMES}")
    order = {v: i for i, v in enumerate(manifest["video_id"])}
    subject = dict(zip(manifest["video_id"], manifest["subject_id"]))
    split_of = dict(zip(manifest["video_id"], manifest["split"]))
    if name in SAMPLED:
        if clips is None:
            raise ValueError(f"dataset {name}: needs the sampled clip table")
        videos = set(videos_of(manifest, "unlabeled" if name == "pretrain" else "labeled"))
        df = clips[clips["video_id"].isin(videos)].copy()
        df["clip_id"] = [f"{v}_c{int(i):03d}" for v, i in zip(df["video_id"], df["clip_index"])]
        df["split"] = "unlabeled" if name == "pretrain" else df["video_id"].map(split_of)
        df["label"] = -1
    else:
        if annotations is None:
            raise ValueError(f"dataset {name}: needs the annotation table")
        videos = set(videos_of(manifest, "labeled", name.removeprefix("mg_")))
        df = annotations[annotations["video_id"].isin(videos)].copy()
        df["_row"] = df.index  # the annotation table's row, for error messages
        df = df.sort_values(["video_id", "start_frame", "end_frame", "class_id"], kind="stable")
        df["clip_index"] = df.groupby("video_id").cumcount()
        df["clip_id"] = [f"{v}_mg{int(i):04d}" for v, i in zip(df["video_id"], df["clip_index"])]
        df["split"] = name.removeprefix("mg_")
        df["label"] = df["class_id"]
    df["subject_id"] = df["video_id"].map(subject)
    df["_order"] = df["video_id"].map(order)
    df = df.sort_values(["_order", "clip_index"], kind="stable").reset_index(drop=True)
    cols = ["clip_id", "video_id", "subject_id", "split", "label", "start_frame", "end_frame", "clip_index"]
    out = df[cols + (["_row"] if "_row" in df.columns else [])].astype(
        {"label": np.int64, "start_frame": np.int64, "end_frame": np.int64, "clip_index": np.int32})
    return out


def video_groups(catalog: pd.DataFrame) -> list[tuple[str, np.ndarray]]:
    """(video_id, row positions) per video, in catalog order: builders read each video once for its clips."""
    return [(str(v), rows) for v, rows in catalog.groupby("video_id", sort=False).indices.items()]
