"""Synthetic inputs of the eval stage for tests and benchmarks: labeled feature tables with class structure,
per-video clip features with an outcome signal, dataset tables, and (optionally) tiny encoders with packed
clips. Data of the right shapes and formats, not a stand-in for the demo corpus."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.seeding import rng_for
from mgfm.core.feature_store import write_features
from mgfm.eval.members import feature_table

GROUPS = ("Head", "Body", "Hand", "Body-Hand", "Head-Hand", "non-MG")


def write_tables(root: Path, num_classes: int, videos: pd.DataFrame) -> dict[str, Path]:
    """taxonomy.csv and manifest.csv (videos: video_id, subject_id, split, outcome) under ``root``."""
    tax = pd.DataFrame({"class_id": range(num_classes), "name": [f"class{i}" for i in range(num_classes)],
                        "group": [GROUPS[i % len(GROUPS)] for i in range(num_classes)]})
    man = videos.assign(url=[f"file:///dev/null#{v}" for v in videos["video_id"]], subset="labeled")
    paths = {"taxonomy": root / "taxonomy.csv", "manifest": root / "manifest.csv"}
    root.mkdir(parents=True, exist_ok=True)
    tax.to_csv(paths["taxonomy"], index=False)
    man[["video_id", "url", "subject_id", "outcome", "subset", "split"]].to_csv(paths["manifest"], index=False)
    return paths


def synthetic_videos(n_subjects: int = 8, videos_per_subject: int = 3, seed: int = 0) -> pd.DataFrame:
    """Labeled videos, subject-disjoint halves for train and test, outcomes ~70% win."""
    rng = rng_for(seed, "synthetic-videos")
    rows = []
    for s in range(n_subjects):
        for v in range(videos_per_subject):
            rows.append({"video_id": f"v{s:02d}{v}", "subject_id": f"subj{s:02d}",
                         "split": "train" if s % 2 == 0 else "test",
                         "outcome": "win" if rng.random() < 0.7 else "lose"})
    return pd.DataFrame(rows)


def _meta(n: int, videos: pd.DataFrame, split: str, labels: np.ndarray, prefix: str, rng) -> pd.DataFrame:
    vids = videos[videos["split"] == split].reset_index(drop=True)
    pick = rng.integers(0, len(vids), size=n)
    start = rng.integers(0, 5000, size=n)
    return pd.DataFrame({"clip_id": [f"{prefix}{i:06d}" for i in range(n)], "video_id": vids["video_id"].to_numpy()[pick],
                         "subject_id": vids["subject_id"].to_numpy()[pick], "split": split,
                         "label": labels.astype(np.int64), "valid_len": 32, "start_frame": start,
                         "end_frame": start + 31})


def write_synthetic_features(root: str | os.PathLike, streams=("joint", "bone", "motion"), num_classes: int = 6,
                             n_train: int = 240, n_test: int = 120, dim: int = 32, separation: float = 1.5,
                             clips_per_video: int = 12, seed: int = 0, modality: str = "skeleton") -> dict:
    """Feature tables ``root/features/<modality>/<stream>/{mg_train,mg_test,video_clips}.parquet`` + tables.

    Each class has a mean direction shared by all streams; each stream adds its own noise, so streams agree
    on the class but err independently (score fusion helps). Clip features of a video are shifted along an
    outcome direction, so win/lose is learnable from them.
    """
    root = Path(root)
    rng = rng_for(seed, "synthetic-features")
    videos = synthetic_videos(seed=seed)
    paths = write_tables(root, num_classes, videos)
    means = rng.normal(size=(num_classes, dim)) * separation
    outcome_dir = rng.normal(size=dim)
    y_train = rng.integers(0, num_classes, size=n_train)
    y_test = rng.integers(0, num_classes, size=n_test)
    meta_train = _meta(n_train, videos, "train", y_train, "tr", rng)
    meta_test = _meta(n_test, videos, "test", y_test, "te", rng)
    clip_rows = []
    for _, v in videos.iterrows():
        for c in range(clips_per_video):
            clip_rows.append({"clip_id": f"{v['video_id']}_{c:03d}", "video_id": v["video_id"],
                              "subject_id": v["subject_id"], "split": v["split"], "label": -1, "valid_len": 32,
                              "start_frame": 100 * c, "end_frame": 100 * c + 31})
    meta_clips = pd.DataFrame(clip_rows)
    win = meta_clips["video_id"].map(dict(zip(videos["video_id"], videos["outcome"] == "win"))).to_numpy()
    for stream in streams:
        info = {"card": {"stream": stream, "modality": modality, "feature_dim": dim}, "synthetic": True}
        srng = rng_for(seed, "synthetic-features", stream)
        for name, meta, y in (("mg_train", meta_train, y_train), ("mg_test", meta_test, y_test)):
            x = means[y] + srng.normal(size=(len(y), dim))
            out = feature_table(root / "features", modality, stream, name)
            out.parent.mkdir(parents=True, exist_ok=True)
            write_features(out, meta, x.astype(np.float32), {**info, "dataset": name})
        xc = srng.normal(size=(len(meta_clips), dim)) + np.where(win, 1.0, -1.0)[:, None] * outcome_dir * 0.6
        write_features(feature_table(root / "features", modality, stream, "video_clips"), meta_clips,
                       xc.astype(np.float32), {**info, "dataset": "video_clips"})
    return {**paths, "features": root / "features", "videos": videos}


def write_synthetic_encoders(root: str | os.PathLike, streams=("joint",), num_classes: int = 4, n_train: int = 64,
                             n_test: int = 32, frames: int = 16, hidden: int = 16, seed: int = 0) -> dict:
    """Packed labeled datasets ``root/datasets/skeleton/{mg_train,mg_test}`` whose joint trajectories depend
    on the class, tiny DSTE encoders ``root/models/skeleton/<stream>`` (random weights, real artifact
    format) and their cached features ``root/features/skeleton/<stream>/{mg_train,mg_test}.parquet``."""
    import torch

    from mgfm.core.packed import write_packed
    from mgfm.models.artifact import save_encoder
    from mgfm.models.dste import DSTE, DSTEConfig
    from mgfm.config import resolve
    from mgfm.core.layout import NUM_JOINTS
    from mgfm.train.features import extract_features

    root = Path(root)
    rng = rng_for(seed, "synthetic-encoders")
    videos = synthetic_videos(seed=seed)
    paths = write_tables(root, num_classes, videos)
    pattern = rng.normal(size=(num_classes, 2, 1, NUM_JOINTS))
    t = np.linspace(0, 2 * np.pi, frames)[None, None, :, None]
    for name, n, split in (("mg_train", n_train, "train"), ("mg_test", n_test, "test")):
        y = rng.integers(0, num_classes, size=n)
        xy = 0.3 * np.sin(t * (1 + y[:, None, None, None])) * pattern[y] + rng.normal(0, 0.05, (n, 2, frames, NUM_JOINTS))
        score = np.full((n, 1, frames, NUM_JOINTS), 0.9)
        data = np.concatenate([xy, score], axis=1).astype(np.float32)
        meta = _meta(n, videos, split, y, name[3:5], rng).assign(valid_len=frames)
        write_packed(root / "packs" / "skeleton" / name, data, meta, {"source": "synthetic"})
    model = {"num_frames": frames, "num_joints": NUM_JOINTS, "hidden": hidden, "depth": 1, "drop_path": 0.0}
    cfg = DSTEConfig.from_section(resolve("pretrain", {"model": model})["model"])
    for stream in streams:
        torch.manual_seed(seed)
        enc = DSTE(cfg)
        card = {"architecture": "dste", "modality": "skeleton", "arch": cfg.to_dict(), "stream": stream,
                "feature_dim": cfg.feature_dim, "num_frames": frames, "num_joints": NUM_JOINTS, "num_channels": 3}
        mdir = root / "models" / "skeleton" / stream
        save_encoder(mdir, enc, card)
        for name in ("mg_train", "mg_test"):
            extract_features(mdir, root / "packs" / "skeleton" / name,
                             feature_table(root / "features", "skeleton", stream, name), batch_size=64, device="cpu")
    return {**paths, "models": root / "models", "packs": root / "packs", "features": root / "features"}
