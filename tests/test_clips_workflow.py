"""The clips and datasets rules for real on a tiny corpus: outputs appear, and a new tau reruns sampling and
everything after it, but neither pose extraction nor the MG-instance datasets."""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mgfm.common.content import write_record
from mgfm.core.packed import open_packed
from mgfm.ingest.records import manifest_records, versioned_record_path, write_versioned_record
from mgfm.core.pose_store import read_pose_meta
from mgfm.pose.params import DEMO_MODEL

from tests.support.clips import write_corpus
from tests.support.workflow import output, snakemake

DEMO_POSE_MODEL = DEMO_MODEL
pytestmark = [pytest.mark.pipeline, pytest.mark.slow]
TARGETS = ["results/clips/clips.parquet", "results/clips/sampler_stats.csv", "results/tables/table6_iod_quota.md",
           "results/tables/table7_iod_tau.csv", "results/figures/fig4_durations.png",
           *[f"results/packs/skeleton/{n}" for n in ("pretrain", "mg_train", "mg_test", "video_clips")]]


def run_targets(work: Path, configs: list[Path], *args: str) -> str:
    """The clips and datasets targets with ``configs`` on one core; Snakemake's output, each job's rule block
    included (the default profile keeps them off the console)."""
    return output(snakemake(work, "--quiet=host", *args, *TARGETS, configfiles=configs, cores=1))


def stamp(paths, age_s: float) -> None:
    """Give files one modification time, ``age_s`` seconds ago (upstream artifacts must look older)."""
    t = time.time() - age_s
    for path in paths:
        os.utime(path, (t, t))


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    work = tmp_path_factory.mktemp("wf")
    corpus = write_corpus(work / "data", n_labeled=4, n_unlabeled=2, seed=8, frames_range=(400, 700))
    taxonomy = work / "data" / "taxonomy.csv"
    pd.DataFrame(dict(class_id=range(1, 6), name=list("abcde"), group=["Head"] * 5)).to_csv(taxonomy, index=False)
    cfg = {"dataset": {"source": "files", "manifest": str(corpus["manifest"]),
                       "annotations": str(corpus["annotations"]), "taxonomy": str(taxonomy)},
           "skeleton": {"num_frames": 16}}
    (work / "config.yaml").write_text(yaml.safe_dump(cfg))
    # upstream artifacts as the download and pose stages leave them, oldest first
    res = work / "results"
    for d in ("videos", "ingest", "pose"):
        (res / d).mkdir(parents=True, exist_ok=True)
    (res / "ingest" / "validated.json").write_text("{}")
    ids = corpus["manifest_df"].video_id.tolist()
    for vid in ids:
        n = read_pose_meta(corpus["pose_dir"] / f"{vid}.parquet")["n_frames"]
        (res / "videos" / f"{vid}.mp4").write_bytes(b"")
        (res / "videos" / f"{vid}.json").write_text(json.dumps({"video_id": vid, "frames": n, "fps": 25.0,
                                                                "width": 320, "height": 240, "duration": n / 25.0}))
    # the pose rule's model input is the shipped demo model beside the Snakefile: the pose files copied in
    # below are newer than it, so the pose rule has nothing to do (checked on the log below)
    assert DEMO_POSE_MODEL.is_file(), DEMO_POSE_MODEL
    # the per-video download records (rule video_record), as a run writes them: names carry their content's digest
    with contextlib.chdir(work):
        for vid, text in manifest_records(corpus["manifest"], res / "ingest" / "videos").items():
            write_versioned_record(versioned_record_path(res / "ingest" / "videos", vid, text), text)
    stamp(work.glob("data/*.csv"), 3600)
    stamp([res / "ingest" / "validated.json", *res.glob("ingest/videos/*.json")], 3000)
    for vid in ids:                                     # the download stage's content records of its videos
        write_record(res / "videos" / f"{vid}.mp4", res / "content" / "videos" / f"{vid}.mp4.json")
    stamp([*res.glob("videos/*"), *res.glob("content/videos/*")], 2400)
    for vid in ids:                                     # the pose stage's files and their content records
        (res / "pose" / f"{vid}.parquet").write_bytes((corpus["pose_dir"] / f"{vid}.parquet").read_bytes())
        write_record(res / "pose" / f"{vid}.parquet", res / "content" / "pose" / f"{vid}.parquet.json")
    (res / "ingest" / "annotations_checked.json").write_text("{}")
    log = run_targets(work, [work / "config.yaml"])
    return work, log


def test_rules_produce_every_clips_and_skeleton_output(workflow):
    work, log = workflow
    for target in TARGETS:
        assert (work / target).exists(), target
    data, meta = open_packed(work / "results/packs/skeleton/mg_test")
    assert data.shape[1:] == (3, 16, 63)
    assert "summary:" in (work / "logs/clips/sample_clips.log").read_text()
    assert not re.search(r"rule (pose|download_video)\b", log)


def test_new_tau_reruns_sampling_and_what_follows_only(workflow):
    work, _ = workflow
    cfg = yaml.safe_load((work / "config.yaml").read_text())
    cfg["clips"] = {"tau": 0.5}
    (work / "tau.yaml").write_text(yaml.safe_dump(cfg))
    out = run_targets(work, [work / "tau.yaml"], "-n")
    jobs = re.findall(r"^(?:local)?rule (\w+):", out, re.M)
    assert set(jobs) == {"sample_clips", "iod", "iod_tables", "duration_figure", "pack_skeleton"}, out[-2000:]
    rebuilt = set(re.findall(r"output: results/packs/skeleton/(\w+)", out))
    assert rebuilt == {"pretrain", "video_clips"}
    assert "Nothing to be done" in run_targets(work, [work / "config.yaml"], "-n")
