"""The shipped demo pose model: present, small, checksummed, and accurate enough on fresh demo frames."""

import json

import pytest

from mgfm.common.digest import sha256_file
from mgfm.pose.fetch import fetch_file
from mgfm.pose.params import DEMO_MODEL


def test_shipped_model_and_sidecar():
    assert DEMO_MODEL.is_file(), "train it: python -m mgfm.demo.pose_model.train"
    side = json.loads(DEMO_MODEL.with_suffix(".json").read_text())
    assert DEMO_MODEL.stat().st_size < 5 * 1024 * 1024
    assert side["sha256"] == sha256_file(DEMO_MODEL)
    assert side["split_ratio"] == 2.0 and side["num_keypoints"] == 133 and len(side["input_size"]) == 2


def test_demo_model_reads_rendered_people_and_drops_on_cut_ins():
    from mgfm.demo.render import render_training_samples
    from mgfm.demo.pose_model.evaluate import pose_metrics, predict_frames

    frames, xy, vis = render_training_samples(96, seed=424242, cut_in_fraction=0.25)
    assert (~vis.any(axis=1)).sum() >= 5, "the sample must hold cut-in frames"
    pred, score = predict_frames(DEMO_MODEL, frames, threads=2)
    m = pose_metrics(pred, score, xy, vis)
    a = m["face_anchor_score"]
    assert a["visible_mean"] >= 0.5, m
    assert a["cut_in_mean"] < 0.1 and a["cut_in_frac_above_tau"] < 0.1, m
    assert m["body"]["pck@0.05"] > 0.6 and m["face_anchors"]["pck@0.05"] > 0.6, m


def test_fetch_verifies_the_checksum(tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(b"pretend checkpoint" * 1000)
    digest = sha256_file(src)
    out = fetch_file(f"file://{src}", digest[:8], tmp_path / "models" / "w.pth")
    assert out.read_bytes() == src.read_bytes()
    bad = tmp_path / "models" / "bad.pth"
    with pytest.raises(ValueError, match="does not match"):
        fetch_file(f"file://{src}", "0" * 64, bad)
    assert not bad.exists() and not list((tmp_path / "models").glob(".*part*"))
    with pytest.raises(ValueError, match="sha256"):
        fetch_file(f"file://{src}", "", bad)
