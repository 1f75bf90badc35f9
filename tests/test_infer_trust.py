"""`mgfm infer` at its trust boundaries, on a tiny real models folder (tests/support/infer.py) and small generated
videos: media is checked as the download stage checks it, each video's outputs are all-or-nothing (a failed rerun
removes what an earlier run left), folders and missing files are named as what they are, and a models folder is
data: every field checked, every file tied by digests, and no field selects code to run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from mgfm.cli import main
from tests.support.infer import build_models, copy_models, edit_json, make_video

pytestmark = pytest.mark.pipeline


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return build_models(tmp_path_factory.mktemp("bundle"))


@pytest.fixture(scope="module")
def good(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("videos") / "good.mp4", 3.0)


def infer(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["infer", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def last_line(err: str) -> str:
    return err.strip().splitlines()[-1]


# ---- media ------------------------------------------------------------------------------------------------


def test_a_truncated_video_fails_as_download_would_and_leaves_nothing(models, good, tmp_path, capsys):
    full = make_video(tmp_path / "full.mp4", 4.0, "-movflags", "+faststart")
    cut = tmp_path / "talk.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    code, out, err = infer(capsys, str(cut), "--models", str(models), "--out", str(tmp_path / "out"))
    assert code == 1 and "FAILED" in out and "truncated source" in out and "4.00 s" in out
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []   # no folder, no work/


def test_a_failed_rerun_removes_the_outputs_of_the_earlier_run(models, good, tmp_path, capsys):
    video = tmp_path / "talk.mp4"
    shutil.copyfile(good, video)
    out_dir = tmp_path / "out"
    code, out, _ = infer(capsys, str(video), "--models", str(models), "--out", str(out_dir))
    assert code == 0 and (out_dir / "talk" / "instances.json").is_file() and (out_dir / "talk" / "work").is_dir()
    video.write_bytes(b"not a video any more")
    code, out, err = infer(capsys, str(video), "--models", str(models), "--out", str(out_dir))
    assert code == 1 and "not a video" in out
    assert not (out_dir / "talk").exists() and "were removed" in err
    assert sorted(p.name for p in out_dir.iterdir()) == []              # no temporary folder left either


def test_folders_missing_files_and_urls_are_named_as_what_they_are(models, good, tmp_path, capsys):
    folder = tmp_path / "talks.mp4"
    folder.mkdir()
    code, out, _ = infer(capsys, str(folder), str(tmp_path / "gone.mp4"), "https://example.org/a.mp4",
                         "--models", str(models), "--out", str(tmp_path / "out"))
    assert code == 1
    assert f"FAILED {folder}: {folder}: a folder, not a video file" in out
    assert f"{tmp_path / 'gone.mp4'}: no such file" in out and "reads local video files only" in out
    assert not (tmp_path / "out").exists() or list((tmp_path / "out").iterdir()) == []


def test_a_folder_named_like_a_video_in_video_dir_is_skipped_with_a_warning(models, good, tmp_path, capsys):
    shutil.copyfile(good, tmp_path / "a.mp4")
    (tmp_path / "b.mp4").mkdir()
    code, out, err = infer(capsys, "--video-dir", str(tmp_path), "--models", str(models), "--out",
                           str(tmp_path / "out"))
    assert code == 0 and "b.mp4: skipped: a folder, not a video file" in err
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["a"]


def test_odd_file_names_are_spotted(models, good, tmp_path, capsys):
    odd = tmp_path / "talk {final} $(x) 'é'.mp4"
    shutil.copyfile(good, odd)
    code, out, _ = infer(capsys, str(odd), "--models", str(models), "--out", str(tmp_path / "out"))
    assert code == 0, out
    meta = json.loads(next((tmp_path / "out").glob("*/instances.json")).read_text())
    assert meta["input"] == str(odd)


def test_a_picture_track_before_the_video_and_text_as_video(models, tmp_path, capsys):
    from tests.test_download import _cover_art_mkv

    mkv = _cover_art_mkv(tmp_path, with_video=True)
    text = tmp_path / "notes.mp4"
    text.write_text("lorem ipsum\n" * 300)
    code, out, _ = infer(capsys, str(mkv), str(text), "--models", str(models), "--out", str(tmp_path / "out"))
    assert code == 1 and f"ok     {mkv}" in out and "FAILED" in out and "not a video" in out
    meta = json.loads((tmp_path / "out" / "cover_then_video" / "instances.json").read_text())
    assert meta["n_frames"] == 150


# ---- the models folder ------------------------------------------------------------------------------------


@pytest.mark.parametrize("change, words", [
    (lambda s: s.pop("members"), "'members' is a required property"),
    (lambda s: s.update(members=["joint"]), "members[0]: expected object, got 'joint'"),
    (lambda s: s.update(members={"joint": 1}), "members: expected array"),
    (lambda s: s.update(threshold="0.5"), "threshold: expected number, got '0.5'"),
    (lambda s: s.update(window_frames=[21.0]), "window_frames[0]: expected integer, got 21.0"),
    (lambda s: s["members"][0].update(stream="../../etc"), "members[0].stream: '../../etc' is not one of"),
    (lambda s: s.update(merge={"nms": "shell"}), "field merge: infer.merge.nms: 'shell' is not allowed"),
    (lambda s: s.pop("digests"), "'digests' is a required property"),
])
def test_a_malformed_spotter_is_one_line_naming_the_file_and_the_field(models, good, tmp_path, capsys, change, words):
    bad = copy_models(models, tmp_path / "models")
    edit_json(bad / "spotter.json", change)
    code, out, err = infer(capsys, str(good), "--models", str(bad), "--out", str(tmp_path / "out"))
    assert code == 1 and not (tmp_path / "out").exists()
    assert last_line(err).endswith(f"{bad / 'spotter.json'}: " + last_line(err).split("spotter.json: ", 1)[1])
    assert words in last_line(err), last_line(err)


def test_emotion_json_cannot_point_outside_the_models_folder(models, good, tmp_path, capsys):
    bad = copy_models(models, tmp_path / "models")
    edit_json(bad / "emotion" / "emotion.json", lambda e: e["encoders"].update(joint="../../elsewhere"))
    code, _, err = infer(capsys, str(good), "--models", str(bad), "--out", str(tmp_path / "out"))
    assert code == 1 and "emotion.json: encoders.joint: '../../elsewhere' is not one of" in last_line(err)


def test_a_swapped_classifier_stops_naming_the_files_that_differ(models, good, tmp_path, capsys):
    bad = copy_models(models, tmp_path / "models")
    head = bad / "classifiers" / "skeleton" / "joint" / "head.safetensors"
    state = load_file(str(head))
    save_file({k: torch.randn_like(v) for k, v in state.items()}, str(head))     # same shapes, another run's
    code, _, err = infer(capsys, str(good), "--models", str(bad), "--out", str(tmp_path / "out"))
    line = last_line(err)
    assert code == 1 and "differ from the ones it was calibrated with" in line
    assert "classifiers/skeleton/joint/head.safetensors: sha256" in line and "encoder.safetensors" not in line


def test_a_corrupt_head_or_card_is_one_line_naming_it(models, good, tmp_path, capsys):
    bad = copy_models(models, tmp_path / "models")
    head = bad / "classifiers" / "skeleton" / "joint" / "head.safetensors"
    head.write_bytes(head.read_bytes()[:-8])
    code, _, err = infer(capsys, str(good), "--models", str(bad), "--out", str(tmp_path / "out"))
    assert code == 1 and "head.safetensors" in last_line(err)
    # past the digests (recomputed, as a careful forger would), the loaders themselves name the file
    from mgfm.infer.bundle import load_members, load_spotter

    spotter = load_spotter(bad, check_digests=False)
    with pytest.raises(ValueError, match=r"head.safetensors: truncated or padded"):
        load_members(bad, spotter)
    card = bad / "classifiers" / "skeleton" / "joint" / "card.json"
    shutil.copyfile(models / "classifiers" / "skeleton" / "joint" / "head.safetensors", head)
    edit_json(card, lambda c: c["arch"].update(hidden=4096, depth=64, heads=64))
    with pytest.raises(ValueError, match=r"encoder.safetensors: does not fit the encoder .*card.json describes"):
        load_members(bad, spotter)


def test_a_models_folder_never_selects_code(models, good, tmp_path, capsys):
    """spotter.json switching pose to mmpose with a Python config: refused before anything reads that config
    (its code would create the canary), with the way to give the settings oneself."""
    bad = copy_models(models, tmp_path / "models")
    canary = tmp_path / "CANARY"
    evil = tmp_path / "evil_config.py"
    evil.write_text(f"open({str(canary)!r}, 'w').write('executed')\n")
    edit_json(bad / "spotter.json", lambda s: s["pose"].update(backend="mmpose", mmpose={
        **s["pose"]["mmpose"], "config": str(evil), "checkpoint": str(evil)}))
    code, _, err = infer(capsys, str(good), "--models", str(bad), "--out", str(tmp_path / "out"))
    assert code == 1 and not canary.exists()
    line = last_line(err)
    assert "records pose backend 'mmpose', which runs code" in line and "--pose" in line


def test_the_pose_model_must_be_the_one_the_models_were_calibrated_with(models, good, tmp_path, capsys):
    from tests.support.pose import stand_in_detector

    other = stand_in_detector(tmp_path / "other.onnx", [[0, 0, 10, 10, 0.9]])
    code, _, err = infer(capsys, str(good), "--models", str(models), "--out", str(tmp_path / "out"),
                         "--pose", json.dumps({"model": str(other)}))
    assert code == 1 and "the pose model to run has sha256" in last_line(err) and "pose_models.model" in last_line(err)
    # the user's own settings naming the calibrated model are taken
    code, out, _ = infer(capsys, str(good), "--models", str(models), "--out", str(tmp_path / "out2"),
                         "--pose", json.dumps({"backend": "onnx"}))
    assert code == 0, out
