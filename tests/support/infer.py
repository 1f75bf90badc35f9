"""A tiny but complete models folder for ``mgfm infer``: one skeleton member (a small DSTE with random weights in
the real artifact formats), its classifier head and description, the emotion aggregator, and ``spotter.json``
written by the real calibration (``mgfm.infer.calibrate.build_spotter``) on synthetic validation pose files.
Seconds to build; what it spots is meaningless, what it exercises (loading, checks, digests, outputs) is real."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.ingest.video import ffmpeg_exe

NUM_CLASSES = 3
TRAIN_VIDEOS = ["tr0", "tr1"]
VALIDATION_VIDEOS = ["va0", "va1"]


def build_models(root: Path, frames: int = 16, hidden: int = 8) -> Path:
    """``root/models`` (and the tables and pose files calibration reads under ``root``)."""
    import torch
    from safetensors.torch import save_file
    from torch import nn

    from mgfm.config import resolve
    from mgfm.core.layout import LAYOUT_NAME, UPPER_BODY
    from mgfm.eval.emotion import MeanAggregator
    from mgfm.eval.export import CLASSIFIER_FORMAT, save_head, write_json
    from mgfm.infer.calibrate import build_spotter
    from mgfm.models.artifact import save_encoder
    from mgfm.models.dste import DSTE, DSTEConfig
    from tests.support.clips import person_pose, write_pose

    models = root / "models"
    clip_params = resolve("skeleton", {"num_frames": frames})
    cfg = DSTEConfig.from_section(resolve("pretrain", {"model": {"num_frames": frames, "num_joints": len(UPPER_BODY),
                                                                 "hidden": hidden, "depth": 1, "heads": 2}})["model"])
    card = {"architecture": "dste", "modality": "skeleton", "arch": cfg.to_dict(), "stream": "joint",
            "feature_dim": cfg.feature_dim, "num_frames": frames, "num_joints": len(UPPER_BODY), "num_channels": 3}
    torch.manual_seed(0)
    encoder = DSTE(cfg)
    save_encoder(models / "skeleton" / "joint", encoder, card)            # the pretrained encoder (emotion reads it)
    cls = models / "classifiers" / "skeleton" / "joint"
    save_encoder(cls, encoder, card)
    save_head(cls / "head.safetensors", nn.Linear(cfg.feature_dim, NUM_CLASSES))
    write_json(cls / "classifier.json", {
        "format": CLASSIFIER_FORMAT, "modality": "skeleton", "stream": "joint", "num_classes": NUM_CLASSES,
        "class_names": [f"class{i}" for i in range(NUM_CLASSES)], "layout": LAYOUT_NAME, "joints": list(UPPER_BODY),
        "clip_params": clip_params, "protocol": "finetune", "seed": 0, "validation_videos": VALIDATION_VIDEOS,
        "train_videos": TRAIN_VIDEOS, "class_counts": [5, 3, 2]})
    emotion = models / "emotion"
    agg = MeanAggregator(cfg.feature_dim)
    state = {k: v.detach().contiguous() for k, v in agg.state_dict().items()}
    state["feature_mean"], state["feature_std"] = torch.zeros(cfg.feature_dim), torch.ones(cfg.feature_dim)
    emotion.mkdir(parents=True, exist_ok=True)
    save_file(state, str(emotion / "aggregator.safetensors"))
    write_json(emotion / "emotion.json", {"members": ["joint"], "encoders": {"joint": "skeleton/joint"},
                                          "config": {**resolve("eval")["emotion"], "max_clips": 8},
                                          "dim": cfg.feature_dim, "seed": 0})
    # what calibration reads: the tables and the validation videos' pose files (a seated person, always visible)
    rng = np.random.default_rng(0)
    pose_dir = root / "pose"
    pose_dir.mkdir(parents=True, exist_ok=True)
    for vid in VALIDATION_VIDEOS:
        write_pose(pose_dir / f"{vid}.parquet", person_pose(250, rng))
    videos = TRAIN_VIDEOS + VALIDATION_VIDEOS
    pd.DataFrame({"video_id": videos, "url": [f"{v}.mp4" for v in videos], "subject_id": videos,
                  "outcome": "win", "subset": "labeled", "split": "train"}).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame({"video_id": [v for v in videos for _ in range(2)], "class_id": [0, 1] * len(videos),
                  "start_frame": [10, 100] * len(videos), "end_frame": [30, 140] * len(videos)}
                 ).to_csv(root / "annotations.csv", index=False)
    build_spotter(models, [("joint", "skeleton", "joint")], None, str(root / "manifest.csv"),
                  str(root / "annotations.csv"), pose_dir, {}, 0.3, resolve("pose", {}), resolve("download", {}), 25.0)
    return models


def copy_models(models: Path, dest: Path) -> Path:
    """A copy of a models folder, for a test to damage."""
    import shutil

    shutil.copytree(models, dest)
    return dest


def edit_json(path: Path, change) -> None:
    """Rewrite a JSON file after ``change(obj)`` edited the parsed object in place."""
    obj = json.loads(path.read_text())
    change(obj)
    path.write_text(json.dumps(obj))


def make_video(path: Path, seconds: float, *extra: str, size: str = "160x120") -> Path:
    """A small test-pattern video (no person in it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc=size={size}:rate=25", "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", *extra, str(path)], check=True)
    return path


def spotter_fields(**change) -> dict:
    """A complete spotter description (every field load_spotter checks) with no files behind it: for tests of
    the description's own checks (``load_spotter(..., check_digests=False)``)."""
    from mgfm.config import resolve
    from mgfm.core.layout import LAYOUT_NAME, UPPER_BODY
    from mgfm.infer.bundle import SPOTTER_FORMAT

    spotter = {"format": SPOTTER_FORMAT, "layout": LAYOUT_NAME, "joints": list(UPPER_BODY), "members": [],
               "weights": {}, "class_names": ["a", "b"], "class_prior": [0.5, 0.5], "fps": 25.0,
               "window_frames": [20, 40], "stride_frames": 10, "min_visible": 1.0, "tau": 0.3,
               "merge": resolve("infer")["merge"], "clip_params": resolve("skeleton"), "pose": resolve("pose"),
               "download": resolve("download"), "validation_videos": ["v1"], "tious": [0.3, 0.5], "threshold": 0.5,
               "digests": {}, "pose_models": {"model": "0" * 64, "detector": ""}}
    return {**spotter, **change}
