"""Per-video download records: only what fetching needs, rewritten only when that content changes."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from mgfm.data.records import read_video_record, write_video_records


@pytest.fixture
def manifest(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    for i in range(3):
        (data / "raw" / f"v{i}.mp4").write_bytes(bytes([i]) * 100)
    rows = [{"video_id": f"v{i}", "url": f"raw/v{i}.mp4", "sha256": "", "subject_id": f"s{i}",
             "outcome": "win", "subset": "labeled", "split": "train" if i else "test"} for i in range(3)]
    rows.append({"video_id": "web", "url": "https://example.org/a.mp4", "sha256": "", "subject_id": "s9",
                 "outcome": "lose", "subset": "unlabeled", "split": ""})
    path = data / "manifest.csv"
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def test_records_hold_the_source_not_labels_and_are_written_once(manifest, tmp_path):
    out = tmp_path / "results" / "dataset" / "videos"
    assert write_video_records(manifest, out, backdate_new=True) == ["v0", "v1", "v2", "web"]
    rec = read_video_record(out / "v1.json")
    assert rec["url"] == "raw/v1.mp4" and rec["base_dir"] == "data" and rec["source"]["bytes"] == 100
    assert not {"outcome", "split", "subset", "subject_id"} & set(rec)
    assert read_video_record(out / "web.json")["source"] is None
    mtimes = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    # a first record is as old as its manifest, so videos downloaded from it before records existed stay done
    assert set(mtimes.values()) == {manifest.stat().st_mtime_ns}
    man = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    man.loc[1, "outcome"] = "lose"                  # a label: no record changes
    man.to_csv(manifest, index=False)
    assert write_video_records(manifest, out) == []
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == mtimes


def test_a_source_replaced_in_place_changes_its_record_only(manifest, tmp_path):
    out = tmp_path / "records"
    write_video_records(manifest, out)
    before = read_video_record(out / "v2.json")["source"]["sha256"]
    src = manifest.parent / "raw" / "v2.mp4"
    src.write_bytes(b"other bytes")
    os.utime(src, ns=(1, 1))                         # even with an old mtime: size and mtime key the cache
    assert write_video_records(manifest, out) == ["v2"]
    assert read_video_record(out / "v2.json")["source"]["sha256"] != before


def test_bad_record_names_the_file(tmp_path):
    bad = tmp_path / "v1.json"
    bad.write_text(json.dumps({"video_id": "v2"}))
    with pytest.raises(ValueError, match="v1.json: video record lacks"):
        read_video_record(bad)
