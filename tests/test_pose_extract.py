"""The onnx backend end to end on small synthetic videos: output format, batching, detector + tracking, errors."""

import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from mgfm.demo.pose_model.export import export_onnx
from mgfm.demo.pose_model.net import DemoSimCCNet
from mgfm.pose.extract import extract_pose
from mgfm.core.layout import NUM_KEYPOINTS
from mgfm.config.sections import from_partial
from mgfm.pose.params import PoseParams
from mgfm.core.pose_store import read_pose, read_pose_meta
from mgfm.pose.tracking import PrimaryPersonTracker, keypoint_box

from tests.support.pose import stand_in_detector, write_video


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    root = tmp_path_factory.mktemp("pose")
    torch.manual_seed(0)
    model = root / "rand.onnx"
    export_onnx(DemoSimCCNet(input_size=(64, 48)), model, "rand-test")
    return {"root": root, "model": model, "video": write_video(root / "vid.mp4")}


def test_output_format_and_metadata(work, tmp_path):
    out = tmp_path / "vid.parquet"
    meta = extract_pose(work["video"], work["video"].with_suffix(".json"), out, {"model": str(work["model"])})
    pose = read_pose(out)
    assert pose.xy.shape == (40, NUM_KEYPOINTS, 2) and pose.score.shape == (40, NUM_KEYPOINTS)
    np.testing.assert_array_equal(pose.frame, np.arange(40))
    np.testing.assert_allclose(pose.bbox, np.tile([0, 0, 160, 120], (40, 1)))  # no detector: whole frame
    np.testing.assert_allclose(pose.det_score, 1.0)
    file_meta = read_pose_meta(out)
    for key in ("backend", "model", "model_sha256", "fps", "width", "height", "n_frames", "layout"):
        assert key in file_meta
    assert file_meta["n_frames"] == 40 and file_meta["width"] == 160 and file_meta["model"] == "rand-test"
    assert file_meta == {**meta, "layout": file_meta["layout"]}
    # keypoints lie in the padded whole-frame box's image coordinates
    assert np.all(pose.xy[..., 0] >= -0.25 * 160) and np.all(pose.xy[..., 0] <= 1.25 * 160)
    assert pq.ParquetFile(out).metadata.row_group(0).column(0).statistics.has_min_max


def test_batch_size_does_not_change_results(work, tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    for out, bs in ((a, 1), (b, 16)):
        extract_pose(work["video"], work["video"].with_suffix(".json"), out,
                     {"model": str(work["model"]), "batch_size": bs})
    pa_, pb = read_pose(a), read_pose(b)
    np.testing.assert_allclose(pa_.xy, pb.xy, atol=1e-3)
    np.testing.assert_allclose(pa_.score, pb.score, atol=1e-5)


def test_detector_with_nobody_gives_zero_scores(work, tmp_path):
    det = stand_in_detector(tmp_path / "det.onnx", [[10, 10, 50, 50, 0.1]])  # below the score threshold: nobody
    out = tmp_path / "nobody.parquet"
    extract_pose(work["video"], work["video"].with_suffix(".json"), out,
                 {"model": str(work["model"]), "detector": {"model": str(det)}})
    pose = read_pose(out)
    assert len(pose) == 40
    assert np.all(pose.score == 0) and np.all(pose.det_score == 0) and np.all(pose.bbox == 0)


def test_detector_picks_the_primary_person(work, tmp_path):
    # frames are 160x120 -> letterbox ratio 4: boxes below are in the 640x640 detector input
    det = stand_in_detector(tmp_path / "det2.onnx", [[0, 0, 60, 60, 0.9], [160, 80, 480, 440, 0.8]])
    out = tmp_path / "det.parquet"
    extract_pose(work["video"], work["video"].with_suffix(".json"), out,
                 {"model": str(work["model"]), "batch_size": 8, "detector": {"model": str(det), "interval": 8}})
    pose = read_pose(out)
    # detection frames (every 8th) use the big central person, mapped back to image pixels
    np.testing.assert_allclose(pose.bbox[::8], np.tile([40, 20, 120, 110], (5, 1)), atol=1e-4)
    np.testing.assert_allclose(pose.det_score[::8], 0.8, atol=1e-6)
    assert read_pose_meta(out)["detector"] == "det2"


def test_primary_person_tracker_continuity():
    t = PrimaryPersonTracker(640, 480)
    # no track: the large central box wins over a small corner box with a higher detector score
    t.select(np.array([[0, 0, 50, 50], [200, 100, 440, 460]]), np.array([0.99, 0.6]))
    np.testing.assert_allclose(t.box, [200, 100, 440, 460])
    # with a track: keep the overlapping box even if another is now larger and more central
    t.select(np.array([[150, 40, 500, 480], [380, 120, 620, 470]]), np.array([0.9, 0.9]))
    np.testing.assert_allclose(t.box, [150, 40, 500, 480])
    assert not t.select(np.zeros((0, 4)), np.zeros(0)) and t.box is None


def test_keypoint_box_needs_confident_keypoints():
    xy = np.array([[10, 10], [30, 50], [20, 20], [500, 500]], np.float32)
    score = np.array([0.9, 0.9, 0.9, 0.1], np.float32)
    box = keypoint_box(xy, score, 0.3, 640, 480)
    np.testing.assert_allclose(box, [9, 8, 31, 52])  # 20x40 box grown by 1.1 about (20, 30)
    assert keypoint_box(xy, np.array([0.9, 0.9, 0.1, 0.1]), 0.3, 640, 480) is None


def test_missing_model_fails_before_decoding(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    (tmp_path / "broken.json").write_text(json.dumps({"frames": 1, "fps": 25, "width": 1, "height": 1}))
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(FileNotFoundError, match="nowhere.onnx"):
        extract_pose(bad, tmp_path / "broken.json", tmp_path / "o.parquet", {"model": str(missing)})


@pytest.mark.parametrize("content", [b"", b"\x00\x01garbage" * 500])
def test_corrupt_or_empty_video_names_the_video(work, tmp_path, content):
    bad = tmp_path / "bad_video.mp4"
    bad.write_bytes(content)
    meta = tmp_path / "bad_video.json"
    meta.write_text(json.dumps({"frames": 10, "fps": 25, "width": 160, "height": 120}))
    out = tmp_path / "bad.parquet"
    with pytest.raises((ValueError, RuntimeError), match="bad_video.mp4"):
        extract_pose(bad, meta, out, {"model": str(work["model"])})
    assert not out.exists() and not list(tmp_path.glob("*.part*"))


def test_bad_params_name_the_key():
    with pytest.raises(ValueError, match="pose.bogus"):
        from_partial(PoseParams, "pose", {"bogus": 1})
    with pytest.raises(ValueError, match="pose.detector.nms"):
        from_partial(PoseParams, "pose", {"detector": {"nms": 0.5}})
    with pytest.raises(ValueError, match="pose.backend"):
        from_partial(PoseParams, "pose", {"backend": "openpose"})


def test_schema_defaults_match_params(tmp_path):
    from dataclasses import asdict

    from mgfm.config import defaults

    assert asdict(from_partial(PoseParams, "pose", {})) == defaults("pose")
    assert asdict(PoseParams.from_section(defaults("pose"))) == defaults("pose")
    # a resolved section only: a partial one is an error naming what it lacks, never filled here
    with pytest.raises(ValueError, match=r"pose.detector: missing keys \['input_size'"):
        PoseParams.from_section({**defaults("pose"), "detector": {"model": ""}})


def test_cli_extract(work, tmp_path):
    from mgfm.cli import main

    out = tmp_path / "cli.parquet"
    rc = main(["pose", "extract", "--video", str(work["video"]), "--meta", str(work["video"].with_suffix(".json")),
               "--out", str(out), "--params", json.dumps({"model": str(work["model"])}), "--threads", "1"])
    assert rc == 0 and len(read_pose(out)) == 40
    rc = main(["pose", "extract", "--video", str(tmp_path / "none.mp4"), "--meta", "x.json", "--out",
               str(tmp_path / "x.parquet")])
    assert rc == 1
