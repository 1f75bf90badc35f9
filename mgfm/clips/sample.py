"""The sampling stage: every video of the manifest through the rejection sampler, one clip table and one
statistics table for the whole corpus.

One aggregate job rather than one job per video: the work per video is milliseconds once its score column is
read (see ``benchmarks/bench_sampler.py``), so per-video jobs would cost more in scheduling than in work.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.clips.rejection import sample_video
from mgfm.clips.figure import duration_figure
from mgfm.clips.tables import (
    annotation_video_ids,
    clips_fps,
    load_intervals,
    load_manifest,
    load_prior,
    pose_fps,
    video_fps,
    videos_of,
    with_fps,
)
from mgfm.clips.visibility import AnchorTrack, load_anchor_track, video_frame_count
from mgfm.common.atomic import atomic_path
from mgfm.common.logs import Progress
from mgfm.common.seeding import rng_for
from mgfm.config.steps import resolve_step

log = logging.getLogger("mgfm.clips")

#: Why a run of the sampler yields no clips, most likely first (named in the error of an empty run).
LIKELY_CAUSES = (
    "the pose model does not fit these videos (the shipped demo model knows only the synthetic demo: set "
    "pose.model to a real RTMPose/RTMW whole-body export)",
    "no person detector (pose.detector.model): with whole-frame boxes the face anchors of a real interview "
    "are rarely confident",
    "clips.tau too high for this pose model's scores",
    "a duration prior (clips.prior) longer than the videos",
    "pose files of other videos or of another frame rate (a 'pose ...' reason per video)",
)


class NoClipsError(RuntimeError):
    """The sampler found clips in too few videos: a broken setup, not a result to pass on."""


CLIP_COLUMNS = ["video_id", "clip_index", "start_frame", "end_frame", "duration_s"]
STATS_COLUMNS = ["video_id", "n_frames", "candidates", "rejected_length", "rejected_visibility",
                 "rejected_overlap", "accepted", "reason"]


def sample_tracks(tracks: Iterable[AnchorTrack], prior_s: np.ndarray, seed: int, quota: int, tau: float,
                  retry_budget: int, total: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Sample clips from anchor tracks; returns (clips, stats). Each video's stream is rng_for(seed, "clips", id)."""
    rows: list[tuple] = []
    stats: list[dict] = []
    bar = Progress(total, "sampling", unit="videos", logger=log)
    for track in tracks:
        n = len(track.min_score)
        reason = track.reason
        visible = track.visible(tau) if not reason else None
        if not reason and not visible.any():
            reason = f"no frame has all face anchors >= tau={tau}"
        if reason:
            log.warning("video %s: zero clips: %s", track.video_id, reason)
            stats.append(dict(video_id=track.video_id, n_frames=n, candidates=0, rejected_length=0,
                              rejected_visibility=0, rejected_overlap=0, accepted=0, reason=reason))
            bar.update()
            continue
        res = sample_video(visible, track.fps, prior_s, rng_for(seed, "clips", track.video_id), quota, retry_budget)
        for k, (a, z) in enumerate(zip(res.starts, res.ends)):
            rows.append((track.video_id, k, a, z, (z - a + 1) / track.fps))
        stop = stop_reason(res, quota)
        stats.append(dict(video_id=track.video_id, n_frames=n, candidates=res.candidates,
                          rejected_length=res.rejected_length, rejected_visibility=res.rejected_visibility,
                          rejected_overlap=res.rejected_overlap, accepted=res.accepted, reason=stop))
        bar.update()
    bar.close()
    clips = pd.DataFrame(rows, columns=CLIP_COLUMNS).astype(
        {"video_id": str, "clip_index": np.int32, "start_frame": np.int64, "end_frame": np.int64,
         "duration_s": np.float64})
    return clips, pd.DataFrame(stats, columns=STATS_COLUMNS)


def stop_reason(res, quota: int) -> str:
    """Why sampling of one video stopped, naming what really happened when it found nothing."""
    if res.accepted >= quota:
        return "quota"
    if res.accepted > 0:
        return "retry budget spent"
    if res.candidates and res.rejected_length == res.candidates:
        return "all candidates longer than the video"
    if res.candidates and res.rejected_length + res.rejected_visibility == res.candidates:
        return "no candidate with all face anchors >= tau on every frame"
    return "retry budget spent"


def check_enough_clips(stats: pd.DataFrame, min_fraction: float) -> None:
    """Fail an empty run, or one where fewer than ``min_fraction`` of the videos gave a clip, naming causes."""
    n_videos = len(stats)
    with_clips = int((stats["accepted"] > 0).sum())
    if n_videos and with_clips > 0 and with_clips >= min_fraction * n_videos:
        return
    empty = stats[stats["accepted"] == 0]
    by_reason = empty.groupby("reason")["video_id"].apply(list).sort_values(key=lambda s: -s.str.len())
    lines = [f"  {len(ids)} video(s): {reason} (e.g. {', '.join(ids[:3])})" for reason, ids in by_reason.items()]
    raise NoClipsError(
        f"the sampler found clips in {with_clips} of {n_videos} videos, fewer than "
        f"clips.min_video_fraction={min_fraction:g} of them; videos without clips, by reason:\n"
        + "\n".join(lines[:10]) + "\nLikely causes:\n" + "\n".join(f"  - {c}" for c in LIKELY_CAUSES))


def iter_tracks(video_ids: list[str], pose_dir: str | os.PathLike,
                video_dir: str | os.PathLike | None = None) -> Iterable[AnchorTrack]:
    """Anchor tracks of the videos, read one at a time (only the score column of each pose file)."""
    for vid in video_ids:
        meta = Path(video_dir) / f"{vid}.json" if video_dir is not None else None
        yield load_anchor_track(vid, Path(pose_dir) / f"{vid}.parquet", video_frame_count(meta))


def check_pose_files(video_ids: list[str], pose_dir: str | os.PathLike) -> None:
    """Fail before any work when a video of the manifest has no pose file."""
    missing = [v for v in video_ids if not (Path(pose_dir) / f"{v}.parquet").is_file()]
    if missing:
        raise FileNotFoundError(f"{pose_dir}: no pose file for {len(missing)} video(s), e.g. {missing[:5]}")


def summarise(stats: pd.DataFrame, clips: pd.DataFrame) -> str:
    """One paragraph for the log: totals, rejection shares, how many videos stopped why."""
    cand = int(stats["candidates"].sum())
    share = (lambda c: f"{100 * stats[c].sum() / cand:.1f}%" if cand else "n/a")
    reasons = stats["reason"].str.replace(r"^(pose|no frame).*", "unusable pose", regex=True).value_counts()
    return (f"{len(clips)} clips from {int((stats['accepted'] > 0).sum())}/{len(stats)} videos; "
            f"{cand} candidates (length {share('rejected_length')}, visibility {share('rejected_visibility')}, "
            f"overlap {share('rejected_overlap')} rejected); clips per video mean "
            f"{stats['accepted'].mean():.1f}, min {stats['accepted'].min()}, max {stats['accepted'].max()}; "
            f"stopped by: { {k: int(v) for k, v in reasons.items()} }; clip duration mean {clips['duration_s'].mean():.2f}s")


def sample_clips(pose_dir: str | os.PathLike, manifest_path: str | os.PathLike,
                 annotations_path: str | os.PathLike, out_clips: str | os.PathLike, out_stats: str | os.PathLike,
                 seed: int, params: dict | None = None, video_dir: str | os.PathLike | None = None) -> pd.DataFrame:
    """Sample clips of ALL manifest videos and write ``clips.parquet`` and ``sampler_stats.csv`` atomically."""
    p = resolve_step("sample_clips", params)
    manifest = load_manifest(manifest_path)
    ids = manifest["video_id"].tolist()
    check_pose_files(ids, pose_dir)
    annotations = load_intervals(annotations_path, manifest)
    if p["prior"] == "train_split":   # annotation frames at each video's own rate (its pose metadata)
        annotations = with_fps(annotations, pose_fps(annotation_video_ids(annotations), pose_dir))
    prior = load_prior(p["prior"], manifest, annotations, "their pose files hold it")
    log.info("duration prior: %d durations, mean %.2fs, range %.2f-%.2fs; quota %d, tau %.2f, retry budget %d",
             len(prior), prior.mean(), prior.min(), prior.max(), p["quota"], p["tau"], p["retry_budget"])
    clips, stats = sample_tracks(iter_tracks(ids, pose_dir, video_dir), prior, seed, p["quota"], p["tau"],
                                 p["retry_budget"], total=len(ids))
    log.info("summary: %s", summarise(stats, clips))
    check_enough_clips(stats, float(p["min_video_fraction"]))
    with atomic_path(out_clips) as tmp:
        clips.to_parquet(tmp, index=False)
    with atomic_path(out_stats) as tmp:
        stats.to_csv(tmp, index=False)
    return clips


def durations_figure(clips_path: str | os.PathLike, manifest_path: str | os.PathLike,
                     annotations_path: str | os.PathLike, out_png: str | os.PathLike,
                     params: dict | None = None, video_dir: str | os.PathLike | None = None) -> None:
    """Paper Fig. 4: the prior's durations against the pretraining clips' (unlabeled videos; all if none).

    The prior's frame numbers are converted at each annotated video's rate: from its metadata in ``video_dir``
    (``{video_id}.json``, what the workflow passes: a labeled video that gave no clip has one too), else from
    its sampled clips."""
    p = resolve_step("duration_figure", params)
    manifest = load_manifest(manifest_path)
    clips = pd.read_parquet(clips_path)
    annotations = load_intervals(annotations_path, manifest)
    ids = annotation_video_ids(annotations)
    if video_dir is not None:
        rates = video_fps(ids, video_dir)
    else:
        rates = clips_fps(clips[clips["video_id"].isin(ids)]) if ids else {}   # each clip row: frames and seconds
    prior = load_prior(p["prior"], manifest, with_fps(annotations, rates),
                       "their video metadata holds it" if video_dir is not None else
                       "it is read from their sampled clips, and they have none: give --video-dir")
    unlabeled = clips[clips["video_id"].isin(videos_of(manifest, "unlabeled"))]
    sampled = (unlabeled if len(unlabeled) else clips)["duration_s"].to_numpy()
    duration_figure(prior, sampled, out_png, max_s=float(p["figure_max_s"]))
    log.info("figure: %d prior durations (mean %.2fs) vs %d sampled clips (mean %.2fs) -> %s", len(prior),
             prior.mean(), len(sampled), sampled.mean() if len(sampled) else float("nan"), out_png)
