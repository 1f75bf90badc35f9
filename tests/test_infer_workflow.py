"""The infer stage for real on a small demo: its rules through Snakemake (models, spotter, test-video spotting,
table), then ``mgfm infer`` on video files including bad ones (unreadable, no person, too short)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mgfm.ingest.video import ffmpeg_exe

from tests.support.workflow import repo_config, snakemake, write_config

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]

# 8 labeled videos of 30 s (3 test, 5 train of which one subject validates), short schedules, one seed; the demo
# evaluates skeleton and RGB, so spotting fuses both (MG-FM-RGB batches fit this demo's few pretraining clips)
SMALL = {"dataset": {"demo": {"n_videos": 10, "n_labeled": 8, "n_subjects": 8, "labeled_duration_s": [30.0, 32.0],
                              "unlabeled_duration_s": [20.0, 22.0]}},
         "pretrain": {"train": {"epochs": 6, "batch_size": 16}},
         "rgb_pretrain": {"stage1": {"batch_size": 8}, "stage2": {"batch_size": 8}},
         "eval": {"seeds": [0], "finetune": {"train": {"epochs": 8}}}}


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("infer")
    write_config(work / "config.yaml", repo_config(SMALL))
    snakemake(work, "results/tables/table_spotting.md", timeout=1500)
    return work


def test_spotting_rules_write_models_metrics_table_and_pages(work):
    res = work / "results"
    spotter = json.loads((res / "models" / "spotter.json").read_text())
    man = pd.read_csv(res / "demo" / "manifest.csv")
    test = set(man.loc[man["split"] == "test", "video_id"])
    assert spotter["validation_videos"] and not set(spotter["validation_videos"]) & test
    # every evaluated modality is a member, fused with the ensemble's Skele+RGB weights chosen on validation
    assert [m["name"] for m in spotter["members"]] == ["joint", "bone", "motion", "rgb"]
    ens = json.loads((res / "eval" / "ensemble" / "metrics.json").read_text())
    assert spotter["weights"] == pytest.approx(ens["weights_multimodal"][0])
    rgb_card = json.loads((res / "models" / "classifiers" / "rgb" / "rgb" / "card.json").read_text())
    assert (rgb_card["num_frames"], rgb_card["image_size"]) == (spotter["rgb_clip_params"]["num_frames"],
                                                              spotter["rgb_clip_params"]["size"])
    m = json.loads((res / "eval" / "spotting" / "metrics.json").read_text())
    assert m["fusion"] == "Skele+RGB" and m["modalities"] == ["rgb", "skeleton"] and set(m["weights"]) == {
        "joint", "bone", "motion", "rgb"}
    assert m["n_test_videos"] == len(test) and m["n_gt"] > 0
    assert set(m["ours"]["tiou"]) == {"0.3", "0.5", "0.7"}
    f1 = [m["ours"]["tiou"][t]["f1"] for t in ("0.3", "0.5", "0.7")]
    assert f1 == sorted(f1, reverse=True)          # a stricter overlap never matches more
    # (this small demo's classifiers are near chance: the margin over the baseline is asserted on the full demo,
    # tests/test_pipeline_demo.py)
    assert m["threshold"] == spotter["threshold"] and m["class_prior_baseline"]["tiou"]["0.3"]["n_gt"] == m["n_gt"]
    ann = pd.read_csv(res / "demo" / "annotations.csv")
    for vid in test:
        inst = pd.read_csv(res / "infer" / "test" / vid / "instances.csv")
        assert (inst["end_frame"] >= inst["start_frame"]).all() and inst["confidence"].between(0, 1).all()
        page = (res / "infer" / "test" / vid / "report.html").read_text()
        assert "<svg" in page
        # a test video's page: its annotated instances beside the predicted ones, and its own scores
        meta = json.loads((res / "infer" / "test" / vid / "instances.json").read_text())
        truth = meta["truth"]
        assert len(truth["instances"]) == (ann["video_id"] == vid).sum() > 0
        assert set(truth["scores"]) == {"0.3", "0.5", "0.7"} and "Annotated instances" in page
        assert page.count('fill="none" stroke="#1a9850"') == len(truth["instances"])
        # what made it: the demo pose model (a demo render: no warning), the demo corpus
        assert meta["pose"]["demo_model"] and not meta["demo_pose_on_real_video"]
        assert meta["trained_on"] == {"dataset": "the synthetic demo corpus (seed 7), not iMiGUE-3K", "demo": True}
        assert f"<code>{meta['pose']['model']['sha256']}</code>" in page and "real faces are not found" not in page
    table = (res / "tables" / "table_spotting.md").read_text()
    assert "38.0" in table and "cited, not reproduced" in table
    assert "MG-FM-Skele+RGB spotting (joint+bone+motion+rgb, fused)" in table
    timings = json.loads((res / "infer" / "test" / sorted(test)[0] / "instances.json").read_text())["timings_s"]
    assert timings["windows_rgb_s"] > 0 and timings["windows_skeleton_s"] > 0


def _ffmpeg(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", *args], check=True)


def test_mgfm_infer_on_files_reports_bad_ones_and_does_the_others(work, tmp_path):
    res = work / "results"
    good = res / "videos" / "demo008.mp4"                  # an unlabeled demo video, normalised
    blank = tmp_path / "blank.mp4"                           # 6 s of grey: no person
    short = tmp_path / "short.mp4"                           # 0.2 s of a real video: shorter than any window
    _ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=320x240:d=6:r=25", "-pix_fmt", "yuv420p", str(blank))
    _ffmpeg("-i", str(good), "-t", "0.2", str(short))
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video at all")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "mgfm", "infer", str(good), str(broken), str(blank), str(short),
                           "--models", str(res / "models"), "--out", str(out), "--threads", "2", "--annotated-video"],
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 1, proc.stderr[-3000:]            # one failed video: exit 1, the others done
    assert "broken.mp4" in proc.stderr and "FAILED" in proc.stdout
    meta = json.loads((out / "demo008" / "instances.json").read_text())
    assert meta["reason"] == "" and meta["win_probability"] is not None and len(meta["instances"]) > 0
    # a file given to mgfm infer is not known to be a demo render: the page warns about the demo pose model
    assert meta["demo_pose_on_real_video"] and "real faces are not found" in (out / "demo008" / "report.html").read_text()
    assert meta["members"] == ["joint", "bone", "motion", "rgb"] and meta["timings_s"]["windows_rgb_s"] > 0
    from mgfm.ingest.video import probe_video

    assert probe_video(out / "demo008" / "annotated.mp4")["frames"] == meta["n_frames"]
    assert "real-time factor" in proc.stderr
    for name, why in (("blank", "no person visible"), ("short", "shorter than the shortest window")):
        m = json.loads((out / name / "instances.json").read_text())
        assert why in m["reason"] and m["instances"] == []
        assert "Empty timeline" in (out / name / "report.html").read_text()
    assert not (out / "broken" / "instances.json").exists()


def test_models_of_another_joint_layout_are_refused(work, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(work / "results" / "models", models)
    spotter = json.loads((models / "spotter.json").read_text())
    spotter["joints"] = spotter["joints"][:-21]
    (models / "spotter.json").write_text(json.dumps(spotter))
    proc = subprocess.run([sys.executable, "-m", "mgfm", "infer", str(work / "results" / "videos" / "demo008.mp4"),
                           "--models", str(models), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 1 and "spotter.json" in proc.stderr and "joint subset of 42 joints" in proc.stderr


def test_rgb_member_whose_card_does_not_read_the_packed_clips_is_refused(work, tmp_path):
    import shutil

    models = tmp_path / "models"
    shutil.copytree(work / "results" / "models", models)
    card_path = models / "classifiers" / "rgb" / "rgb" / "card.json"
    card = json.loads(card_path.read_text())
    card["num_frames"] = 2 * card["num_frames"]
    card_path.write_text(json.dumps(card))
    proc = subprocess.run([sys.executable, "-m", "mgfm", "infer", str(work / "results" / "videos" / "demo008.mp4"),
                           "--models", str(models), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    # the edited card no longer has the digest calibration recorded
    assert proc.returncode == 1 and "classifiers/rgb/rgb/card.json: sha256" in proc.stderr
    # with the digest recorded anew (a careful forger), the RGB check itself names the mismatch
    from mgfm.common.digest import sha256_file

    spotter = json.loads((models / "spotter.json").read_text())
    spotter["digests"]["classifiers/rgb/rgb/card.json"] = sha256_file(card_path)
    (models / "spotter.json").write_text(json.dumps(spotter))
    proc = subprocess.run([sys.executable, "-m", "mgfm", "infer", str(work / "results" / "videos" / "demo008.mp4"),
                           "--models", str(models), "--out", str(tmp_path / "o")], capture_output=True, text=True)
    assert proc.returncode == 1 and str(card_path) in proc.stderr
    assert f"RGB encoder reads {card['num_frames']} frames" in proc.stderr
    assert f"{card['num_frames'] // 2} frames of" in proc.stderr


def test_infer_target_spots_the_configured_videos_and_reruns_nothing_else(work, tmp_path):
    from tests.support.workflow import output

    video = work / "results" / "videos" / "demo009.mp4"
    cfg = write_config(tmp_path / "infer.yaml", repo_config({**SMALL, "infer": {"videos": [str(video)]}}))
    proc = snakemake(work, "infer", "--rerun-triggers", "mtime", configfiles=[cfg], timeout=600)
    assert "infer_video" in output(proc) and "eval_finetune" not in output(proc)
    meta = json.loads((work / "results" / "infer" / "videos" / "demo009" / "instances.json").read_text())
    assert meta["source"].endswith("video.mp4") and meta["n_frames"] > 0
