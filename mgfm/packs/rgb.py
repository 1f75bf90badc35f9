"""Packed RGB clip datasets: the same intervals (and clip ids) as the skeleton datasets, as uint8 (N, T, S, S, 3).

- Frames: T frames spread evenly over the interval (frame start + floor((t + 0.5) * n / T)); a clip shorter than
  T frames repeats frames, valid_len = min(n, T) distinct frames.
- Crop (``crop: person``): one square box per clip, so the crop does not jitter: per frame, the box of the
  confident upper-body keypoints (``box_source: keypoints``, tight around what the skeleton branch sees), grown to
  at least the upper body that the shoulders imply (``upper_body_box`` shoulder widths: arms the pose model scores
  low must not zoom the crop onto the face, where no hand gesture is visible), or the pose file's person box
  (``bbox``); the clip's box is the per-coordinate median over its frames, squared and
  enlarged by ``margin``; parts outside the image are black. A clip with no usable frame falls back to the
  full-frame crop (``box_source`` column records ``keypoints`` / ``bbox`` / ``full``). ``crop: full`` takes the
  central square of the frame (the person sits centrally in press conferences). Then resized to S x S (area).
- Views layout (datasets named in ``views.datasets``, the pretraining clips by default): what per-epoch views need
  (``mgfm.train.rgb.pretrain_views``). Frames: where the interval holds T frames at ``views.stride``, the frames at
  that stride for up to ``views.extra_frames`` + 1 starts, centred in the interval (``view_starts`` = how many
  starts fit); a shorter clip keeps the evenly spread frames above (one start). F = T + ``extra_frames`` slots,
  unused ones repeat the last frame. Pixels: the clip's square box grown about its centre to ``round(S x
  context)`` / S of its side, resized to that many pixels, so the centre S x S pixels are the person crop at the
  plain layout's scale. The evaluation datasets keep the plain layout, so their clips never change with these
  keys (one named in ``views.datasets`` gives its centre view to features, and fine-tuning's windows and test
  views read its starts and margin: ``mgfm.train.rgb.finetune_views``).
- Reading: each video is opened once and decoded forward only; clips closer than ``SEEK_GAP`` frames are read
  in one sequential span (decord decodes sequentially much faster than it seeks), farther ones after one seek.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from mgfm.packs.catalog import video_groups
from mgfm.core.packed import PackedWriter, clip_metadata
from mgfm.config import resolve
from mgfm.packs.skeleton import check_clips_inside_pose, load_catalog
from mgfm.common.logs import Progress
from mgfm.ingest.video import open_reader
from mgfm.core.layout import LEFT_SHOULDER, RIGHT_SHOULDER, UPPER_BODY
from mgfm.core.pose_store import read_pose

log = logging.getLogger("mgfm.clips")

#: Gaps between needed frames longer than this are seeked over; shorter ones are decoded through.
SEEK_GAP = 300
#: Frames of a video whose confident keypoints are fewer than this give no box.
MIN_BOX_JOINTS = 3
#: Where the shoulder line sits in the upper-body box (fraction of its height from the top): the head above,
#: the arms and hands on a table or lap below.
SHOULDER_LINE = 0.35


def sample_indices(starts: np.ndarray, ends: np.ndarray, num_frames: int) -> np.ndarray:
    """(n_clips, T) frame indices spread evenly over each inclusive interval."""
    starts = np.asarray(starts, np.int64)
    n = np.asarray(ends, np.int64) - starts + 1
    t = np.arange(num_frames) + 0.5
    return starts[:, None] + (t[None, :] * n[:, None] / num_frames).astype(np.int64)


def view_indices(starts: np.ndarray, ends: np.ndarray, num_frames: int, frames: int, stride: int
                 ) -> tuple[np.ndarray, np.ndarray]:
    """(n_clips, ``frames``) stored frame indices of the views layout and the number of valid starts per clip.

    A clip whose interval holds ``num_frames`` frames at ``stride`` stores the frames at that stride for as many
    starts as fit (at most ``frames - num_frames + 1``), centred in the interval; a shorter one stores the evenly
    spread frames of ``sample_indices`` and has one start. Unused slots repeat the last used frame."""
    starts = np.asarray(starts, np.int64)
    n = np.asarray(ends, np.int64) - starts + 1
    span = (num_frames - 1) * stride + 1
    long = n >= span
    count = np.where(long, np.minimum(frames - num_frames, np.maximum(n - span, 0) // stride) + 1, 1)
    used = num_frames + count - 1                                            # frames at the stride
    first = starts + (n - ((used - 1) * stride + 1)) // 2
    k = np.minimum(np.arange(frames)[None, :], used[:, None] - 1)
    strided = first[:, None] + k * stride
    even = sample_indices(starts, np.asarray(ends, np.int64), num_frames)
    short = even[:, np.minimum(np.arange(frames), num_frames - 1)]
    return np.where(long[:, None], strided, short), count


def context_boxes(boxes: np.ndarray, size: int, side: int) -> np.ndarray:
    """Square crop boxes (n, 4) x0, y0, s, s grown about their centres by ``side / size`` (integer pixels)."""
    grown = np.round(boxes[:, 2] * side / size).astype(np.int64)
    pad = (grown - boxes[:, 2]) // 2
    return np.stack([boxes[:, 0] - pad, boxes[:, 1] - pad, grown, grown], axis=1)


def frame_boxes(xy: np.ndarray, score: np.ndarray, bbox: np.ndarray, det_score: np.ndarray, source: str,
                min_score: float, upper_body: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame person box (N, 4) x0, y0, x1, y1 and whether the frame has one (N,).

    With ``source`` keypoints and ``upper_body`` > 0, a frame whose shoulders are both confident gets the union of
    its keypoint box and an upper-body box ``upper_body`` shoulder widths wide and tall, centred on the shoulders
    horizontally with the shoulder line at ``SHOULDER_LINE`` of its height."""
    if source == "bbox":
        ok = (det_score > 0) & (bbox[:, 2] > bbox[:, 0]) & (bbox[:, 3] > bbox[:, 1])
        return bbox.astype(np.float64), ok
    sub = list(UPPER_BODY)
    pts, conf = xy[:, sub].astype(np.float64), score[:, sub] >= min_score
    lo = np.where(conf[..., None], pts, np.inf).min(axis=1)
    hi = np.where(conf[..., None], pts, -np.inf).max(axis=1)
    ok = conf.sum(axis=1) >= MIN_BOX_JOINTS
    boxes = np.concatenate([np.where(ok[:, None], lo, 0), np.where(ok[:, None], hi, 0)], axis=1)
    if upper_body > 0:
        left, right = xy[:, LEFT_SHOULDER].astype(np.float64), xy[:, RIGHT_SHOULDER].astype(np.float64)
        both = ok & (score[:, LEFT_SHOULDER] >= min_score) & (score[:, RIGHT_SHOULDER] >= min_score)
        side = upper_body * np.linalg.norm(left - right, axis=1)
        cx, cy = (left[:, 0] + right[:, 0]) / 2, (left[:, 1] + right[:, 1]) / 2
        body = np.stack([cx - side / 2, cy - SHOULDER_LINE * side, cx + side / 2, cy + (1 - SHOULDER_LINE) * side], 1)
        boxes[both, :2] = np.minimum(boxes[both, :2], body[both, :2])
        boxes[both, 2:] = np.maximum(boxes[both, 2:], body[both, 2:])
    return boxes, ok


def clip_boxes(boxes: np.ndarray, ok: np.ndarray, starts: np.ndarray, ends: np.ndarray, margin: float,
               image_size: tuple[int, int], crop: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Square integer crop box (n, 4) per clip (x0, y0, side, side) and which source gave it."""
    w, h = image_size
    full_side = min(w, h)
    full = np.array([(w - full_side) // 2, (h - full_side) // 2, full_side, full_side], np.int64)
    out = np.tile(full, (len(starts), 1))
    used = np.full(len(starts), "full", dtype=object)
    if crop == "full":
        return out, used
    for i, (a, z) in enumerate(zip(np.asarray(starts), np.asarray(ends))):
        sel = ok[a:z + 1]
        if not sel.any():
            continue
        x0, y0, x1, y1 = np.median(boxes[a:z + 1][sel], axis=0)
        side = max(16.0, max(x1 - x0, y1 - y0) * margin)
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        out[i] = (int(round(cx - side / 2)), int(round(cy - side / 2)), int(round(side)), int(round(side)))
        used[i] = source
    return out, used


def crop_resize(img: np.ndarray, box: np.ndarray, size: int) -> np.ndarray:
    """Crop ``box`` (x0, y0, w, h; may leave the image: black there) and resize to size x size."""
    x0, y0, bw, bh = (int(v) for v in box)
    h, w = img.shape[:2]
    if x0 >= 0 and y0 >= 0 and x0 + bw <= w and y0 + bh <= h:
        patch = img[y0:y0 + bh, x0:x0 + bw]
    else:
        patch = np.zeros((bh, bw, 3), np.uint8)
        ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x0 + bw, w), min(y0 + bh, h)
        if ix1 > ix0 and iy1 > iy0:
            patch[iy0 - y0:iy1 - y0, ix0 - x0:ix1 - x0] = img[iy0:iy1, ix0:ix1]
    interp = cv2.INTER_AREA if bw > size else cv2.INTER_LINEAR
    return cv2.resize(patch, (size, size), interpolation=interp)


def read_needed_frames(reader, path: Path, needed: np.ndarray):
    """Yield (frame index, RGB frame) for the sorted unique ``needed`` indices, decoding forward once."""
    total = len(reader)
    if len(needed) and needed[-1] >= total:
        raise ValueError(f"video {path}: needs frame {int(needed[-1])} but has {total} frames")
    pos = None  # index of the frame the next reader.next() returns
    for f in needed.tolist():
        if pos is None or f < pos or f - pos > SEEK_GAP:
            reader.seek_accurate(f)
        else:
            for _ in range(f - pos):  # decoding through is ~3x faster than decord's skip_frames here
                reader.next()
        yield f, reader.next().asnumpy()
        pos = f + 1


def build_rgb_pack(name: str, out_dir: str | os.PathLike, video_dir: str | os.PathLike,
                      pose_dir: str | os.PathLike, manifest_path: str | os.PathLike,
                      annotations_path: str | os.PathLike | None = None, clips_path: str | os.PathLike | None = None,
                      params: dict | None = None) -> pd.DataFrame:
    """Write the packed RGB dataset ``name`` (uint8 (N, T, S, S, 3)); returns its metadata table."""
    p = resolve("rgb", params)
    catalog = load_catalog(name, manifest_path, annotations_path, clips_path)
    check_clips_inside_pose(catalog, name, pose_dir)
    groups = video_groups(catalog)
    for vid, _ in groups:
        if not (Path(video_dir) / f"{vid}.mp4").is_file():
            raise FileNotFoundError(f"dataset {name}: video {vid}: {Path(video_dir) / f'{vid}.mp4'} not found")
    T, S = p["num_frames"], p["size"]
    views = p["views"] if name in p["views"]["datasets"] else None
    F = T + views["extra_frames"] if views else T                       # stored frames and side per clip
    side = int(round(S * views["context"])) if views else S
    valid_len = np.zeros(len(catalog), np.int32)
    view_starts = np.ones(len(catalog), np.int64)
    box_used = np.empty(len(catalog), dtype=object)
    log.info("rgb dataset %s: %d clips from %d videos, %d frames of %dx%d, crop %s%s", name, len(catalog),
             len(groups), T, S, S, p["crop"], f"; views layout: {F} frames at stride {views['stride']}, "
             f"{side} px" if views else "")
    bar = Progress(len(catalog), f"rgb {name}", unit="clips", logger=log)
    with PackedWriter(out_dir, (len(catalog), F, side, side, 3), np.uint8) as writer:
        for vid, rows in groups:
            sel = catalog.iloc[rows]
            starts, ends = sel["start_frame"].to_numpy(), sel["end_frame"].to_numpy()
            pose = read_pose(Path(pose_dir) / f"{vid}.parquet", columns=["frame", "bbox", "det_score", "x", "y",
                                                                          "score"])
            video = Path(video_dir) / f"{vid}.mp4"
            reader = open_reader(video, num_threads=1)
            first = reader[0].shape
            size = (int(first[1]), int(first[0]))
            boxes, ok = frame_boxes(pose.xy, pose.score, pose.bbox, pose.det_score, p["box_source"],
                                    p["box_min_score"], p["upper_body_box"])
            crops, used = clip_boxes(boxes, ok, starts, ends, p["margin"], size, p["crop"], p["box_source"])
            if views:
                crops = context_boxes(crops, S, side)
                idx, view_starts[rows] = view_indices(starts, ends, T, F, views["stride"])
            else:
                idx = sample_indices(starts, ends, T)
            # which (clip, step) pairs each frame feeds, frames in decoding order
            flat = idx.reshape(-1)
            order = np.argsort(flat, kind="stable")
            needed, first_pos = np.unique(flat[order], return_index=True)
            bounds = np.append(first_pos, len(flat))
            for k, (f, img) in enumerate(read_needed_frames(reader, video, needed)):
                for pos in order[bounds[k]:bounds[k + 1]].tolist():
                    c, t = divmod(pos, F)
                    writer.data[rows[c], t] = crop_resize(img, crops[c], side)
            valid_len[rows] = np.minimum(ends - starts + 1, T)
            box_used[rows] = used
            del reader
            bar.update(len(rows))
        extra = {"box_source": box_used.astype(str), **({"view_starts": view_starts} if views else {})}
        meta = clip_metadata(catalog, valid_len, extra)
        layout = {"layout": "N,F,H,W,RGB views", "views": {"num_frames": T, "size": S, "frames": F, "side": side,
                                                           "stride": views["stride"], "context": views["context"]}
                  } if views else {"layout": "N,T,H,W,RGB"}
        writer.finish(meta, {"name": name, "modality": "rgb", **layout, "num_frames": T, "size": S, "params": p,
                             "videos": len(groups), "box_source_counts": meta["box_source"].value_counts().to_dict()})
    bar.close()
    return meta
