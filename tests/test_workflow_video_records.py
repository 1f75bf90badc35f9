"""Per-video dependencies of download and pose on a real (``dataset.source: files``) dataset.

A tiny demo corpus is rendered once and used as a files dataset; download and pose run for real on it. Then
dry runs on copies of that work folder (mtimes and Snakemake's records kept) answer: a label or an outcome
reruns no download or pose, one edited row reruns that video's chain only, a source replaced in place reruns
its video, and a work folder and checkout moved elsewhere rerun nothing.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from tests.support.workflow import REPO, TINY_DEMO, output, repo_config, snakemake, write_config

# real download and pose jobs on a 4-video demo (about 30 s): part of the full suite, not the development loop
pytestmark = [pytest.mark.pipeline, pytest.mark.slow]


def _config(workdir: Path) -> Path:
    cfg = repo_config({"dataset": {"source": "files", "manifest": "data/manifest.csv",
                                   "annotations": "data/annotations.csv", "taxonomy": "data/taxonomy.csv"}})
    return write_config(workdir / "config.yaml", cfg)


def _targets(workdir: Path) -> list[str]:
    ids = pd.read_csv(workdir / "data" / "manifest.csv", dtype=str)["video_id"]
    return ["results/ingest/annotations_checked.json", *(f"results/pose/{i}.parquet" for i in ids)]


def planned(workdir: Path, snakefile: Path | None = None) -> Counter:
    """Jobs per rule that a dry run of download + pose would execute."""
    if snakefile is None:
        out = output(snakemake(workdir, "-n", *_targets(workdir)))
    else:
        cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir),
               "--configfile", str(workdir / "config.yaml"), "--cores", "1", "-n", *_targets(workdir)]
        proc = subprocess.run(cmd, cwd=workdir, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = output(proc)
    if "Nothing to be done" in out:
        return Counter()
    counts: Counter = Counter()
    for line in out.split("Job stats:", 1)[1].splitlines()[3:]:
        m = re.match(r"^(\w+)\s+(\d+)$", line.strip())
        if not m:
            break
        if m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    return counts


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("files") / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "mgfm", "demo", "generate", "--out", str(work / "data"), "--params",
                    json.dumps(TINY_DEMO["dataset"]["demo"])], check=True, capture_output=True, timeout=300)
    man = pd.read_csv(work / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    man["url"] = "raw/" + man["video_id"] + ".mp4"       # relative to the manifest, as a movable dataset has them
    man.to_csv(work / "data" / "manifest.csv", index=False)
    _config(work)
    snakemake(work, *_targets(work))
    assert planned(work) == Counter()
    return work


@pytest.fixture
def work(built, tmp_path) -> Path:
    """A copy of the built work folder (mtimes and .snakemake kept), for one test to change."""
    copy = tmp_path / "work"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def test_labels_and_outcomes_rerun_no_download_or_pose(work):
    ann = pd.read_csv(work / "data" / "annotations.csv", dtype=str, keep_default_na=False)
    ann.iloc[1:].to_csv(work / "data" / "annotations.csv", index=False)
    man = pd.read_csv(work / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    man.loc[0, "outcome"] = "lose" if man.loc[0, "outcome"] == "win" else "win"
    man.to_csv(work / "data" / "manifest.csv", index=False)
    jobs = planned(work)
    assert jobs["download_video"] == 0 and jobs["pose"] == 0, jobs
    assert jobs["check_annotations"] == 1          # the annotations changed (validation is a target of its own)


def test_one_edited_row_reruns_that_video_only(work):
    man = pd.read_csv(work / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    man.loc[2, "url"] = "./" + man.loc[2, "url"]        # a valid edit of one row: another url, same file
    man.to_csv(work / "data" / "manifest.csv", index=False)
    jobs = planned(work)
    assert jobs["download_video"] == 1 and jobs["pose"] == 1, jobs


def test_source_replaced_in_place_reruns_its_video(work):
    man = pd.read_csv(work / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    a, b = (work / "data" / man.loc[i, "url"] for i in (0, 1))
    shutil.copyfile(b, a)                            # another video under the same name, manifest untouched
    jobs = planned(work)
    assert jobs["download_video"] == 1 and jobs["pose"] == 1, jobs


def test_moved_work_folder_and_checkout_rerun_nothing(work, tmp_path):
    """The shipped pose model is recorded by content, not by the checkout's absolute path."""
    checkout = tmp_path / "elsewhere" / "checkout"
    checkout.mkdir(parents=True)
    for name in ("Snakefile", "workflow", "mgfm", "config.yaml", "envs"):
        if (REPO / name).exists():
            (checkout / name).symlink_to(REPO / name)
    assert planned(work, checkout / "Snakefile") == Counter()
