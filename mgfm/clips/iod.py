"""MG-IoD precision (paper Eq. 13) and the sampler ablations behind paper Tables VI and VII.

IoD = |union(sampled clips) ∩ union(GT MG intervals)| / |union(sampled clips)|, in frames, pooled over all
labeled test videos (the paper reports one number per setting). Unions are computed per video on frame masks
built from difference arrays, so overlapping annotations count once.

This stage writes the raw result of every setting (``iod.json``); ``mgfm.tables.iod`` renders them as
Tables VI and VII beside the paper's numbers.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.clips.sample import check_pose_files, iter_tracks, sample_tracks
from mgfm.clips.tables import (
    annotation_video_ids,
    load_intervals,
    load_manifest,
    load_prior,
    pose_fps,
    videos_of,
    with_fps,
)
from mgfm.common.atomic import atomic_path
from mgfm.config.steps import resolve_step

log = logging.getLogger("mgfm.clips")


def interval_mask(starts: np.ndarray, ends: np.ndarray, length: int) -> np.ndarray:
    """Boolean mask (length,) of the union of inclusive intervals (clipped to the mask)."""
    diff = np.zeros(length + 1, np.int64)
    s = np.clip(np.asarray(starts, np.int64), 0, length)
    e = np.clip(np.asarray(ends, np.int64) + 1, 0, length)
    np.add.at(diff, s, 1)
    np.add.at(diff, e, -1)
    return np.cumsum(diff[:-1]) > 0


def iod_counts(sampled: pd.DataFrame, truth: pd.DataFrame) -> tuple[int, int]:
    """(|S ∩ G|, |S|) in frames summed over videos; both frames have ``video_id, start_frame, end_frame``."""
    inter = total = 0
    truth_by_video = {v: g for v, g in truth.groupby("video_id", sort=False)}
    for vid, s in sampled.groupby("video_id", sort=False):
        g = truth_by_video.get(vid)
        length = int(max(s["end_frame"].max(), g["end_frame"].max() if g is not None else 0)) + 1
        ms = interval_mask(s["start_frame"].to_numpy(), s["end_frame"].to_numpy(), length)
        total += int(ms.sum())
        if g is not None:
            mg = interval_mask(g["start_frame"].to_numpy(), g["end_frame"].to_numpy(), length)
            inter += int((ms & mg).sum())
    return inter, total


def iod_precision(sampled: pd.DataFrame, truth: pd.DataFrame) -> float:
    """MG-IoD precision in [0, 1] (NaN when nothing was sampled)."""
    inter, total = iod_counts(sampled, truth)
    return inter / total if total else float("nan")


def run_iod(pose_dir: str | os.PathLike, manifest_path: str | os.PathLike, annotations_path: str | os.PathLike,
            out: str | os.PathLike, seed: int, params: dict | None = None,
            video_dir: str | os.PathLike | None = None) -> dict:
    """Sample the labeled test videos under each ablation setting and write the raw results to ``out`` (JSON).

    Two sweeps: every ``iod_quotas`` at the main ``tau`` (Table VI), every ``iod_taus`` at
    ``iod_tau_table_quota`` (Table VII). Every setting reuses each video's own random stream (common random
    numbers), so differences between rows come from the setting, not from luck. Returns what was written.
    """
    p = resolve_step("iod", params)
    manifest = load_manifest(manifest_path)
    annotations = load_intervals(annotations_path, manifest)
    if p["prior"] == "train_split":   # annotation frames at each video's own rate (its pose metadata)
        annotations = with_fps(annotations, pose_fps(annotation_video_ids(annotations), pose_dir))
    prior = load_prior(p["prior"], manifest, annotations)
    test_ids = videos_of(manifest, "labeled", "test")
    if not test_ids:
        raise ValueError(f"{manifest_path}: no labeled test videos, so MG-IoD cannot be evaluated")
    check_pose_files(test_ids, pose_dir)
    tracks = list(iter_tracks(test_ids, pose_dir, video_dir))
    truth = annotations[annotations["video_id"].isin(test_ids)]
    log.info("MG-IoD on %d labeled test videos with %d MG instances", len(test_ids), len(truth))

    def evaluate(quota: int, tau: float) -> dict:
        clips, stats = sample_tracks(tracks, prior, seed, quota, tau, p["retry_budget"], total=len(tracks))
        prec = iod_precision(clips, truth)
        at_quota = int((stats["accepted"] == quota).sum())
        log.info("quota %d, tau %.2f: %d clips (%d videos at the quota), MG-IoD %.2f%%", quota, tau, len(clips),
                 at_quota, 100 * prec)
        return {"quota": quota, "tau": tau, "clips": len(clips),
                "precision_pct": None if math.isnan(prec) else 100 * prec, "videos_at_quota": at_quota}

    tau, tau_sweep_quota = float(p["tau"]), int(p["iod_tau_table_quota"])
    results = {
        "n_videos": len(test_ids), "n_instances": int(len(truth)), "retry_budget": int(p["retry_budget"]),
        "seed": int(seed), "tau": tau, "tau_sweep_quota": tau_sweep_quota,
        "quota_sweep": [evaluate(int(q), tau) for q in p["iod_quotas"]],
        "tau_sweep": [evaluate(tau_sweep_quota, float(t)) for t in p["iod_taus"]],
    }
    with atomic_path(out) as tmp:
        Path(tmp).write_text(json.dumps(results, indent=1) + "\n")
    return results
