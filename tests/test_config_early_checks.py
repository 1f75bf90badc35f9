"""Settings that cannot work on the data fail or warn before the work: demo counts at parse time (dry runs
included), a pose model without a person detector (whole-frame boxes) on real videos."""

from __future__ import annotations

import json
import logging

import pytest

from mgfm.demo.plan import demo_video_ids
from tests.support.workflow import REPO, snakemake



def test_demo_ids_check_the_whole_section():
    assert demo_video_ids({"n_videos": 3, "n_labeled": 2}) == ["demo000", "demo001", "demo002"]
    with pytest.raises(ValueError, match=r"dataset.demo.n_labeled: 6 is more than dataset.demo.n_videos \(4\)"):
        demo_video_ids({"n_videos": 4, "n_labeled": 6})
    with pytest.raises(ValueError, match="dataset.demo.width"):
        demo_video_ids({"width": 63})
    # two labeled subjects (one per split) and one more for the unlabeled videos, named before any plan is drawn
    with pytest.raises(ValueError, match=r"dataset.demo.n_subjects: 2 is too few: .* set it to 3 or more"):
        demo_video_ids({"n_videos": 3, "n_labeled": 2, "n_subjects": 2})
    assert demo_video_ids({"n_videos": 2, "n_labeled": 2, "n_subjects": 2}) == ["demo000", "demo001"]


def test_dry_run_refuses_more_labeled_than_videos(tmp_path):
    """The job would fail inside the demo generator; the dry run must fail first, naming the key."""
    (tmp_path / "bad.yaml").write_text("dataset:\n  demo:\n    n_videos: 4\n    n_labeled: 6\n")
    proc = snakemake(tmp_path, "-n", configfiles=[REPO / "config.yaml", tmp_path / "bad.yaml"], cores=None,
                     check=False)
    assert proc.returncode != 0
    assert "dataset.demo.n_labeled: 6 is more than dataset.demo.n_videos (4)" in proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def pose_work(tmp_path_factory):
    cv2 = pytest.importorskip("cv2")
    import numpy as np
    import torch

    from mgfm.demo.pose_model.export import export_onnx
    from mgfm.demo.pose_model.net import DemoSimCCNet

    root = tmp_path_factory.mktemp("pose")
    torch.manual_seed(0)
    model = root / "rand.onnx"
    export_onnx(DemoSimCCNet(input_size=(64, 48)), model, "rand-test")
    video = root / "vid.mp4"
    out = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 25, (96, 64))
    for i in range(4):
        out.write(np.full((64, 96, 3), 40 + 10 * i, np.uint8))
    out.release()
    return root, model, video


@pytest.mark.parametrize("synthetic,warns", [(None, True), (False, True), (True, False)])
def test_onnx_without_detector_warns_on_real_videos(pose_work, tmp_path, caplog, synthetic, warns):
    from mgfm.pose.extract import extract_pose

    root, model, video = pose_work
    meta = {"video_id": "vid", "frames": 4, "fps": 25.0, "width": 96, "height": 64, "duration": 0.16}
    if synthetic is not None:
        meta["synthetic"] = synthetic  # the download stage copies the manifest's synthetic column (demo: true)
    (tmp_path / "vid.json").write_text(json.dumps(meta))
    with caplog.at_level(logging.WARNING, logger="mgfm.pose.extract"):
        extract_pose(video, tmp_path / "vid.json", tmp_path / "vid.parquet", {"model": str(model)})
    warned = [r for r in caplog.records if "no person detector" in r.getMessage()]
    assert bool(warned) == warns
    if warns:
        assert "pose.detector" in warned[0].getMessage()
