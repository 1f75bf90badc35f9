"""Skeleton clip tensors (paper Eq. 12 and its preprocessing paragraph) and the packed skeleton datasets.

One code path, ``clip_tensors``, turns any (video, start, end) into the model input, for sampled clips and
annotated MG instances alike:
- joints: ``mgfm.core.layout.UPPER_BODY`` (63: body 0-10, ten face landmarks, both hands);
- person-centric coordinates (paper: "normalized to a canonical image scale and centered with respect to the
  shoulder reference"): minus the shoulder midpoint, the median over the clip's frames where both shoulders are
  confident (a per-clip reference keeps the person's own motion, such as leaning back, inside the clip, and the
  median ignores a few bad frames), then divided by the image's longer side (``scale: image``: a canonical
  image whose longer side is 1, aspect kept, the same numbers at 720p and 1080p) or by the clip's median
  shoulder width (``scale: shoulder_width``, the other reading: every person the same size). A clip without
  one confident shoulder frame uses the video's median reference; a video without any uses the image centre
  (and, for shoulder-width scaling, a third of the shorter image side); ``norm_source`` records which;
- joints scored below ``joint_min_score`` get coordinates 0 (the reference point): an undetected joint's guessed
  position is noise, and its score channel still says it is missing;
- channels (x, y, score); fixed length T: a clip of n <= T frames is copied and zero-padded (score 0 marks the
  padding too), valid_len = n; a longer clip is cut to its first T frames (``long_clips: truncate``, the
  paper's "padded or truncated to a fixed temporal length") or resampled to T frames spread evenly over the
  whole interval (``resample``: an 80 s MG keeps its whole course); valid_len = T.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.packs.catalog import SAMPLED, dataset_clips, video_groups
from mgfm.core.packed import PackedWriter, clip_metadata
from mgfm.config import resolve
from mgfm.clips.tables import load_annotations, load_manifest
from mgfm.common.logs import Progress
from mgfm.core.layout import NUM_JOINTS, SUBSET_SHOULDERS, UPPER_BODY
from mgfm.core.pose_store import read_pose, read_pose_meta

log = logging.getLogger("mgfm.clips")

CHANNELS = ("x", "y", "score")


def frame_rows(starts: np.ndarray, ends: np.ndarray, num_frames: int, long_clips: str = "resample"
               ) -> tuple[np.ndarray, np.ndarray]:
    """Frame index per output step (n_clips, T) and its validity mask; see the module docstring for the rule."""
    starts = np.asarray(starts, np.int64)
    n = np.asarray(ends, np.int64) - starts + 1
    t = np.arange(num_frames)
    offset = np.broadcast_to(t, (len(n), num_frames)).copy()
    long = n > num_frames
    if long_clips == "resample":
        offset[long] = ((t + 0.5)[None, :] * n[long, None] / num_frames).astype(np.int64)
    valid = t[None, :] < np.minimum(n, num_frames)[:, None]
    return np.where(valid, starts[:, None] + offset, 0), valid


def _nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows: no confident frame, handled by the caller
        return np.nanmedian(values, axis=axis)


def shoulder_reference(xy: np.ndarray, score: np.ndarray, valid: np.ndarray, min_score: float
                       ) -> tuple[np.ndarray, np.ndarray]:
    """Median shoulder midpoint (..., 2) and width (...) over confident frames of axis -3 / -2 (NaN if none).

    ``xy`` (..., T, V, 2), ``score`` (..., T, V), ``valid`` (..., T) in subset joint order.
    """
    ls, rs = SUBSET_SHOULDERS
    mid = (xy[..., ls, :] + xy[..., rs, :]) / 2
    width = np.linalg.norm(xy[..., ls, :] - xy[..., rs, :], axis=-1)
    ok = valid & (score[..., ls] >= min_score) & (score[..., rs] >= min_score) & (width > 1.0)
    centre = _nanmedian(np.where(ok[..., None], mid, np.nan), axis=-2)
    scale = _nanmedian(np.where(ok, width, np.nan), axis=-1)
    return centre, scale


def check_image_size(scale: str, image_size: tuple[int, int], where: str) -> None:
    """Image-scale normalisation (``skeleton.scale``) needs the frame size (the pose file's width and height)."""
    if scale == "image" and min(image_size) <= 0:
        raise ValueError(f"{where}: frame size unknown (width x height {image_size[0]} x {image_size[1]} in the "
                         "pose file's metadata); skeleton.scale 'image' divides by it: re-run pose, or set "
                         "skeleton.scale: shoulder_width")


def clip_tensors(xy: np.ndarray, score: np.ndarray, starts: np.ndarray, ends: np.ndarray, params: dict,
                 image_size: tuple[int, int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Model inputs of a video's clips: (n, 3, T, 63) float32, valid_len (n,), norm_source (n,).

    ``xy`` (N, 133, 2) and ``score`` (N, 133) are the video's pose rows, row f = frame f; clips must lie inside.
    ``image_size`` (width, height) of the video's frames.
    """
    p = resolve("skeleton", params)
    check_image_size(p["scale"], image_size, "skeleton clips")
    T = p["num_frames"]
    sub = list(UPPER_BODY)
    vxy = xy[:, sub].astype(np.float32)
    vs = np.nan_to_num(score[:, sub].astype(np.float32), nan=0.0)  # a NaN score means "not detected"
    rows, valid = frame_rows(starts, ends, T, p["long_clips"])
    cxy = vxy[rows]  # (n, T, V, 2)
    cs = np.where(valid[..., None], vs[rows], 0.0).astype(np.float32)
    centre, scale = shoulder_reference(cxy, cs, valid, p["shoulder_min_score"])
    source = np.full(len(rows), "clip", dtype=object)
    missing = ~np.isfinite(scale)
    if missing.any():
        vcentre, vscale = shoulder_reference(vxy, vs, np.ones(len(vxy), bool), p["shoulder_min_score"])
        if np.isfinite(vscale):
            centre[missing], scale[missing], source[missing] = vcentre, vscale, "video"
        else:
            w, h = image_size
            centre[missing], scale[missing], source[missing] = (w / 2, h / 2), min(w, h) / 3, "image"
    if p["scale"] == "image":
        scale = np.full(len(rows), float(max(image_size)), np.float32)
    out = np.zeros((len(rows), 3, T, NUM_JOINTS), np.float32)
    norm = (cxy - centre[:, None, None, :]) / scale[:, None, None, None]
    keep = (cs >= p["joint_min_score"]) & np.isfinite(norm).all(axis=-1)
    out[:, 0] = np.where(keep, norm[..., 0], 0.0)
    out[:, 1] = np.where(keep, norm[..., 1], 0.0)
    out[:, 2] = cs
    return out, valid.sum(axis=1).astype(np.int32), source


def check_clips_inside_pose(catalog: pd.DataFrame, name: str, pose_dir: str | os.PathLike) -> None:
    """Before any work: every clip must lie inside its video's pose frames (from the file footers only)."""
    for vid, rows in video_groups(catalog):
        path = Path(pose_dir) / f"{vid}.parquet"
        if not path.is_file():
            raise FileNotFoundError(f"dataset {name}: video {vid}: pose file not found: {path}")
        n = int(read_pose_meta(path).get("n_frames", -1))
        sel = catalog.iloc[rows]
        bad = sel[(sel["start_frame"] < 0) | (sel["end_frame"] >= n)]
        if len(bad):
            r = bad.iloc[0]
            where = f"annotation row {int(r['_row']) + 1}" if "_row" in bad.columns else f"clip {r['clip_id']}"
            raise ValueError(f"dataset {name}: {where} (video {vid}, frames {r['start_frame']}..{r['end_frame']}) "
                             f"is outside the pose frames 0..{n - 1} of {path}")


def load_catalog(name: str, manifest_path: str | os.PathLike, annotations_path: str | os.PathLike | None,
                 clips_path: str | os.PathLike | None) -> pd.DataFrame:
    """The named dataset's clip list from the tables (and the sampled clip table for sampled datasets)."""
    manifest = load_manifest(manifest_path)
    annotations = clips = None
    if name in SAMPLED:
        if clips_path is None:
            raise ValueError(f"dataset {name}: needs --clips (the sampled clip table)")
        clips = pd.read_parquet(clips_path)
    else:
        if annotations_path is None:
            raise ValueError(f"dataset {name}: needs --annotations")
        annotations = load_annotations(annotations_path, manifest)
    return dataset_clips(name, manifest, annotations, clips)


def _pose_rows(vid: str, path: Path, name: str) -> tuple[np.ndarray, np.ndarray, tuple[int, int]]:
    """(xy, score) indexed by frame number, read once per video; frames must be 0..n-1."""
    meta = read_pose_meta(path)
    pose = read_pose(path, columns=["frame", "x", "y", "score"])
    if not np.array_equal(pose.frame, np.arange(len(pose.frame))):
        raise ValueError(f"dataset {name}: video {vid}: pose frames of {path} are not 0..{len(pose.frame) - 1}")
    return pose.xy, pose.score, (int(meta.get("width", 0)), int(meta.get("height", 0)))


def build_skeleton_pack(name: str, out_dir: str | os.PathLike, pose_dir: str | os.PathLike,
                           manifest_path: str | os.PathLike, annotations_path: str | os.PathLike | None = None,
                           clips_path: str | os.PathLike | None = None, params: dict | None = None) -> pd.DataFrame:
    """Write the packed skeleton dataset ``name`` (float32 (N, 3, T, 63)); returns its metadata table."""
    p = resolve("skeleton", params)
    catalog = load_catalog(name, manifest_path, annotations_path, clips_path)
    check_clips_inside_pose(catalog, name, pose_dir)
    T = p["num_frames"]
    valid_len = np.zeros(len(catalog), np.int32)
    source = np.empty(len(catalog), dtype=object)
    groups = video_groups(catalog)
    log.info("skeleton dataset %s: %d clips from %d videos, T=%d, %d joints", name, len(catalog), len(groups), T,
             NUM_JOINTS)
    bar = Progress(len(catalog), f"skeleton {name}", unit="clips", logger=log)
    with PackedWriter(out_dir, (len(catalog), 3, T, NUM_JOINTS), np.float32) as writer:
        for vid, rows in groups:
            xy, score, size = _pose_rows(vid, Path(pose_dir) / f"{vid}.parquet", name)
            check_image_size(p["scale"], size, f"dataset {name}: video {vid}: {Path(pose_dir) / f'{vid}.parquet'}")
            sel = catalog.iloc[rows]
            data, vl, src = clip_tensors(xy, score, sel["start_frame"].to_numpy(), sel["end_frame"].to_numpy(), p,
                                         size)
            writer.data[rows] = data
            valid_len[rows], source[rows] = vl, src
            bar.update(len(rows))
        meta = clip_metadata(catalog, valid_len, {"norm_source": source.astype(str)})
        counts = meta["norm_source"].value_counts().to_dict()
        writer.finish(meta, {"name": name, "modality": "skeleton", "channels": list(CHANNELS),
                             "joints": list(UPPER_BODY), "num_frames": T, "params": p,
                             "norm_source_counts": counts, "videos": len(groups)})
    bar.close()
    log.info("skeleton dataset %s: normalisation reference %s; mean valid_len %.1f", name, counts,
             float(valid_len.mean()) if len(valid_len) else 0.0)
    return meta
