"""``pose.preset: rtmw-x`` through Snakemake: export both checkpoints to ONNX once, run the pose rule on them.

Runs in the pinned mmpose venv only (`bash scripts/mmpose/ci.sh`). The preset's released checkpoints cannot be
downloaded here, so the config names random-weight checkpoints of the same architectures (and their sha256) in
``pose.mmpose.checkpoint`` / ``det_checkpoint``: the workflow then exports those instead of fetching. Snakemake
runs rule ``export_pose_onnx`` (twice) and the ``pose`` rule on two short demo videos. The pose files must hold
what the onnx backend computes with the exported files, name both checkpoints' digests, and a second run must
have nothing to do; a changed export setting re-exports the pose model only and reruns the pose jobs.
"""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import yaml

from tests.support.mmpose_env import requires_mmpose
from tests.support.openmmlab import informative_detector_checkpoint, informative_pose_checkpoint, sha256
from tests.support.pose import render_normalised_demo_videos
from tests.support.workflow import snakemake

pytestmark = requires_mmpose

# three videos, one of them unlabeled: a manifest without unlabeled videos stops the run before its first job
# (pretraining reads only those); the pose jobs run on two of them
DEMO = {"seed": 7, "n_videos": 3, "n_subjects": 3, "n_labeled": 2, "width": 320, "height": 240,
        "labeled_duration_s": [1.0, 1.0], "unlabeled_duration_s": [1.0, 1.0], "cut_ins": [0, 0]}
FRAMES = 6  # RTMW-x with flip test: about a second per frame on 2 CPU cores


def _config(pose_ckpt, pose_sha, det_ckpt, det_sha, **pose) -> dict:
    return {"dataset": {"source": "demo", "demo": DEMO},
            "pose": {"preset": "rtmw-x", "batch_size": 4, "device": "cpu",
                     "detector": {"interval": 3, "score_threshold": 0.5},
                     "mmpose": {"checkpoint": str(pose_ckpt), "checkpoint_sha256": pose_sha,
                                "det_checkpoint": str(det_ckpt), "det_checkpoint_sha256": det_sha[:8]}, **pose}}


def _jobs(out: str, rule: str) -> int:
    """How many jobs of ``rule`` a (dry) run lists in its job-stats table."""
    m = re.search(rf"^{rule}\s+(\d+)$", out, flags=re.M)
    return int(m.group(1)) if m else 0


@pytest.fixture(scope="module")
def preset_run(tmp_path_factory):
    work = tmp_path_factory.mktemp("preset_rule")
    ids = render_normalised_demo_videos(work / "results" / "videos", DEMO, FRAMES)[:2]
    pose_ckpt, pose_sha = informative_pose_checkpoint(work / "rtmw-x_random.pth")
    det_ckpt, det_sha = informative_detector_checkpoint(work / "rtmdet-m_random.pth")
    config = _config(pose_ckpt, pose_sha, det_ckpt, det_sha)
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    targets = [f"results/pose/{vid}.parquet" for vid in ids]
    proc = snakemake(work, "--allowed-rules", "export_pose_onnx", "pose", "--", *targets, cores=2, check=False,
                     timeout=1500)
    logs = "".join(p.read_text() for p in sorted((work / "logs" / "pose").glob("*.log"))) \
        if (work / "logs" / "pose").is_dir() else ""
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:] + logs[-3000:]
    return work, ids, config, (pose_ckpt, pose_sha, det_ckpt, det_sha), targets


def test_exports_are_keyed_by_the_checkpoint_digest_and_record_their_own(preset_run):
    work, _, _, (_, pose_sha, _, det_sha), _ = preset_run
    onnx_dir = work / "results" / "models" / "pose" / "onnx"
    pose_onnx = onnx_dir / f"rtmw-x_random.{pose_sha[:8]}.onnx"
    det_onnx = onnx_dir / f"rtmdet-m_random.{det_sha[:8]}.onnx"
    assert sorted(p.name for p in onnx_dir.glob("*.onnx")) == sorted([pose_onnx.name, det_onnx.name])
    for path, digest, kind in ((pose_onnx, pose_sha, "pose"), (det_onnx, det_sha, "detector")):
        side = json.loads(path.with_suffix(".json").read_text())
        assert side["kind"] == kind and side["sha256"] == sha256(path)
        assert side["source"]["checkpoint_sha256"] == digest
    assert json.loads(pose_onnx.with_suffix(".json").read_text())["flip_test"] is True  # RTMW-x's config


def test_pose_files_are_the_onnx_backends_output_with_both_digests(preset_run):
    from mgfm.core.pose_store import read_pose, read_pose_meta
    from mgfm.pose.backends.onnx_backend import load_onnx_backend
    from mgfm.pose.extract import estimate_video
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams
    from mgfm.pose.video_reader import VideoBatches

    work, ids, config, (_, pose_sha, _, det_sha), _ = preset_run
    onnx_dir = work / "results" / "models" / "pose" / "onnx"
    # the settings the pose jobs ran with, the exported files named directly
    params = {**config["pose"], "preset": "", "mmpose": {},
              "model": str(onnx_dir / f"rtmw-x_random.{pose_sha[:8]}.onnx"),
              "detector": {**config["pose"]["detector"],
                           "model": str(onnx_dir / f"rtmdet-m_random.{det_sha[:8]}.onnx")}}
    p = from_partial(PoseParams, "pose", params)
    backend = load_onnx_backend(p, 2)
    for vid in ids:
        path = work / "results" / "pose" / f"{vid}.parquet"
        meta = read_pose_meta(path)
        assert meta["backend"] == "onnx" and meta["model_checkpoint_sha256"] == pose_sha
        assert meta["detector_checkpoint_sha256"] == det_sha and meta["flip_test"] is True
        pose = read_pose(path)
        assert (pose.det_score > 0).any(), "no frame had a person box: the detector did not run"

        class Collect:
            def __init__(self):
                self.frames = []

            def write(self, batch):
                self.frames.append(batch)

        sink = Collect()
        estimate_video(VideoBatches(work / "results" / "videos" / f"{vid}.mp4"), backend, p, sink)
        np.testing.assert_array_equal(pose.bbox, np.concatenate([b.bbox for b in sink.frames]))
        np.testing.assert_array_equal(pose.xy, np.concatenate([b.xy for b in sink.frames]))
        np.testing.assert_array_equal(pose.score, np.concatenate([b.score for b in sink.frames]))


def test_second_run_reuses_everything_and_a_new_export_setting_reexports_the_pose_model_only(preset_run, tmp_path):
    from tests.support.workflow import output

    work, _, config, ckpts, targets = preset_run
    again = snakemake(work, "-n", "--allowed-rules", "export_pose_onnx", "pose", "--", *targets)
    assert "Nothing to be done" in output(again), output(again)[-2000:]
    changed = tmp_path / "flip_off.yaml"
    changed.write_text(yaml.safe_dump(_config(*ckpts, flip_test=False)))
    plan = output(snakemake(work, "-n", "--allowed-rules", "export_pose_onnx", "pose", "--", *targets,
                            configfiles=[changed]))
    # the detector's export is reused; the pose model's without flip test is another file, and the pose jobs'
    # params name it
    assert _jobs(plan, "export_pose_onnx") == 1 and _jobs(plan, "pose") == len(targets), plan[-2000:]
