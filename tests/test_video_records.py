"""Per-video download records: only what fetching needs, rewritten only when that content changes."""

from __future__ import annotations

import json
import os
import re

import pandas as pd
import pytest

from mgfm.ingest.records import (manifest_records, read_video_record, versioned_record_path, write_versioned_record,
                               write_video_records)


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
    out = tmp_path / "results" / "ingest" / "videos"
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


def test_manifest_records_write_nothing_and_versioned_names_carry_the_content(manifest, tmp_path):
    """What the workflow computes while it parses: every row's record, no file written (a dry run's promise) unless
    the digest cache is asked to be kept; a record's versioned name changes exactly when its content does."""
    out = tmp_path / "results" / "ingest" / "videos"
    texts = manifest_records(manifest, out, update_cache=False)
    assert sorted(texts) == ["v0", "v1", "v2", "web"] and not (tmp_path / "results").exists()
    paths = {vid: versioned_record_path(out, vid, text) for vid, text in texts.items()}
    assert all(re.fullmatch(rf"{vid}\.[0-9a-f]{{16}}\.json", p.name) for vid, p in paths.items())
    for vid, text in texts.items():
        write_versioned_record(paths[vid], text)
    assert read_video_record(paths["v1"])["url"] == "raw/v1.mp4"
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths.values())
    # a label changes nothing; another url changes that video's name only, and its old version goes
    man = pd.read_csv(manifest, dtype=str, keep_default_na=False)
    man.loc[1, "outcome"] = "lose"
    man.loc[2, "url"] = "./raw/v2.mp4"
    man.to_csv(manifest, index=False)
    again = manifest_records(manifest, out)
    moved = {vid: versioned_record_path(out, vid, text) for vid, text in again.items()}
    assert [vid for vid in texts if moved[vid] != paths[vid]] == ["v2"]
    write_versioned_record(moved["v2"], again["v2"])
    assert not paths["v2"].exists() and moved["v2"].exists() and paths["v1"].exists()
    assert (out.parent / "source_digests.json").is_file()       # kept when asked (a real run's parse)
    with pytest.raises(ValueError, match="the name must be"):
        write_versioned_record(paths["v1"], again["v2"])


def test_a_download_job_fetches_the_source_its_record_names(tmp_path, monkeypatch):
    """download_record: the record's relative url resolves against its base_dir, the video is normalised."""
    import subprocess

    from mgfm.ingest.records import download_record
    from mgfm.ingest.video import ffmpeg_exe

    monkeypatch.chdir(tmp_path)
    (tmp_path / "data" / "raw").mkdir(parents=True)
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=160x120:rate=25", "-t", "1", "-c:v", "libx264", "-preset", "ultrafast",
                    "-pix_fmt", "yuv420p", "data/raw/v0.mp4"], check=True)
    rows = [{"video_id": "v0", "url": "raw/v0.mp4", "sha256": "", "subject_id": "s0", "outcome": "win",
             "subset": "labeled", "split": "test"}]
    pd.DataFrame(rows).to_csv(tmp_path / "data" / "manifest.csv", index=False)
    records = tmp_path / "records"
    write_video_records(tmp_path / "data" / "manifest.csv", records)
    video, meta = tmp_path / "out" / "v0.mp4", tmp_path / "out" / "v0.json"
    got = download_record(records / "v0.json", video, meta, {"preset": "ultrafast"})
    assert video.is_file() and json.loads(meta.read_text()) == got
    assert got["video_id"] == "v0" and got["source_kind"] == "file" and got["frames"] == round(got["fps"])  # 1 s
    assert got["source_sha256"] == read_video_record(records / "v0.json")["source"]["sha256"]
