"""Content records (mgfm.common.content) and the label-free views of the tables (mgfm.ingest.views), as functions:
what is hashed when, what a record's time becomes, that a dry refresh writes nothing, and that a view (and a
versioned view's name) changes only with label-free content."""

from __future__ import annotations

import json
import os
import re
import time

import pandas as pd
import pytest

from mgfm.common.content import describe, record_path, refresh_record, write_record
from mgfm.ingest.views import (INTERVAL_VIEW, VIDEO_VIEW, versioned_view_path, view_texts, write_versioned_view,
                             write_views)


def _old(path, seconds=1000):
    t = time.time_ns() - seconds * 10**9
    os.utime(path, ns=(t, t))
    return t


@pytest.fixture
def artifact(tmp_path):
    a = tmp_path / "results" / "pose" / "v1.parquet"
    a.parent.mkdir(parents=True)
    a.write_bytes(os.urandom(3 << 20))                      # bigger than Snakemake's 1 MB checksum limit
    rec = tmp_path / record_path(str(a.relative_to(tmp_path)), "results")
    return a, rec


def test_record_path_mirrors_the_results_layout():
    assert record_path("results/pose/{video_id}.parquet", "results") == "results/content/pose/{video_id}.parquet.json"
    assert record_path("runs/x (2)/datasets/skeleton/pretrain", "runs/x (2)") == \
        "runs/x (2)/content/datasets/skeleton/pretrain.json"
    with pytest.raises(ValueError, match="under results only"):
        record_path("elsewhere/a.mp4", "results")


def test_a_touch_or_same_bytes_keep_the_record_and_its_time(artifact):
    a, rec = artifact
    write_record(a, rec)
    t = _old(rec)
    digest = json.loads(rec.read_text())["sha256"]
    assert refresh_record(a, rec) is None                                      # nothing changed: nothing read
    os.utime(a)                                                                # touched
    assert refresh_record(a, rec) == "restat"
    a.write_bytes(a.read_bytes())                                              # rewritten, same bytes
    assert refresh_record(a, rec) == "restat"
    assert rec.stat().st_mtime_ns == t and json.loads(rec.read_text())["sha256"] == digest
    assert refresh_record(a, rec) is None                                      # the new stat was recorded


def test_other_content_makes_the_record_newer_than_anything_that_read_it(artifact):
    a, rec = artifact
    write_record(a, rec)
    _old(rec)
    data = bytearray(a.read_bytes())
    data[100] ^= 1
    a.write_bytes(bytes(data))
    _old(a, 5000)                                                              # even an old mtime (a restore)
    before = time.time_ns()
    assert refresh_record(a, rec) == "changed"
    assert rec.stat().st_mtime_ns >= before


def test_dry_refresh_writes_nothing(artifact):
    a, rec = artifact
    write_record(a, rec)
    text, t = rec.read_text(), _old(rec)
    a.write_bytes(b"other")
    assert refresh_record(a, rec, write=False) == "changed"
    assert rec.read_text() == text and rec.stat().st_mtime_ns == t


def test_an_artifact_without_a_record_gets_a_new_one_and_an_unreadable_record_keeps_its_time(artifact):
    a, rec = artifact
    _old(a)
    before = time.time_ns()
    assert refresh_record(a, rec, write=False) == "created" and not rec.exists()      # a dry run: nothing
    assert refresh_record(a, rec) == "created"                  # nothing says what its readers read: they rerun
    assert rec.stat().st_mtime_ns >= before
    rec.write_text("")                                                         # `snakemake --touch` made it empty
    t = _old(rec)
    assert refresh_record(a, rec, write=False) == "repaired" and rec.read_text() == ""
    assert refresh_record(a, rec) == "repaired" and json.loads(rec.read_text())["sha256"]
    assert rec.stat().st_mtime_ns == t                                         # up to date, as --touch meant


def test_a_folder_is_recorded_by_its_files_names_and_digests(tmp_path):
    d = tmp_path / "pretrain"
    d.mkdir()
    (d / "data.npy").write_bytes(b"x" * 1000)
    (d / "meta.parquet").write_bytes(b"m")
    (d / ".snakemake_timestamp").write_text("")                                # Snakemake's marker: not content
    first = describe(d)
    (d / ".snakemake_timestamp").write_text("later")
    assert describe(d)["sha256"] == first["sha256"]
    (d / "meta.parquet").write_bytes(b"n")
    assert describe(d)["sha256"] != first["sha256"]
    os.rename(d / "meta.parquet", d / "meta2.parquet")
    assert describe(d)["sha256"] not in (first["sha256"],)


def test_only_files_whose_stat_changed_are_hashed_again(tmp_path, monkeypatch):
    from mgfm.common import content

    d = tmp_path / "ds"
    d.mkdir()
    for name in ("a", "b", "c"):
        (d / name).write_bytes(name.encode() * 100)
    record = describe(d)
    hashed = []
    real = content.sha256_file
    monkeypatch.setattr(content, "sha256_file", lambda p: hashed.append(p.name) or real(p))
    os.utime(d / "b")
    assert describe(d, record)["sha256"] == record["sha256"] and hashed == ["b"]


def _tables(root):
    man = pd.DataFrame({"video_id": ["v1", "v2", "u1"], "url": ["a.mp4", "b.mp4", "c.mp4"],
                        "subject_id": ["s1", "s2", "s3"], "outcome": ["win", "lose", "win"],
                        "subset": ["labeled", "labeled", "unlabeled"], "split": ["train", "test", ""]})
    ann = pd.DataFrame({"video_id": ["v1", "v2"], "class_id": [0, 1], "start_frame": [3, 10], "end_frame": [9, 30]})
    man.to_csv(root / "manifest.csv", index=False)
    ann.to_csv(root / "annotations.csv", index=False)
    return man, ann


def test_views_change_only_with_label_free_content(tmp_path):
    man, ann = _tables(tmp_path)
    tables = (tmp_path / "manifest.csv", tmp_path / "annotations.csv")
    out = tmp_path / "views"
    assert write_views(*tables, out) == [VIDEO_VIEW, INTERVAL_VIEW]
    videos = pd.read_csv(out / VIDEO_VIEW, dtype=str, keep_default_na=False)
    assert list(videos.columns) == ["video_id", "subject_id", "subset", "split"] and videos["split"].tolist()[2] == ""
    assert list(pd.read_csv(out / INTERVAL_VIEW).columns) == ["video_id", "start_frame", "end_frame"]
    stamps = {p: _old(out / p) for p in (VIDEO_VIEW, INTERVAL_VIEW)}
    names = {n: versioned_view_path(out, n, t) for n, t in view_texts(*tables).items()}
    man.loc[0, "outcome"], man.loc[1, "url"], ann.loc[0, "class_id"] = "lose", "moved/b.mp4", 1   # labels, sources
    man.to_csv(tables[0], index=False)
    ann.to_csv(tables[1], index=False)
    assert write_views(*tables, out) == []
    assert {p: (out / p).stat().st_mtime_ns for p in stamps} == stamps
    assert {n: versioned_view_path(out, n, t) for n, t in view_texts(*tables).items()} == names   # same names
    ann.loc[1, "end_frame"] = 31                                                     # an interval: the prior
    ann.to_csv(tables[1], index=False)
    texts = view_texts(*tables)
    assert versioned_view_path(out, VIDEO_VIEW, texts[VIDEO_VIEW]) == names[VIDEO_VIEW]
    assert versioned_view_path(out, INTERVAL_VIEW, texts[INTERVAL_VIEW]) != names[INTERVAL_VIEW]
    assert write_views(*tables, out) == [INTERVAL_VIEW]


def test_a_versioned_view_is_named_by_its_content_and_replaces_its_older_version(tmp_path):
    _tables(tmp_path)
    texts = view_texts(tmp_path / "manifest.csv", tmp_path / "annotations.csv")
    first = versioned_view_path(tmp_path / "v", INTERVAL_VIEW, texts[INTERVAL_VIEW])
    assert re.fullmatch(r"intervals\.[0-9a-f]{16}\.csv", first.name)
    write_versioned_view(first, texts[INTERVAL_VIEW])
    videos = versioned_view_path(tmp_path / "v", VIDEO_VIEW, texts[VIDEO_VIEW])
    write_versioned_view(videos, texts[VIDEO_VIEW])
    other = texts[INTERVAL_VIEW] + "v2,1,2\n"
    second = versioned_view_path(tmp_path / "v", INTERVAL_VIEW, other)
    write_versioned_view(second, other)
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == sorted([second.name, videos.name])
    with pytest.raises(ValueError, match="must be"):
        write_versioned_view(first, other)                                           # a name that lies


def test_the_clips_stage_reads_a_view_exactly_as_the_table(tmp_path):
    from mgfm.clips.tables import load_intervals, load_manifest

    _tables(tmp_path)
    write_views(tmp_path / "manifest.csv", tmp_path / "annotations.csv", tmp_path / "views")
    full, view = load_manifest(tmp_path / "manifest.csv"), load_manifest(tmp_path / "views" / VIDEO_VIEW)
    cols = ["video_id", "subject_id", "subset", "split"]
    pd.testing.assert_frame_equal(full[cols], view[cols])
    a, b = load_intervals(tmp_path / "annotations.csv", full), load_intervals(tmp_path / "views" / INTERVAL_VIEW, view)
    pd.testing.assert_frame_equal(a, b, check_like=True)
    assert "class_id" not in b.columns
