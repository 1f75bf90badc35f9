"""Writing the demo corpus: raw videos, ground-truth keypoints and the three dataset tables.

Each video is rendered by one worker from its own seeds (plan, events, motion, render), so the corpus is the
same whatever the number of workers and adding a video leaves the others unchanged. Every file is written
through ``atomic_path``: a failed run leaves nothing that looks finished.
"""

from __future__ import annotations

import io
import logging
import multiprocessing
import zipfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_path
from mgfm.common.digest import sha256_file
from mgfm.common.logs import Progress
from mgfm.common.seeding import rng_for
from mgfm.demo.encode import VideoWriter
from mgfm.demo.events import VideoEvents, plan_events
from mgfm.demo.motion import build_motion
from mgfm.demo.plan import FPS, VideoPlan, build_plan, demo_settings
from mgfm.demo.render import Shot, ground_truth
from mgfm.demo.skeleton import forward
from mgfm.demo.subject import make_framing, make_subject, make_venue
from mgfm.demo.taxonomy import taxonomy_table

log = logging.getLogger(__name__)

#: ``synthetic`` (an extra column, ignored by the contract) tells later stages these are the demo's renders.
MANIFEST_COLUMNS = ["video_id", "url", "sha256", "subject_id", "outcome", "subset", "split", "synthetic"]
ANNOTATION_COLUMNS = ["video_id", "class_id", "start_frame", "end_frame"]
BATCH = 64  # frames per pipe write


def raw_path(out_dir: Path, video_id: str) -> Path:
    return out_dir / "raw" / f"{video_id}.mp4"


def keypoints_path(out_dir: Path, video_id: str) -> Path:
    return out_dir / "keypoints" / f"{video_id}.npz"


def save_npz_deterministic(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Like ``np.savez_compressed`` but with fixed zip timestamps, so equal arrays give equal bytes."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in arrays.items():
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.asarray(value), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def load_ground_truth(path: str | Path) -> dict[str, np.ndarray]:
    """Read a ground-truth file written by ``render_video`` (keys: see ``render_video``)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


@dataclass(frozen=True)
class VideoResult:
    video_id: str
    sha256: str
    n_frames: int
    annotations: list[tuple[int, int, int]]  # class_id, start_frame, end_frame
    n_cut_in_frames: int


def simulate_video(cfg: dict, video: VideoPlan) -> tuple[VideoEvents, Shot]:
    """Events, motion, keypoints and the drawing setup of one video (no pixels drawn yet)."""
    seed = cfg["seed"]
    subject = make_subject(seed, video.subject_id)
    events = plan_events(cfg, video, subject)
    motion = build_motion(video.n_frames, FPS, subject, events.gestures,
                          rng_for(seed, "demo", video.video_id, "motion"))
    framing = make_framing(rng_for(seed, "demo", video.video_id, "framing"))
    pose = forward(motion, subject, framing, cfg["width"], cfg["height"])
    shot = Shot(subject, framing, make_venue(seed, video.venue), pose, events.cut_in_mask(video.n_frames),
                cfg["width"], cfg["height"], rng_for(seed, "demo", video.video_id, "render"))
    return events, shot


def render_video(cfg: dict, video: VideoPlan, out_dir: str | Path) -> VideoResult:
    """Render one video to ``raw/{id}.mp4`` and its ground truth to ``keypoints/{id}.npz``.

    Ground truth keys: ``xy`` float32 (N, 133, 2) pixels, ``visible`` uint8 (N, 133), ``cut_in`` bool (N,),
    ``cut_ins`` int64 (K, 2) inclusive intervals, ``gesture_class`` / ``gesture_start`` / ``gesture_end``
    int64 (M,) (inclusive frames), ``gesture_hand`` (M,) 'l' or 'r', ``fps``, ``width``, ``height``.
    """
    out_dir = Path(out_dir)
    events, shot = simulate_video(cfg, video)
    n = video.n_frames
    video_file = raw_path(out_dir, video.video_id)
    with atomic_path(video_file) as tmp:
        with VideoWriter(tmp, cfg["width"], cfg["height"], FPS, cfg["codec"], cfg["crf"]) as writer:
            batch = np.empty((BATCH, cfg["height"], cfg["width"], 3), np.uint8)
            for start in range(0, n, BATCH):
                k = min(BATCH, n - start)
                for j in range(k):
                    shot.frame(start + j, batch[j])
                writer.write(batch[:k])
    xy, vis = ground_truth(shot.pose, shot.cut_in)
    g = events.gestures
    arrays = {
        "xy": xy, "visible": vis, "cut_in": shot.cut_in,
        "cut_ins": np.array(events.cut_ins, dtype=np.int64).reshape(-1, 2),
        "gesture_class": np.array([x.class_id for x in g], dtype=np.int64),
        "gesture_start": np.array([x.start for x in g], dtype=np.int64),
        "gesture_end": np.array([x.end for x in g], dtype=np.int64),
        "gesture_hand": np.array([x.hand for x in g], dtype="<U1"),
        "fps": np.array(FPS), "width": np.array(cfg["width"]), "height": np.array(cfg["height"]),
    }
    with atomic_path(keypoints_path(out_dir, video.video_id)) as tmp:
        save_npz_deterministic(tmp, arrays)
    return VideoResult(video_id=video.video_id, sha256=sha256_file(video_file), n_frames=n,
                       annotations=[(x.class_id, x.start, x.end) for x in g],
                       n_cut_in_frames=int(shot.cut_in.sum()))


def _render_job(args: tuple[dict, VideoPlan, str]) -> VideoResult:
    import cv2

    cv2.setNumThreads(1)  # one process per video is the parallelism; keep each to one core
    return render_video(*args)


def generate_corpus(demo_cfg: dict, out_dir: str | Path, workers: int = 1) -> pd.DataFrame:
    """Generate the whole demo corpus under ``out_dir``; returns the manifest.

    Writes ``raw/{video_id}.mp4``, ``keypoints/{video_id}.npz``, then ``manifest.csv`` (``url`` is the
    ``file://`` URI of the raw video), ``annotations.csv`` (labeled videos only) and ``taxonomy.csv``.
    """
    cfg = demo_settings(demo_cfg)
    out_dir = Path(out_dir).resolve()
    plans = build_plan(cfg)
    total = sum(p.n_frames for p in plans)
    log.info("demo corpus: %d videos (%d labeled), %d frames (%.0f s) at %dx%d, %d worker(s)", len(plans),
             sum(p.subset == "labeled" for p in plans), total, total / FPS, cfg["width"], cfg["height"], workers)
    bar = Progress(total, "demo render", unit="frame")
    results: dict[str, VideoResult] = {}
    jobs = [(cfg, p, str(out_dir)) for p in plans]
    if workers <= 1:
        for job in jobs:
            r = _render_job(job)
            results[r.video_id] = r
            bar.update(r.n_frames)
    else:
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
            # longest videos first keeps the pool busy to the end
            order = sorted(jobs, key=lambda j: -j[1].n_frames)
            for r in pool.map(_render_job, order):
                results[r.video_id] = r
                bar.update(r.n_frames)
    bar.close()

    manifest = pd.DataFrame([{
        "video_id": p.video_id, "url": raw_path(out_dir, p.video_id).as_uri(), "sha256": results[p.video_id].sha256,
        "subject_id": p.subject_id, "outcome": p.outcome, "subset": p.subset, "split": p.split, "synthetic": "true",
    } for p in plans], columns=MANIFEST_COLUMNS)
    rows = [(p.video_id, c, s, e) for p in plans if p.subset == "labeled"
            for c, s, e in results[p.video_id].annotations]
    annotations = pd.DataFrame(rows, columns=ANNOTATION_COLUMNS).sort_values(["video_id", "start_frame"])
    for name, table in (("manifest", manifest), ("annotations", annotations), ("taxonomy", taxonomy_table())):
        with atomic_path(out_dir / f"{name}.csv") as tmp:
            table.to_csv(tmp, index=False, lineterminator="\n")
    n_train = int(annotations["video_id"].isin(manifest.loc[manifest["split"] == "train", "video_id"]).sum())
    log.info("demo corpus written to %s: %d annotated instances (%d train, %d test), %d cut-in frames",
             out_dir, len(annotations), n_train, len(annotations) - n_train,
             sum(r.n_cut_in_frames for r in results.values()))
    return manifest
