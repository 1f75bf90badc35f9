"""The demo corpus end to end on a tiny config: tables in the contract, videos, ground truth, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import pandas as pd
import pytest

from mgfm.cli import main
from mgfm.ingest.contract import load_annotations, load_manifest, load_taxonomy, validate_dataset
from mgfm.demo import corpus as corpus_mod
from mgfm.demo.corpus import generate_corpus, load_ground_truth

TINY = {
    "n_videos": 4, "n_subjects": 3, "n_labeled": 2, "width": 128, "height": 96,
    "labeled_duration_s": [4.0, 5.0], "unlabeled_duration_s": [3.0, 4.0],
    "cut_ins": [1, 1], "cut_in_duration_s": [0.4, 0.6], "gesture_mean_s": 1.0, "gap_mean_s": 0.3,
}


def _digest(folder: Path) -> dict[str, str]:
    files = ["manifest.csv", "annotations.csv", "taxonomy.csv"]
    files += [f"keypoints/{p.name}" for p in sorted((folder / "keypoints").glob("*.npz"))]
    files += [f"raw/{p.name}" for p in sorted((folder / "raw").glob("*.mp4"))]
    return {f: hashlib.sha256((folder / f).read_bytes()).hexdigest() for f in files}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    generate_corpus(TINY, out, workers=1)
    return out


def test_tables_follow_the_contract(tiny):
    manifest = load_manifest(tiny / "manifest.csv")
    taxonomy = load_taxonomy(tiny / "taxonomy.csv")
    annotations = load_annotations(tiny / "annotations.csv", manifest=manifest, taxonomy=taxonomy)
    assert list(pd.read_csv(tiny / "manifest.csv").columns) == \
        ["video_id", "url", "sha256", "subject_id", "outcome", "subset", "split", "synthetic"]
    assert list(pd.read_csv(tiny / "annotations.csv").columns) == ["video_id", "class_id", "start_frame", "end_frame"]
    assert list(pd.read_csv(tiny / "taxonomy.csv").columns) == ["class_id", "name", "group"]
    assert manifest["video_id"].tolist() == ["demo000", "demo001", "demo002", "demo003"]
    summary = validate_dataset(tiny / "manifest.csv", tiny / "annotations.csv", tiny / "taxonomy.csv")
    assert summary["labeled_videos"] == 2 and summary["instances"] == len(annotations) > 0
    labeled = set(manifest.loc[manifest["subset"] == "labeled", "video_id"])
    assert set(annotations["video_id"]) <= labeled, "only labeled videos are annotated"
    for rec in manifest.itertuples():
        path = Path(rec.url.removeprefix("file://"))
        assert rec.url.startswith("file:///") and path.is_absolute() and path.is_file()
        assert path == tiny / "raw" / f"{rec.video_id}.mp4"
        assert hashlib.sha256(path.read_bytes()).hexdigest() == rec.sha256


def test_planned_tables_are_the_rendered_ones(tiny):
    """The workflow plans data sizes from these rows at parse time, before the corpus exists."""
    from mgfm.demo.planned import planned_tables

    manifest, annotations = planned_tables(TINY)
    rendered = pd.read_csv(tiny / "manifest.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(manifest, rendered[manifest.columns.tolist()], check_dtype=False)
    pd.testing.assert_frame_equal(annotations, pd.read_csv(tiny / "annotations.csv"), check_dtype=False)


def test_videos_ground_truth_and_annotations_agree(tiny):
    manifest = pd.read_csv(tiny / "manifest.csv", keep_default_na=False)
    annotations = pd.read_csv(tiny / "annotations.csv")
    for rec in manifest.itertuples():
        gt = load_ground_truth(tiny / "keypoints" / f"{rec.video_id}.npz")
        cap = cv2.VideoCapture(str(tiny / "raw" / f"{rec.video_id}.mp4"))
        frames = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
        assert cap.get(cv2.CAP_PROP_FPS) == pytest.approx(25.0)
        assert (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (128, 96)
        cap.release()
        n = gt["xy"].shape[0]
        assert frames == n and gt["xy"].shape == (n, 133, 2) and gt["visible"].shape == (n, 133)
        assert int(gt["fps"]) == 25 and int(gt["width"]) == 128 and int(gt["height"]) == 96
        cut = gt["cut_in"]
        assert cut.any() and (gt["visible"][cut] == 0).all() and (gt["xy"][cut] == 0).all()
        assert gt["visible"][~cut, :5].mean() > 0.9, "the face is visible outside cut-ins"
        for s, e in gt["cut_ins"]:
            assert cut[s:e + 1].all()
        mine = annotations[annotations["video_id"] == rec.video_id]
        if rec.subset == "labeled":
            assert mine["class_id"].tolist() == gt["gesture_class"].tolist()
            assert mine["start_frame"].tolist() == gt["gesture_start"].tolist()
            assert mine["end_frame"].tolist() == gt["gesture_end"].tolist()
        else:
            assert mine.empty
        for s, e in zip(gt["gesture_start"], gt["gesture_end"]):
            assert 0 <= s <= e < n and not cut[s:e + 1].any()
    assert not list(tiny.rglob("*.part*")), "no temporary files left behind"


def test_same_seed_same_bytes_different_seed_different_corpus(tiny, tmp_path):
    first = _digest(tiny)
    generate_corpus(TINY, tmp_path / "again", workers=2)
    again = _digest(tmp_path / "again")
    assert set(first) == set(again)
    for name in first:
        if name != "manifest.csv":  # the manifest holds absolute file:// URLs of its own folder
            assert first[name] == again[name], name
    strip = lambda p: (p / "manifest.csv").read_text().replace(str(p.resolve()), "<root>")  # noqa: E731
    assert strip(tiny) == strip(tmp_path / "again")
    generate_corpus(TINY, tiny, workers=1)  # regenerate in place: byte-identical tables
    assert _digest(tiny) == first
    generate_corpus({**TINY, "seed": 8}, tmp_path / "other", workers=1)
    other = _digest(tmp_path / "other")
    assert other["annotations.csv"] != first["annotations.csv"]
    assert other["keypoints/demo000.npz"] != first["keypoints/demo000.npz"]


def test_failed_encoding_leaves_no_video(tmp_path, monkeypatch):
    monkeypatch.setattr("mgfm.demo.encode.ffmpeg_exe", lambda: "/bin/false")
    with pytest.raises(RuntimeError, match="ffmpeg failed"):
        generate_corpus(TINY, tmp_path, workers=1)
    assert not list(tmp_path.rglob("*.mp4")) and not (tmp_path / "manifest.csv").exists()


def test_cli_generates_and_rejects_bad_params(tmp_path, capsys):
    assert main(["demo", "generate", "--out", str(tmp_path / "c"), "--params",
                 json.dumps({**TINY, "n_videos": 2, "n_labeled": 2, "n_subjects": 2})]) == 0
    assert (tmp_path / "c" / "manifest.csv").is_file()
    assert main(["demo", "generate", "--out", str(tmp_path / "d"), "--params", json.dumps({"width": 63})]) == 1
    assert not (tmp_path / "d").exists()
    assert corpus_mod.MANIFEST_COLUMNS[0] == "video_id"
