"""Rebuild granularity on a real (``dataset.source: files``) dataset: stages that read no labels never rerun for a
label, and no stage reruns for a file rewritten with the same bytes, whatever its size.

A tiny demo corpus is rendered once and used as a files dataset; download, pose, sampling, the packed datasets and
one short pretraining run for real. Dry runs on copies of that work folder (mtimes and Snakemake's records kept)
then answer each question by the jobs they plan.
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

from tests.support.workflow import TINY_DEMO, output, repo_config, snakemake, write_config

pytestmark = [pytest.mark.pipeline, pytest.mark.slow]

TARGETS = ["results/models/skeleton/joint/encoder.safetensors", "results/packs/skeleton/video_clips",
           "results/packs/skeleton/mg_train", "results/clips/iod.json", "results/figures/fig4_durations.png"]
LABEL_FREE_RULES = ("sample_clips", "iod", "duration_figure", "pretrain_skeleton", "download_video", "pose")


# Snakemake compares the content of files under this size itself: at 100 bytes every artifact of this tiny
# dataset counts as large, as pose files, videos and datasets are at paper scale
LARGE = ("--max-checksum-file-size", "100")


def planned(workdir: Path, dry: bool = True) -> Counter:
    """Jobs per rule that a dry run of TARGETS would execute (``dry=False``: that a real run executed)."""
    mode = ["-n"] if dry else ["--logger-mgfm-full"]             # a real run's own console lists its jobs too
    out = output(snakemake(workdir, *mode, *LARGE, *TARGETS, timeout=900))
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
    work = tmp_path_factory.mktemp("rebuilds") / "work"
    work.mkdir()
    subprocess.run([sys.executable, "-m", "mgfm", "demo", "generate", "--out", str(work / "data"), "--params",
                    json.dumps(TINY_DEMO["dataset"]["demo"])], check=True, capture_output=True, timeout=300)
    man = pd.read_csv(work / "data" / "manifest.csv", dtype=str, keep_default_na=False)
    man["url"] = "raw/" + man["video_id"] + ".mp4"
    man.to_csv(work / "data" / "manifest.csv", index=False)
    write_config(work / "config.yaml", repo_config({
        "dataset": {"source": "files", "manifest": "data/manifest.csv", "annotations": "data/annotations.csv",
                    "taxonomy": "data/taxonomy.csv"},
        "pretrain": {"streams": ["joint"], "train": {"epochs": 1, "batch_size": 8}},
        "eval": {"streams": ["joint"], "emotion": {"skeleton_streams": ["joint"]}}}))
    snakemake(work, *TARGETS, timeout=900)
    assert planned(work) == Counter()
    return work


@pytest.fixture
def work(built, tmp_path) -> Path:
    copy = tmp_path / "work"
    shutil.copytree(built, copy, symlinks=True)
    return copy


def _tables(work: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    read = lambda name: pd.read_csv(work / "data" / name, dtype=str, keep_default_na=False)  # noqa: E731
    return read("manifest.csv"), read("annotations.csv")


def test_outcomes_and_classes_rerun_no_label_free_stage(work):
    man, ann = _tables(work)
    man.loc[0, "outcome"] = "lose" if man.loc[0, "outcome"] == "win" else "win"
    ann.loc[0, "class_id"] = str((int(ann.loc[0, "class_id"]) + 1) % 3)
    man.to_csv(work / "data" / "manifest.csv", index=False)
    ann.to_csv(work / "data" / "annotations.csv", index=False)
    jobs = planned(work)
    assert not any(jobs[r] for r in LABEL_FREE_RULES), jobs
    # the class: the annotation check reads the annotations, mg_train their classes
    assert jobs == Counter({"pack_skeleton": 1, "check_annotations": 1}), jobs


def test_an_outcome_alone_reruns_no_check_and_no_dataset(work):
    man, _ = _tables(work)
    man.loc[0, "outcome"] = "lose" if man.loc[0, "outcome"] == "win" else "win"
    man.to_csv(work / "data" / "manifest.csv", index=False)
    assert planned(work) == Counter()


def test_a_split_is_label_free_content_and_reruns_sampling(work):
    man, _ = _tables(work)
    labeled = man.index[man["subset"] == "labeled"]
    man.loc[labeled, "split"] = man.loc[labeled, "split"].map({"train": "test", "test": "train"})
    man.to_csv(work / "data" / "manifest.csv", index=False)
    jobs = planned(work)
    assert jobs["sample_clips"] == 1 and jobs["pretrain_skeleton"] == 1 and jobs["pose"] == 0, jobs


@pytest.mark.parametrize("what", ["pose", "video", "dataset", "clips"])
def test_a_file_rewritten_with_the_same_bytes_reruns_nothing(work, what):
    res = work / "results"
    path = {"pose": next((res / "pose").glob("*.parquet")), "video": next((res / "videos").glob("*.mp4")),
            "dataset": res / "packs" / "skeleton" / "pretrain" / "data.npy",
            "clips": res / "clips" / "clips.parquet"}[what]
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)                                   # a new file, a new mtime, the same bytes
    assert planned(work) == Counter()


def test_a_pose_file_with_other_content_reruns_what_reads_it(work):
    first, second = sorted((work / "results" / "pose").glob("*.parquet"))[:2]
    shutil.copyfile(second, first)                           # changed outside the workflow
    jobs = planned(work)
    assert jobs["sample_clips"] == 1 and jobs["pretrain_skeleton"] == 1 and jobs["pose"] == 0, jobs


def test_a_rerun_producer_reruns_its_readers_in_the_same_run(work):
    """A forced pose job rewrites its record, so what reads the pose file follows in the same run."""
    pose = sorted((work / "results" / "pose").glob("*.parquet"))[0]
    out = output(snakemake(work, "-n", *LARGE, "--forcerun", str(pose.relative_to(work)), *TARGETS))
    assert re.search(r"^sample_clips\s+1$", out, re.M) and re.search(r"^pretrain_skeleton\s+1$", out, re.M), out


def _files(root: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if ".snakemake" not in p.relative_to(root).parts}


def _change(work: Path, what: str) -> None:
    res = work / "results"
    if what == "pose content":
        first, second = sorted((res / "pose").glob("*.parquet"))[:2]
        shutil.copyfile(second, first)
    elif what == "dataset content":                          # a folder artifact, changed outside the workflow
        data = res / "packs" / "skeleton" / "pretrain" / "data.npy"
        raw = bytearray(data.read_bytes())
        raw[-1] ^= 1
        data.write_bytes(bytes(raw))
    elif what == "record removed":
        next((res / "content" / "pose").glob("*.json")).unlink()
    elif what == "split":
        man, _ = _tables(work)
        labeled = man.index[man["subset"] == "labeled"]
        man.loc[labeled, "split"] = man.loc[labeled, "split"].map({"train": "test", "test": "train"})
        man.to_csv(work / "data" / "manifest.csv", index=False)
    elif what == "same bytes":
        path = next((res / "pose").glob("*.parquet"))
        data = path.read_bytes()
        path.unlink()
        path.write_bytes(data)


@pytest.mark.parametrize("what", ["pose content", "dataset content", "record removed", "split", "same bytes"])
def test_a_dry_run_writes_nothing_and_plans_exactly_what_the_run_then_runs(work, what):
    """Records and views a real run writes while it parses (or in its first jobs) are planned by a dry run
    without writing them: the same jobs, then nothing left."""
    _change(work, what)
    before = _files(work)
    plan = planned(work)
    assert _files(work) == before, "a dry run wrote or changed files"
    assert plan == Counter() if what == "same bytes" else plan[
        "pretrain_skeleton" if what == "dataset content" else "sample_clips"] == 1, plan
    assert planned(work, dry=False) == plan
    assert planned(work) == Counter()
