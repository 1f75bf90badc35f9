"""Accuracy of a pose model on held-out demo frames, measured end to end through the onnx backend.

Metrics (image pixels, ground truth from the demo renderer): mean pixel error and PCK@0.05 (error below 5% of
the longer side of the person's visible-keypoint box) per keypoint group, over visible keypoints of frames
showing the person; and the mean face-anchor score on visible vs cut-in (no person) frames, which is what the
clip sampler's tau = 0.3 threshold separates.

    python -m mgfm.demo.pose_model.evaluate --samples 600 --seed 99
"""

from __future__ import annotations

import argparse
import functools
import json
import os
from pathlib import Path

import numpy as np

from mgfm.core import layout as L

GROUPS = {
    "body": tuple(range(0, 17)),
    "face_anchors": L.FACE_ANCHORS,
    "face": tuple(range(L.FACE.start, L.FACE.stop)),
    "hands": tuple(range(L.LEFT_HAND.start, L.RIGHT_HAND.stop)),
}


def pose_metrics(pred_xy: np.ndarray, pred_score: np.ndarray, gt_xy: np.ndarray, gt_vis: np.ndarray,
                 tau: float = 0.3) -> dict:
    """Per-group mean error / PCK@0.05 and face-anchor score statistics (see module docstring)."""
    vis = gt_vis.astype(bool)
    person = vis.any(axis=1)
    err = np.linalg.norm(pred_xy - gt_xy, axis=-1)
    size = np.zeros(len(gt_xy), np.float32)
    for i in np.nonzero(person)[0]:
        pts = gt_xy[i][vis[i]]
        size[i] = max(np.ptp(pts[:, 0]), np.ptp(pts[:, 1]), 1.0)
    hit = err < 0.05 * size[:, None]
    out: dict = {"frames": int(len(gt_xy)), "person_frames": int(person.sum()), "cut_in_frames": int((~person).sum()),
                 "mean_person_box_px": float(size[person].mean()) if person.any() else 0.0}
    for name, idx in GROUPS.items():
        m = vis[:, list(idx)] & person[:, None]
        e, h = err[:, list(idx)][m], hit[:, list(idx)][m]
        out[name] = {"mean_px_error": float(e.mean()) if e.size else float("nan"),
                     "median_px_error": float(np.median(e)) if e.size else float("nan"),
                     "pck@0.05": float(h.mean()) if h.size else float("nan"), "n": int(e.size)}
    anchors = list(L.FACE_ANCHORS)
    a_vis = vis[:, anchors] & person[:, None]
    a_score = pred_score[:, anchors]
    out["face_anchor_score"] = {
        "visible_mean": float(a_score[a_vis].mean()) if a_vis.any() else float("nan"),
        "visible_frac_above_tau": float((a_score[a_vis] >= tau).mean()) if a_vis.any() else float("nan"),
        "hidden_in_person_frames_mean": float(a_score[~a_vis & person[:, None]].mean())
        if (~a_vis & person[:, None]).any() else float("nan"),
        "cut_in_mean": float(a_score[~person].mean()) if (~person).any() else float("nan"),
        "cut_in_frac_above_tau": float((a_score[~person] >= tau).any(axis=1).mean()) if (~person).any() else float("nan"),
        "tau": tau,
    }
    all_hidden = ~vis & person[:, None]
    out["hidden_keypoint_score_mean"] = float(pred_score[all_hidden].mean()) if all_hidden.any() else float("nan")
    return out


@functools.lru_cache(maxsize=2)
def _load(model: str, threads: int):
    from mgfm.pose.backends.onnx_backend import load_onnx_backend
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams

    return load_onnx_backend(from_partial(PoseParams, "pose", {"model": model}), threads)


def predict_frames(model: str | os.PathLike, frames: np.ndarray, threads: int = 2,
                   batch: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Whole-frame-box predictions with the onnx backend, exactly as the pose stage runs the demo model."""
    backend = _load(str(model), threads)
    h, w = frames.shape[1:3]
    xs, ss = [], []
    for i in range(0, len(frames), batch):
        f = frames[i:i + batch]
        x, s = backend.estimate(f, np.tile(np.array([0, 0, w, h], np.float32), (len(f), 1)))
        xs.append(x)
        ss.append(s)
    return np.concatenate(xs), np.concatenate(ss)


def evaluate_videos(model: str | os.PathLike, videos: list[Path], keypoints_dir: Path, threads: int = 2,
                    every: int = 1) -> dict:
    """Metrics over demo corpus videos (H.264, as the pose stage sees them) against their GT ``.npz``.

    The corpus subjects and venues are never used for training, so these are held-out videos."""
    from mgfm.ingest.video import iter_frames

    preds, scores, gts, viss = [], [], [], []
    for video in videos:
        gt = np.load(keypoints_dir / f"{video.stem}.npz")
        for idx, frames in iter_frames(video, batch_size=64):
            keep = idx % every == 0
            if not keep.any():
                continue
            p, s = predict_frames(model, frames[keep], threads)
            preds.append(p)
            scores.append(s)
            gts.append(gt["xy"][idx[keep]])
            viss.append(gt["visible"][idx[keep]])
    out = pose_metrics(np.concatenate(preds), np.concatenate(scores), np.concatenate(gts), np.concatenate(viss))
    out["videos"] = [v.stem for v in videos]
    return out


def main(argv: list[str] | None = None) -> None:
    from mgfm.pose.params import DEMO_MODEL

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(DEMO_MODEL))
    ap.add_argument("--samples", type=int, default=600)
    ap.add_argument("--seed", type=int, default=99, help="held-out render seed (training uses another)")
    ap.add_argument("--videos", nargs="*", help="demo corpus videos to evaluate on instead of rendered frames")
    ap.add_argument("--keypoints-dir", default="results/demo/keypoints", help="their GT .npz files")
    ap.add_argument("--every", type=int, default=1, help="evaluate every k-th frame of the videos")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    if args.videos:
        result = evaluate_videos(Path(args.model), [Path(v) for v in args.videos], Path(args.keypoints_dir),
                                 args.threads, args.every)
    else:
        from mgfm.demo.render import render_training_samples

        frames, xy, vis = render_training_samples(args.samples, args.seed, cut_in_fraction=0.15)
        pred, score = predict_frames(Path(args.model), frames, args.threads)
        result = pose_metrics(pred, score, xy, vis)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
