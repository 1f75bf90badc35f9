"""Per-window class probabilities of one video's pose file: the skeleton clips of every window built exactly as
the packed datasets build them (``mgfm.datasets.skeleton.clip_tensors``), fed to each member exactly as
fine-tuning fed it (``mgfm.train.features.prepare_clips``), fused with the ensemble's weights
(``mgfm.eval.ensemble.fuse``). The win/lose estimate runs the emotion aggregator on the pretrained encoders'
features of the visible, non-overlapping windows of the median length (the analogue of the sampled clips it
was trained on).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file

from mgfm.clips.visibility import load_anchor_track
from mgfm.common.logs import Progress
from mgfm.core.pose_store import read_pose, read_pose_meta
from mgfm.infer.bundle import BundleError, Member, emotion_dir, read_json
from mgfm.infer.windows import Windows, sliding_windows

log = logging.getLogger("mgfm.infer")


@dataclass
class VideoScores:
    """What spotting needs of one video: windows, fused probabilities (W, K), the face track, fps, a reason."""

    video_id: str
    windows: Windows
    probs: np.ndarray
    face: np.ndarray     # (n_frames,) smallest face-anchor score per frame
    fps: float
    n_frames: int
    width: int
    height: int
    reason: str = ""     # why the timeline is empty (no person, too short, bad pose file), "" otherwise


def read_video_pose(pose_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """(xy (N, 133, 2), score (N, 133), file metadata); frames must be 0..N-1."""
    meta = read_pose_meta(pose_path)
    pose = read_pose(pose_path, columns=["frame", "x", "y", "score"])
    if not np.array_equal(pose.frame, np.arange(len(pose.frame))):
        raise ValueError(f"{pose_path}: pose frames are not 0..{len(pose.frame) - 1}")
    return pose.xy, pose.score, meta


@torch.inference_mode()
def member_probs(members: list[Member], x: np.ndarray, valid_len: np.ndarray, batch_size: int) -> dict:
    """Softmax-ready logits per member name, (n, K) each, batched."""
    from mgfm.train.features import prepare_clips

    out = {}
    for m in members:
        chunks = []
        for s in range(0, len(x), batch_size):
            xb = torch.from_numpy(x[s:s + batch_size])
            vb = torch.from_numpy(valid_len[s:s + batch_size].astype(np.int64))
            chunks.append(m.model(prepare_clips(xb, vb, m.card)).float().numpy())
        out[m.name] = np.concatenate(chunks) if chunks else np.zeros((0, len(m.info["class_names"])), np.float32)
    return out


def fused_probs(logits: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of member probabilities, normalised so each row sums to 1."""
    from mgfm.eval.ensemble import fuse

    total = sum(float(weights[n]) for n in logits)
    return fuse(logits, weights) / max(total, 1e-12)


def score_video(video_id: str, pose_path: str | os.PathLike, spotter: dict, members: list[Member],
                batch_size: int) -> VideoScores:
    """Windows and fused probabilities of one video; an unusable video gets a reason and no visible window."""
    from mgfm.datasets.skeleton import clip_tensors

    meta = read_pose_meta(pose_path)
    track = load_anchor_track(video_id, pose_path)
    fps = float(meta.get("fps") or spotter["fps"])
    n = len(track.min_score)
    size = (int(meta.get("width", 0)), int(meta.get("height", 0)))
    k = len(spotter["class_names"])
    empty = Windows(*(np.zeros(0, np.int64),) * 3, np.zeros(0, bool))
    if track.reason:
        return VideoScores(video_id, empty, np.zeros((0, k)), track.min_score, fps, n, *size, track.reason)
    if abs(fps - float(spotter["fps"])) > 1e-3:
        raise ValueError(f"{pose_path}: pose at {fps} fps, the models' windows are in frames at {spotter['fps']} fps")
    lengths = spotter["window_frames"]
    if n < min(lengths):
        return VideoScores(video_id, empty, np.zeros((0, k)), track.min_score, fps, n, *size,
                           f"video has {n} frames ({n / fps:.1f} s), shorter than the shortest window "
                           f"({min(lengths)} frames, {min(lengths) / fps:.1f} s)")
    vis = track.visible(float(spotter["tau"]))
    windows = sliding_windows(n, lengths, int(spotter["stride_frames"]), vis, float(spotter["min_visible"]))
    probs = np.zeros((len(windows), k))
    reason = ""
    rows = np.flatnonzero(windows.visible)
    if len(rows) == 0:
        reason = (f"no person visible: no window has its face anchors >= tau={spotter['tau']} on "
                  f"{100 * spotter['min_visible']:.0f}% of its frames")
    else:
        xy, score, _ = read_video_pose(pose_path)
        bar = Progress(len(rows), f"windows {video_id}", unit="windows", logger=log)
        for s in range(0, len(rows), batch_size * 4):
            r = rows[s:s + batch_size * 4]
            x, vl, _ = clip_tensors(xy, score, windows.start[r], windows.end[r], spotter["clip_params"], size)
            probs[r] = fused_probs(member_probs(members, x, vl, batch_size), spotter["weights"])
            bar.update(len(r))
        bar.close()
    return VideoScores(video_id, windows, probs, track.min_score, fps, n, *size, reason)


@torch.inference_mode()
def win_probability(models_dir: str | os.PathLike, pose_path: str | os.PathLike, scores: VideoScores,
                    spotter: dict, batch_size: int) -> float | None:
    """P(win) of the video from the emotion aggregator, or None when it has no visible window."""
    from mgfm.datasets.skeleton import clip_tensors
    from mgfm.eval.emotion import AttentionAggregator, MeanAggregator
    from mgfm.models.artifact import load_encoder
    from mgfm.train.features import prepare_clips

    d = emotion_dir(models_dir)
    info = read_json(d / "emotion.json", "emotion model description")
    w = scores.windows
    median = int(np.argsort(spotter["window_frames"])[len(spotter["window_frames"]) // 2])
    rows = np.flatnonzero(w.visible & (w.length == median))
    if len(rows) == 0:
        return None
    picked, last_end = [], -1                     # non-overlapping, in temporal order, like sampled clips
    for r in rows[np.argsort(w.start[rows])]:
        if w.start[r] > last_end:
            picked.append(r)
            last_end = w.end[r]
    cfg = info["config"]
    picked = np.asarray(picked)
    if len(picked) > cfg["max_clips"]:
        picked = picked[np.linspace(0, len(picked) - 1, cfg["max_clips"]).round().astype(int)]
    xy, score, _ = read_video_pose(pose_path)
    x, vl, _ = clip_tensors(xy, score, w.start[picked], w.end[picked], spotter["clip_params"],
                            (scores.width, scores.height))
    feats = []
    for name in info["members"]:
        enc = load_encoder(Path(models_dir) / info["encoders"][name])
        f = [enc(prepare_clips(torch.from_numpy(x[s:s + batch_size]),
                               torch.from_numpy(vl[s:s + batch_size].astype(np.int64)), enc.card)).float()
             for s in range(0, len(x), batch_size)]
        feats.append(torch.cat(f))
    feat = torch.cat(feats, dim=1)
    state = load_file(str(d / "aggregator.safetensors"))
    mean, std = state.pop("feature_mean"), state.pop("feature_std")
    if feat.shape[1] != int(info["dim"]):
        raise BundleError(f"{d / 'emotion.json'}: aggregator expects {info['dim']}-d features, the encoders give "
                          f"{feat.shape[1]}")
    model = (MeanAggregator if cfg["aggregator"] == "mean" else AttentionAggregator)(int(info["dim"]))
    model.load_state_dict(state, strict=True)
    seq = torch.zeros(1, cfg["max_clips"], feat.shape[1])
    seq[0, :len(feat)] = (feat - mean) / std
    mask = torch.zeros(1, cfg["max_clips"], dtype=torch.bool)
    mask[0, :len(feat)] = True
    return float(torch.softmax(model.eval()(seq, mask), dim=1)[0, 1])
