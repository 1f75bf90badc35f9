"""Per-window class probabilities of one video: the skeleton clips of every window built from its pose file
exactly as the packed datasets build them (``mgfm.packs.skeleton.clip_tensors``), the RGB clips (when an RGB
member is in the spotter) from its normalised video exactly as the packed RGB datasets build them
(``mgfm.infer.rgb_windows``), each fed to its members exactly as fine-tuning fed them
(``mgfm.train.encoder_inputs.prepare_input``), fused with the ensemble's weights (``mgfm.eval.ensemble.fuse``). The win/lose estimate runs the emotion aggregator on the pretrained encoders'
features of the visible, non-overlapping windows of the median length (the analogue of the sampled clips it
was trained on).
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from mgfm.clips.visibility import load_anchor_track
from mgfm.common.accel import pick_device
from mgfm.common.logs import Progress
from mgfm.core.pose_store import read_pose, read_pose_meta
from mgfm.infer.bundle import BundleError, Member, emotion_dir
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
    timings: dict = field(default_factory=dict)    # seconds per modality's windows (skeleton_s, rgb_s)


def read_video_pose(pose_path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray, dict]:
    """(xy (N, 133, 2), score (N, 133), file metadata); frames must be 0..N-1."""
    meta = read_pose_meta(pose_path)
    pose = read_pose(pose_path, columns=["frame", "x", "y", "score"])
    if not np.array_equal(pose.frame, np.arange(len(pose.frame))):
        raise ValueError(f"{pose_path}: pose frames are not 0..{len(pose.frame) - 1}")
    return pose.xy, pose.score, meta


@torch.inference_mode()
def member_probs(members: list[Member], x: np.ndarray, valid_len: np.ndarray, batch_size: int) -> dict:
    """Softmax-ready logits per member name, (n, K) each, batched; ``x`` packed clips of the members' modality
    (skeleton (n, C, T, V) float, RGB (n, T, S, S, 3) uint8)."""
    from mgfm.train.encoder_inputs import prepare_input

    out = {}
    for m in members:
        dev = next(m.model.parameters()).device  # where load_members put it
        chunks = []
        for s in range(0, len(x), batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[s:s + batch_size])).to(dev)
            vb = torch.from_numpy(valid_len[s:s + batch_size].astype(np.int64)).to(dev)
            chunks.append(m.model(prepare_input(xb, vb, m.card)).float().cpu().numpy())
        out[m.name] = np.concatenate(chunks) if chunks else np.zeros((0, len(m.info["class_names"])), np.float32)
    return out


def fused_probs(logits: dict[str, np.ndarray], weights: dict[str, float]) -> np.ndarray:
    """Weighted sum of member probabilities, normalised so each row sums to 1."""
    from mgfm.eval.ensemble import fuse

    total = sum(float(weights[n]) for n in logits)
    return fuse(logits, weights) / max(total, 1e-12)


def window_logits(video_id: str, pose_path: str | os.PathLike, video: str | os.PathLike | None, spotter: dict,
                  members: list[Member], starts: np.ndarray, ends: np.ndarray, size: tuple[int, int],
                  batch_size: int) -> tuple[dict[str, np.ndarray], dict]:
    """Logits (n, K) per member of the windows ``starts..ends``, each modality's clips built once for all its
    members; and the seconds each modality took."""
    from mgfm.packs.skeleton import clip_tensors

    k = len(spotter["class_names"])
    n = len(starts)
    logits = {m.name: np.zeros((n, k), np.float32) for m in members}
    timings = {}
    skeleton = [m for m in members if m.modality == "skeleton"]
    rgb = [m for m in members if m.modality == "rgb"]
    if skeleton:
        t0 = time.perf_counter()
        xy, score, _ = read_video_pose(pose_path)
        bar = Progress(n, f"skeleton windows {video_id}", unit="windows", logger=log)
        for s in range(0, n, batch_size * 4):
            x, vl, _ = clip_tensors(xy, score, starts[s:s + batch_size * 4], ends[s:s + batch_size * 4],
                                    spotter["clip_params"], size)
            for name, v in member_probs(skeleton, x, vl, batch_size).items():
                logits[name][s:s + len(v)] = v
            bar.update(len(x))
        bar.close()
        timings["skeleton_s"] = time.perf_counter() - t0
    if rgb:
        from mgfm.infer.rgb_windows import rgb_window_batches

        if video is None:
            raise ValueError(f"{pose_path}: the spotter has RGB members ({', '.join(m.name for m in rgb)}), which "
                             "read the window frames from the normalised video, and no video was given")
        t0 = time.perf_counter()
        params = spotter["rgb_clip_params"]
        bar = Progress(n, f"rgb windows {video_id}", unit="windows", logger=log)
        for pos, clips in rgb_window_batches(video, pose_path, starts, ends, params, batch_size):
            vl = np.minimum(ends[pos] - starts[pos] + 1, int(params["num_frames"]))
            for name, v in member_probs(rgb, clips, vl, batch_size).items():
                logits[name][pos] = v
            bar.update(len(pos))
        bar.close()
        timings["rgb_s"] = time.perf_counter() - t0
    return logits, timings


def score_video(video_id: str, pose_path: str | os.PathLike, spotter: dict, members: list[Member],
                batch_size: int, video: str | os.PathLike | None = None) -> VideoScores:
    """Windows and fused probabilities of one video; an unusable video gets a reason and no visible window.
    ``video``: the normalised video, needed when an RGB member is in the spotter."""
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
    timings = {}
    if len(rows) == 0:
        reason = (f"no person visible: no window has its face anchors >= tau={spotter['tau']} on "
                  f"{100 * spotter['min_visible']:.0f}% of its frames")
    else:
        logits, timings = window_logits(video_id, pose_path, video, spotter, members, windows.start[rows],
                                        windows.end[rows], size, batch_size)
        probs[rows] = fused_probs(logits, spotter["weights"])
    return VideoScores(video_id, windows, probs, track.min_score, fps, n, *size, reason, timings)


@torch.inference_mode()
def win_probability(models_dir: str | os.PathLike, pose_path: str | os.PathLike, scores: VideoScores,
                    spotter: dict, batch_size: int) -> float | None:
    """P(win) of the video from the emotion aggregator, or None when it has no visible window."""
    from mgfm.packs.skeleton import clip_tensors
    from mgfm.eval.emotion import AttentionAggregator, MeanAggregator
    from mgfm.models.artifact import load_encoder
    from mgfm.train.features import prepare_clips

    from mgfm.infer.bundle import read_emotion_info
    from mgfm.models.weights import load_weights, meta_shapes

    d = emotion_dir(models_dir)
    info = read_emotion_info(models_dir)
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
    dev = pick_device()  # the encoders on the GPU when there is one; the small aggregator stays on the CPU
    for name in info["members"]:
        enc = load_encoder(Path(models_dir) / info["encoders"][name], device=dev)
        f = [enc(prepare_clips(torch.from_numpy(x[s:s + batch_size]).to(dev),
                               torch.from_numpy(vl[s:s + batch_size].astype(np.int64)).to(dev), enc.card)).float().cpu()
             for s in range(0, len(x), batch_size)]
        feats.append(torch.cat(f))
    feat = torch.cat(feats, dim=1)
    if feat.shape[1] != int(info["dim"]):
        raise BundleError(f"{d / 'emotion.json'}: aggregator expects {info['dim']}-d features, the encoders give "
                          f"{feat.shape[1]}")
    kind = MeanAggregator if cfg["aggregator"] == "mean" else AttentionAggregator
    with torch.device("meta"):
        expected = meta_shapes(kind(int(info["dim"])))
    dim = (int(info["dim"]),)
    try:
        state = load_weights(d / "aggregator.safetensors", {**expected, "feature_mean": dim, "feature_std": dim},
                             f"the {cfg['aggregator']} aggregator of {d / 'emotion.json'}")
    except ValueError as err:
        raise BundleError(str(err)) from err
    mean, std = state.pop("feature_mean"), state.pop("feature_std")
    model = kind(int(info["dim"]))
    model.load_state_dict(state, strict=True)
    seq = torch.zeros(1, cfg["max_clips"], feat.shape[1])
    seq[0, :len(feat)] = (feat - mean) / std
    mask = torch.zeros(1, cfg["max_clips"], dtype=torch.bool)
    mask[0, :len(feat)] = True
    return float(torch.softmax(model.eval()(seq, mask), dim=1)[0, 1])
