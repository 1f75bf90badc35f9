"""Spotting on videos: raw video -> the real normalisation and pose stages -> windows -> instances -> outputs.

Per video, in ``out_dir/<video_id>/``: ``instances.csv``, ``instances.json`` (the same rows plus metadata: models,
config hash, versions, timings) and ``report.html``. A video that cannot be read, shows no person or is shorter
than the shortest window gets a clear message, an empty timeline where that is the truth, and the next video
still runs. The real-time factor (video seconds per wall second) is logged with decode, pose and model split out.

A video file is checked as the ingest stage checks a source (``mgfm.ingest.download.normalise_checked``: allowed
containers and protocols only, the longest video stream rather than a cover picture, and a truncated file
refused against its container's duration). A video's folder is built under a temporary name and renamed when
complete; when a video fails, the folder an earlier run left for it is removed, so nothing stale looks current.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_path
from mgfm.common.logs import Progress
from mgfm.infer.bundle import Member, load_members, load_spotter
from mgfm.infer.calibrate import spotter_hash
from mgfm.infer.video_files import safe_id
from mgfm.infer.page import keyframes, render_page
from mgfm.infer.score import VideoScores, score_video, win_probability
from mgfm.infer.spotting import INSTANCE_COLUMNS, instances, proposals

log = logging.getLogger("mgfm.infer")

#: Errors that concern one video only (the others still run); a bad models folder is raised before any video.
VIDEO_ERRORS = (OSError, ValueError, RuntimeError)


@dataclass
class VideoResult:
    video_id: str
    source: str
    ok: bool
    message: str = ""
    n_instances: int = 0
    duration_s: float = 0.0
    timings: dict = field(default_factory=dict)



def versions() -> dict:
    import importlib.metadata

    import torch

    try:
        mgfm_version = importlib.metadata.version("mgfm")
    except importlib.metadata.PackageNotFoundError:
        mgfm_version = "unknown"
    return {"mgfm": mgfm_version, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


def write_outputs(out: Path, video_id: str, inst: pd.DataFrame, scores: VideoScores | None, meta: dict,
                  class_names: list[str], video: str | None) -> None:
    """instances.csv, instances.json and report.html of one video, each atomically."""
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "instances.csv") as tmp:
        inst.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(out / "instances.json") as tmp:
        tmp.write_text(json.dumps({**meta, "instances": inst.to_dict(orient="records")}, indent=2) + "\n")
    face = scores.face if scores is not None else np.zeros(0)
    page = render_page(video_id, inst, face, meta, class_names, keyframes(video, inst))
    with atomic_path(out / "report.html") as tmp:
        tmp.write_text(page)


def provenance(pose_path: str | os.PathLike, video: str | None, spotter: dict) -> dict:
    """What made this video's outputs: the pose model and detector (from its pose file, with sha256), the
    dataset the classifiers were trained on, and whether the demo pose model ran on a video that is no demo
    render (the page's banner)."""
    from mgfm.core.pose_store import read_pose_meta
    from mgfm.infer.provenance import is_demo_render, pose_identity

    identity = pose_identity(read_pose_meta(pose_path))
    demo_render = is_demo_render(video)
    return {"pose": identity, "demo_render": demo_render,
            "demo_pose_on_real_video": identity["demo_model"] and not demo_render,
            "trained_on": spotter.get("trained_on", {"dataset": "not recorded", "demo": None})}


def video_truth(truth: pd.DataFrame, inst: pd.DataFrame, props: pd.DataFrame, spotter: dict, fps: float,
                video_id: str) -> dict:
    """A test video's annotated instances (seconds and class names) and its own scores, by the evaluation's
    scorer (P/R/F1 at each tIoU, mAP): what its page shows beside the predictions."""
    from mgfm.infer.metrics import spotting_metrics

    names = spotter["class_names"]
    gt = truth[["start_frame", "end_frame", "class_id"]].astype(int).sort_values(["start_frame", "end_frame"])
    rows = [{"start_frame": int(r.start_frame), "end_frame": int(r.end_frame), "start_s": r.start_frame / fps,
             "end_s": (r.end_frame + 1) / fps, "class_id": int(r.class_id), "class_name": names[int(r.class_id)]}
            for r in gt.itertuples()]
    m = spotting_metrics(inst.assign(video_id=video_id), props.assign(video_id=video_id),
                         gt.assign(video_id=video_id), spotter["tious"], names, spotter["scorer"])
    scores = {t: {k: r[k] for k in ("precision", "recall", "f1", "map")} for t, r in m["tiou"].items()}
    return {"instances": rows, "scorer": m["scorer"], "scores": scores, "map_mean": m["map_mean"]}


def spot_pose(video_id: str, pose_path: str | os.PathLike, models_dir: str | os.PathLike, spotter: dict,
              members: list[Member], out_dir: str | os.PathLike, batch_size: int, video: str | None = None,
              timings: dict | None = None, annotate: bool = False, video_dir: str | os.PathLike | None = None,
              source: str | None = None, extra: dict | None = None, truth: pd.DataFrame | None = None
              ) -> tuple[VideoScores, pd.DataFrame, pd.DataFrame, dict]:
    """Spot one video from its pose file; write its outputs into ``video_dir`` (default ``out_dir/<video_id>``;
    ``annotate``: annotated.mp4 too, needs ``video``); return (window scores, ranked proposals, instances,
    metadata). ``source``: the video path to record (default ``video``), ``extra``: more metadata fields;
    ``truth``: a test video's annotated instances, shown and scored on its page."""
    from mgfm.infer.provenance import DEMO_POSE_BANNER, likely_cause
    video_dir = Path(video_dir) if video_dir is not None else Path(out_dir) / video_id
    t0 = time.perf_counter()
    sc = score_video(video_id, pose_path, spotter, members, batch_size, video)
    props = proposals(sc.probs, sc.windows, spotter["merge"])
    inst = instances(props, float(spotter["threshold"]), sc.fps, spotter["class_names"])
    win = None
    if not sc.reason:
        win = win_probability(models_dir, pose_path, sc, spotter, batch_size)
    timings = {**(timings or {}), **{f"windows_{k}": v for k, v in sc.timings.items()},
               "model_s": time.perf_counter() - t0}
    if annotate and video is not None:
        from mgfm.infer.annotate import write_annotated_video
        from mgfm.infer.score import read_video_pose

        t1 = time.perf_counter()
        xy, score, _ = read_video_pose(pose_path)
        write_annotated_video(video, xy, score, inst, sc.fps, video_dir / "annotated.mp4")
        timings["annotate_s"] = time.perf_counter() - t1
    meta = {"video_id": video_id, "source": source or str(video or pose_path), **(extra or {}), "fps": sc.fps,
            "n_frames": sc.n_frames,
            "duration_s": sc.n_frames / sc.fps if sc.fps else 0.0, "reason": sc.reason,
            "n_windows": int(len(sc.windows)), "n_visible_windows": int(sc.windows.visible.sum()),
            "threshold": float(spotter["threshold"]), "tau": float(spotter["tau"]),
            "win_probability": win, "members": [m["name"] for m in spotter["members"]],
            "weights": spotter["weights"], "models_dir": str(models_dir), "config_hash": spotter_hash(spotter),
            "versions": versions(), "timings_s": timings, "columns": INSTANCE_COLUMNS,
            **provenance(pose_path, video, spotter)}
    meta["likely_cause"] = likely_cause(sc.reason, meta["pose"], meta["demo_render"], sc.face,
                                        float(spotter["tau"])) if len(inst) == 0 else ""
    if truth is not None:
        meta["truth"] = video_truth(truth, inst, props, spotter, sc.fps, video_id)
    if meta["demo_pose_on_real_video"]:
        log.warning("video %s: %s", video_id, DEMO_POSE_BANNER)
    if sc.reason:
        log.warning("video %s: empty timeline: %s%s", video_id, sc.reason,
                    f"; {meta['likely_cause']}" if meta["likely_cause"] else "")
    write_outputs(video_dir, video_id, inst, sc, meta, spotter["class_names"], video)
    return sc, props, inst, meta


def prepare_video(src: Path, work: Path, video_id: str, spotter: dict, threads: int,
                  pose: dict | None = None) -> tuple[Path, Path, dict]:
    """The real stages on one raw file: the ingest stage's normalisation and checks, then pose estimation with
    ``pose`` (the pose section ``mgfm.infer.integrity.pose_settings`` chose; default: the spotter's, as recorded);
    returns (normalised video, pose file, timings)."""
    from mgfm.config.sections import from_partial
    from mgfm.ingest.download import DownloadParams, normalise_checked
    from mgfm.pose.extract import extract_pose

    work.mkdir(parents=True, exist_ok=True)
    video, meta_path, pose_path = work / "video.mp4", work / "video.json", work / "pose.parquet"
    t0 = time.perf_counter()
    with atomic_path(video) as tmp:
        _, probed = normalise_checked(src, tmp, from_partial(DownloadParams, "download", spotter["download"]), threads)
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps({"video_id": video_id, **probed, "synthetic": False}, indent=2) + "\n")
    t1 = time.perf_counter()
    extract_pose(video, meta_path, pose_path, spotter["pose"] if pose is None else pose, threads=threads)
    return video, pose_path, {"decode_s": t1 - t0, "pose_s": time.perf_counter() - t1}


def input_problem(src: str) -> str | None:
    """Why ``src`` cannot be spotted before anything is read (not a file, a folder, a url), or None."""
    path = Path(src)
    if "://" in src and not path.exists():
        return f"{src}: mgfm infer reads local video files only (download it first, or list it in a manifest)"
    if path.is_dir():
        return f"{src}: a folder, not a video file (give the files in it, or --video-dir {src})"
    if not path.exists():
        return f"{src}: no such file"
    if not path.is_file():
        return f"{src}: not a regular file (a device, pipe or socket)"
    return None


def infer_videos(videos: list[str], models_dir: str | os.PathLike, out_dir: str | os.PathLike,
                 batch_size: int = 256, threads: int = 1, annotate: bool = False,
                 pose: dict | None = None, pose_options: dict | None = None) -> list[VideoResult]:
    """Spot every video file; one failing video is reported and skipped, never stops the others.
    ``annotate``: also the annotated video (``annotated.mp4``) of each. ``pose``: the pose section to run (the
    user's; default the spotter's recorded one, which is allowed only when it selects no code);
    ``pose_options``: the user's choice as ``mgfm infer``'s options give it (``mgfm.infer.pose_choice``)."""
    from mgfm.common.atomic import atomic_dir
    from mgfm.infer.bundle import BundleError
    from mgfm.infer.integrity import pose_settings
    from mgfm.infer.pose_choice import user_pose_section

    spotter = load_spotter(models_dir)          # a wrong models folder fails here, naming the file
    if pose_options and any(pose_options.values()):
        pose = user_pose_section(models_dir, spotter["pose"], **pose_options)
    pose = pose_settings(spotter, Path(models_dir) / "spotter.json", pose, BundleError)
    members = load_members(models_dir, spotter)
    out_dir = Path(out_dir)
    taken: set[str] = set()
    results = []
    total_video, total_wall = 0.0, 0.0
    bar = Progress(len(videos), "infer", unit="videos", logger=log, interval=0.0)
    for i, src in enumerate(videos, 1):
        vid = safe_id(src, taken)
        final = out_dir / vid
        t0 = time.perf_counter()
        try:
            problem = input_problem(str(src))
            if problem:
                raise FileNotFoundError(problem)
            with atomic_dir(final) as tmp:          # renamed onto out_dir/<id> only when every output is written
                video, pose_file, timings = prepare_video(Path(src), tmp / "work", vid, spotter, threads, pose)
                _, _, inst, meta = spot_pose(vid, pose_file, models_dir, spotter, members, out_dir, batch_size,
                                             str(video), timings, annotate, video_dir=tmp,
                                             source=str(final / "work" / "video.mp4"), extra={"input": str(src)})
            res = VideoResult(vid, str(src), True, meta["reason"], len(inst), meta["duration_s"], meta["timings_s"])
        except VIDEO_ERRORS as err:
            stale = final.exists()
            if stale:                               # an earlier run's outputs must not pass for this run's
                shutil.rmtree(final, ignore_errors=True)
            log.error("video %d/%d %s: skipped: %s%s", i, len(videos), src, err,
                      f" (the outputs an earlier run left in {final} were removed)" if stale else "")
            results.append(VideoResult(vid, str(src), False, str(err)))
            bar.update()
            continue
        wall = time.perf_counter() - t0
        total_video, total_wall = total_video + res.duration_s, total_wall + wall
        rtf = res.duration_s / max(wall, 1e-9)
        log.info("video %d/%d %s: %d instances, %.1f s of video in %.1f s (real-time factor %.2f; decode %.1f s, "
                 "pose %.1f s, model %.1f s)%s", i, len(videos), vid, res.n_instances, res.duration_s, wall, rtf,
                 timings["decode_s"], timings["pose_s"], res.timings["model_s"],
                 f"; {res.message}" if res.message else "")
        results.append(res)
        bar.update()
    bar.close()
    if total_wall:
        log.info("%d videos: %.1f s of video in %.1f s, real-time factor %.2f", len(videos), total_video, total_wall,
                 total_video / total_wall)
    return results
