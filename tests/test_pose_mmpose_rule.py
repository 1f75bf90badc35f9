"""The `pose` rule with pose.backend: mmpose, through Snakemake, on two demo videos (the paper's pose path).

Runs in the mmpose environment only (see tests/support/mmpose_env.py). The pinned RTMW-x config gets random weights, saved as
mmengine saves a checkpoint (``meta`` with the dataset's numpy arrays + ``state_dict``), which the backend must
load with torch's weights-only unpickler. Two short demo videos are rendered by the demo corpus code; Snakemake
runs only the `pose` rule on them. The Parquet files must follow our pose schema, hold the keypoints of exactly
those weights (mmpose's own pipeline on the same frames, computed here), and be read unchanged by the clip
stage's readers.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support.mmpose_env import requires_mmpose
from tests.support.pose import render_normalised_demo_videos
from tests.support.workflow import REPO, snakemake

pytestmark = requires_mmpose

# three videos, one of them unlabeled: a manifest without unlabeled videos stops the run before its first job
# (pretraining reads only those); the pose jobs run on two of them
DEMO = {"seed": 7, "n_videos": 3, "n_subjects": 3, "n_labeled": 2, "width": 320, "height": 240,
        "labeled_duration_s": [1.0, 1.0], "unlabeled_duration_s": [1.0, 1.0], "cut_ins": [0, 0]}
VIDEO_IDS = ["demo000", "demo001"]
FRAMES = 6  # RTMW-x with flip test: ~0.7 s per frame on 2 CPU cores


def _paper_mmpose_config() -> str:
    from mgfm.pose.presets import PRESETS

    return PRESETS[yaml.safe_load((REPO / "workflow" / "configs" / "paper.yaml").read_text())["pose"]["preset"]]["config"]


def _render_demo_videos(work: Path) -> None:
    render_normalised_demo_videos(work / "results" / "videos", DEMO, FRAMES)


def _random_checkpoint(model, path: Path) -> None:
    """A checkpoint in mmengine's format: what OpenMMLab's released RTMPose/RTMW .pth files hold."""
    import mmengine
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    save_checkpoint({"meta": {"mmengine_version": mmengine.__version__, "dataset_meta": model.dataset_meta,
                              "epoch": 0, "iter": 0},
                     "state_dict": weights_to_cpu(get_state_dict(model))}, str(path))


@pytest.fixture(scope="module")
def pose_run(tmp_path_factory):
    import torch

    from mgfm.pose.backends.mmpose_backend import build_mmpose_model, resolve_config

    work = tmp_path_factory.mktemp("mmpose_rule")
    _render_demo_videos(work)
    torch.manual_seed(0)
    model = build_mmpose_model(resolve_config(_paper_mmpose_config()), None, "cpu").eval()
    ckpt = work / "models" / "rtmw-x_random.pth"
    ckpt.parent.mkdir()
    _random_checkpoint(model, ckpt)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    config = {"dataset": {"source": "demo", "demo": DEMO},
              "pose": {"backend": "mmpose", "batch_size": 8, "device": "cpu",
                       "mmpose": {"config": _paper_mmpose_config(), "checkpoint": str(ckpt),
                                  "checkpoint_sha256": digest, "fetch": False}}}
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/pose/{vid}.parquet" for vid in VIDEO_IDS]
    # `mgfm` of this environment first on PATH (the helper does that), as --use-conda would activate envs/mmpose.yaml
    proc = snakemake(work, "--allowed-rules", "pose", "--", *targets, cores=2, check=False, timeout=900)
    logs = "".join(p.read_text() for p in sorted((work / "logs" / "pose").glob("*.log"))) \
        if (work / "logs" / "pose").is_dir() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[-3000:]
    return work, model, digest, proc.stdout + proc.stderr


def test_rule_writes_pose_files_in_our_schema(pose_run):
    from mgfm.core.layout import NUM_KEYPOINTS
    from mgfm.core.pose_store import read_pose, read_pose_meta

    work, _, digest, log = pose_run
    # one finished pose job per video: the console's line "[i/n  x%] pose video_id=<id>  <time>"
    finished = re.findall(r"^\[\s*\d+/\d+\s+\d+%\] pose video_id=(\S+)", log, flags=re.M)
    assert sorted(finished) == sorted(VIDEO_IDS), log[-2000:]
    for vid in VIDEO_IDS:
        path = work / "results" / "pose" / f"{vid}.parquet"
        video_meta = json.loads((work / "results" / "videos" / f"{vid}.json").read_text())
        meta = read_pose_meta(path)
        assert meta["backend"] == "mmpose" and meta["model_sha256"] == digest
        assert meta["video_id"] == vid and meta["n_frames"] == video_meta["frames"]
        assert (meta["width"], meta["height"]) == (video_meta["width"], video_meta["height"])
        pose = read_pose(path)
        n = video_meta["frames"]
        np.testing.assert_array_equal(pose.frame, np.arange(n))
        assert pose.xy.shape == (n, NUM_KEYPOINTS, 2) and pose.score.shape == (n, NUM_KEYPOINTS)
        assert pose.xy.dtype == pose.score.dtype == np.float32
        # no detector: the whole frame is the box, as in mmpose's inference_topdown without boxes
        np.testing.assert_array_equal(pose.bbox, np.tile([0, 0, video_meta["width"], video_meta["height"]], (n, 1)))
        assert np.isfinite(pose.xy).all() and np.isfinite(pose.score).all()
        assert (pose.score > 0).any(), "every keypoint score is zero: the pose model did not run"


def test_rule_output_is_mmposes_own_inference_of_those_weights(pose_run):
    """The checkpoint's weights, not a fresh random init, produced the file: mmpose's pipeline on the same decoded
    frames with the in-memory model that was saved gives the same keypoints."""
    from mgfm.pose.backends.mmpose_backend import MmposeEstimator
    from mgfm.core.pose_store import read_pose
    from mgfm.pose.video_reader import VideoBatches

    work, model, _, _ = pose_run
    vid = VIDEO_IDS[0]
    video = VideoBatches(work / "results" / "videos" / f"{vid}.mp4")
    _, frames = next(iter(video.batches(4)))
    boxes = np.tile(np.array([0, 0, video.width, video.height], np.float32), (len(frames), 1))
    xy, score = MmposeEstimator(model).estimate(frames, boxes)
    pose = read_pose(work / "results" / "pose" / f"{vid}.parquet", 0, len(frames) - 1)
    np.testing.assert_allclose(pose.xy, xy, atol=1e-3)
    np.testing.assert_allclose(pose.score, score, atol=1e-5)


def test_clip_stage_reads_the_files_unchanged(pose_run):
    """The clip sampler's anchor track and the skeleton dataset's reader take the files as they are."""
    from mgfm.clips.visibility import load_anchor_track
    from mgfm.core.layout import FACE_ANCHORS
    from mgfm.core.pose_store import read_pose

    work, _, _, _ = pose_run
    for vid in VIDEO_IDS:
        path = work / "results" / "pose" / f"{vid}.parquet"
        n = json.loads((work / "results" / "videos" / f"{vid}.json").read_text())["frames"]
        track = load_anchor_track(vid, path, expected_frames=n)
        pose = read_pose(path, columns=["frame", "x", "y", "score"])
        assert not track.reason, track.reason
        np.testing.assert_array_equal(track.min_score, pose.score[:, list(FACE_ANCHORS)].min(axis=1))
        assert track.visible(0.0).shape == (n,) and track.fps == 25.0
