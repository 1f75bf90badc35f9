"""The SLURM path for real: a single-node SLURM cluster from Debian's packages runs part of the demo
workflow through profiles/slurm, and SLURM's own tools confirm what happened.

Opt-in: these tests (marked `slurm`) run only with MGFM_TEST_SLURM=1 in the environment (.ci/run sets it), since
they install system packages and start daemons; a plain `pytest` skips them (tests/conftest.py). The cluster
comes up in a fixture (scripts/slurm/up.sh: apt install when missing, the client commands moved to a private
prefix off the default PATH, munged + slurmctld + slurmd, node idle) and goes down afterwards by the process ids
it recorded (scripts/slurm/down.sh), unless it was already running before the tests. Every SLURM command these
tests run, Snakemake's included, finds the client commands through SLURM_PATH. Skipped, with the reason, where
no SLURM can be started: not root, no apt-get, or a slurm.conf that this repository did not write.

The profile is the repository's, adapted to the test node only in sizes: `cores` and the memory cap fit the
node (2 CPUs), GPU requests are set to 0 (none here), per-video groups hold 2 videos so that 4 videos make 2 group
submissions, and the first status check comes after 1 s instead of 40 s. Pretraining runs as two processes
through the rule's srun launcher (docs/cluster.md, multi-node): two tasks on the one node, one torchrun agent
each, meeting at the c10d rendezvous, gloo on CPU.
Targets run through SLURM are listed in SLURM_TARGETS: add a rule's output there to cover it.
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mgfm.pose.params import DEMO_MODEL

from tests.support.workflow import REPO as ROOT, TINY_DEMO, output, repo_config, snakemake, write_config

UP, DOWN = ROOT / "scripts" / "slurm" / "up.sh", ROOT / "scripts" / "slurm" / "down.sh"
STATE = Path(os.environ.get("MGFM_SLURM_STATE", "/var/lib/mgfm-slurm"))
# the client commands' private folder (scripts/slurm/up.sh): on the PATH of these tests only
SLURM_BIN = Path(os.environ.get("MGFM_SLURM_PREFIX", "/opt/mgfm-slurm")) / "bin"
SLURM_PATH = {"PATH": f"{SLURM_BIN}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
# pretraining as two processes through the srun launcher: two tasks, one CPU each, gloo
TWO_PROCESSES = {"nodes": 1, "tasks": 2, "tasks_per_gpu": 0, "mpi": "srun", "gpu": 0, "cpus_per_task": 1}
TINY = copy.deepcopy(TINY_DEMO)
VIDEO_IDS = [f"demo{i:03d}" for i in range(4)]
# what goes through SLURM: the demo corpus, validation, the per-video download group, the annotation check
SLURM_TARGETS = ["results/ingest/annotations_checked.json"]
# outputs compared byte for byte with a local run of the same targets
COMPARED = ["results/demo/manifest.csv", "results/demo/annotations.csv", "results/demo/taxonomy.csv",
            *[f"results/videos/{v}.{ext}" for v in VIDEO_IDS for ext in ("json", "mp4")]]
# and, once the demo pose model is in the package, the per-video pose group and one stream's pretraining (a
# GPU rule run with gpu=0: a plain process) with a one-epoch schedule
POSE_MODEL = DEMO_MODEL
if POSE_MODEL.is_file():
    SLURM_TARGETS.append("results/models/skeleton/joint/encoder.safetensors")
    COMPARED += [f"results/pose/{v}.parquet" for v in VIDEO_IDS]
    # the encoder is trained by two processes under SLURM and one locally: compared by its loss, not its bytes
    TINY["pretrain"] = {"train": {"epochs": 1, "batch_size": 8, "warmup_epochs": 0, "checkpoint_every": 1}}
SUBMITTED = re.compile(r"has been submitted with SLURM jobid (\d+) \(log: ([^)]+)\)")

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.pipeline, pytest.mark.timeout(420)]


# ---- the cluster ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_cluster():
    if os.geteuid() != 0:
        pytest.skip("SLURM test cluster needs root (scripts/slurm/up.sh starts munged, slurmctld, slurmd)")
    if not shutil.which("apt-get") and not shutil.which("slurmctld"):
        pytest.skip("no apt-get to install SLURM from Debian's packages, and no slurmctld installed")
    was_running = (STATE / "pids").is_file()
    proc = subprocess.run(["bash", str(UP)], capture_output=True, text=True, timeout=300)
    if proc.returncode == 2:
        pytest.skip(f"no SLURM can be started here: {proc.stderr.strip()}")
    assert proc.returncode == 0, f"scripts/slurm/up.sh failed:\n{proc.stdout}\n{proc.stderr}"
    # idempotent: a second call finds it running and the node idle
    again = subprocess.run(["bash", str(UP)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0 and "already running" in again.stderr, again.stderr
    # the client commands live in the private prefix only: nothing else on this machine finds a SLURM client
    assert (SLURM_BIN / "sinfo").is_file() and (SLURM_BIN / "scontrol").is_file()
    default_path = os.pathsep.join(d for d in os.environ["PATH"].split(os.pathsep) if Path(d) != SLURM_BIN)
    assert shutil.which("sinfo", path=default_path) is None and shutil.which("scontrol", path=default_path) is None
    yield
    if not was_running:
        subprocess.run(["bash", str(DOWN)], capture_output=True, text=True, timeout=60)


def scontrol_job(jobid: str) -> dict[str, str]:
    """`scontrol show job` as a dict (finished jobs stay visible for MinJobAge = 300 s)."""
    out = subprocess.run([str(SLURM_BIN / "scontrol"), "-o", "show", "job", jobid], capture_output=True, text=True,
                         check=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


# ---- running the workflow -------------------------------------------------------------------------------------


def test_profile(tmp_path: Path, download_group_size: int = 2) -> Path:
    """The repository's SLURM profile with sizes fitted to the one-node test cluster."""
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    profile["cores"] = os.cpu_count() and min(os.cpu_count(), 2)
    profile["resources"] = {"mem_mb": 4000}
    profile["jobs"] = 4
    profile["latency-wait"] = 5
    profile["retries"] = 0
    profile["slurm-init-seconds-before-status-checks"] = 1
    profile["default-resources"]["mem_mb"] = 1000
    profile["default-resources"]["runtime"] = 10
    profile["default-resources"]["disk_mb"] = 1000
    profile["set-resources"]["pretrain_skeleton"] = dict(TWO_PROCESSES)
    for rule, res in profile["set-resources"].items():
        if "gpu" in res:  # no GPU on the test node: 0 overrides a rule's own default too
            res["gpu"] = 0
        res.pop("gpu_model", None)
        res.pop("cpus_per_gpu", None)
        res["mem_mb"] = min(res.get("mem_mb", 1000), 2000)
        res["runtime"] = min(res.get("runtime", 10), 10)
        res.pop("disk_mb", None)
    profile["group-components"] = {g: download_group_size for g in profile["group-components"]}
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    return folder


test_profile.__test__ = False  # a helper, not a test


def scratch(tmp_path_factory, name: str) -> Path:
    """A working directory with the tiny demo's config (the repository's config.yaml with TINY merged in)."""
    workdir = tmp_path_factory.mktemp(name)
    write_config(workdir / "config.yaml", repo_config(TINY))
    return workdir


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    """The same targets run locally, with the profile's threads: x264 writes its thread count into the stream
    header (the only byte that differs otherwise)."""
    workdir = scratch(tmp_path_factory, "local")
    profile = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.yaml").read_text())
    threads = [f"{rule}={min(n, 2)}" for rule, n in profile.get("set-threads", {}).items()]
    snakemake(workdir, *SLURM_TARGETS, "--set-threads", *threads, timeout=300)
    return workdir


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    workdir = scratch(tmp_path_factory, "slurm")
    profile = test_profile(tmp_path_factory.mktemp("profile"))
    proc = snakemake(workdir, *SLURM_TARGETS, profile=profile, env=SLURM_PATH, timeout=300)
    return workdir, profile, output(proc)


# ---- tests ----------------------------------------------------------------------------------------------------


def test_jobs_ran_as_slurm_jobs_and_completed(slurm_run):
    workdir, _, log = slurm_run
    submitted = SUBMITTED.findall(log)
    assert submitted, f"no SLURM submission in the snakemake output:\n{log[-3000:]}"
    comments = {}
    for jobid, slurm_log in submitted:
        info = scontrol_job(jobid)
        assert info.get("JobState") == "COMPLETED" and info.get("ExitCode") == "0:0", (jobid, info)
        assert info.get("WorkDir") == str(workdir), info.get("WorkDir")
        comments[jobid] = info.get("Comment", "")
    # the 4 per-video download jobs went as 2 group jobs of 2, and the rest one job each
    download_groups = [c for c in comments.values() if "videos_download" in c or "download_video" in c]
    assert len(download_groups) == 2, comments
    assert any("demo_corpus" in c for c in comments.values()), comments
    assert len(submitted) == len(set(j for j, _ in submitted))


def test_outputs_match_a_local_run(slurm_run, local_run):
    workdir, _, _ = slurm_run

    def content(root: Path, rel: str) -> bytes:
        # the manifest's file:// urls name the working directory
        return (root / rel).read_bytes().replace(str(root).encode(), b"<workdir>")

    different = [rel for rel in COMPARED if content(workdir, rel) != content(local_run, rel)]
    assert not different, f"SLURM and local runs differ in {different}"


@pytest.mark.skipif(not POSE_MODEL.is_file(), reason="the demo pose model is not in the package")
def test_pretraining_ran_as_two_processes_through_the_srun_launcher(slurm_run, local_run):
    """The pretraining job's srun started two torchrun agents that met at the rendezvous (world size 2); their
    encoder trains like the one-process local run: the same global batch and augmentation draws, but DropPath
    masks drawn per process (and float sums in another order), so the epoch's loss agrees to a percent or two
    (measured: 0.16 %), not to the bit."""
    workdir, _, _ = slurm_run
    card = json.loads((workdir / "results/models/skeleton/joint/card.json").read_text())
    local = json.loads((local_run / "results/models/skeleton/joint/card.json").read_text())
    assert card["world_size"] == 2 and local["world_size"] == 1, (card["world_size"], local["world_size"])
    assert card["final_loss"] == pytest.approx(local["final_loss"], rel=0.02)


def test_second_submission_has_nothing_to_do(slurm_run):
    workdir, profile, _ = slurm_run
    out = output(snakemake(workdir, *SLURM_TARGETS, profile=profile, env=SLURM_PATH, timeout=300))
    assert "Nothing to be done" in out and not SUBMITTED.search(out), out[-3000:]


def test_failed_job_reported_with_log_and_keep_going_finishes_the_rest(slurm_cluster, tmp_path_factory):
    """A corrupt source video fails its download job under SLURM; --keep-going downloads the other three."""
    workdir = scratch(tmp_path_factory, "failing")
    profile = test_profile(tmp_path_factory.mktemp("profile"), download_group_size=1)
    snakemake(workdir, "results/demo/manifest.csv", timeout=300)  # the corpus, locally
    bad = workdir / "results" / "demo" / "raw" / "demo001.mp4"
    assert bad.is_file(), sorted(p.name for p in bad.parent.glob("*"))
    bad.write_bytes(b"this is not a video")
    targets = [f"results/videos/{v}.json" for v in VIDEO_IDS]
    proc = snakemake(workdir, *targets, "--keep-going", profile=profile, env=SLURM_PATH, check=False, timeout=300)
    out = output(proc)
    assert proc.returncode != 0, out[-3000:]
    # the failing job: its SLURM state, its SLURM log path and the rule's own log path are reported
    failed = [(j, lg) for j, lg in SUBMITTED.findall(out) if scontrol_job(j).get("JobState") == "FAILED"]
    assert len(failed) == 1, (failed, out[-3000:])
    jobid, slurm_log = failed[0]
    assert f"SLURM-job '{jobid}' failed" in out or jobid in out
    assert slurm_log in out and Path(slurm_log).is_file()
    assert "logs/download/demo001.log" in out
    assert "demo001" in (workdir / "logs" / "download" / "demo001.log").read_text()
    # the rest finished, and the failed video left nothing that looks finished
    for v in VIDEO_IDS:
        assert (workdir / "results" / "videos" / f"{v}.json").is_file() == (v != "demo001"), v
    assert not (workdir / "results" / "videos" / "demo001.mp4").exists()


def test_missing_partition_gives_a_clear_message_before_submitting(slurm_cluster, tmp_path, monkeypatch):
    """On a cluster without a default partition, an unset MGFM_SLURM_PARTITION stops the run before any job."""
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "scontrol").write_text("#!/bin/sh\necho 'PartitionName=gpu AllowGroups=ALL Default=NO State=UP'\n")
    (fake / "scontrol").chmod(0o755)
    workdir = tmp_path / "work"
    workdir.mkdir()
    write_config(workdir / "config.yaml", repo_config(TINY))
    for key in [k for k in os.environ if k.startswith("MGFM_SLURM_")]:
        monkeypatch.delenv(key)
    slurm_profile = ROOT / "profiles" / "slurm"
    env = {"PATH": f"{fake}:{SLURM_PATH['PATH']}"}
    proc = snakemake(workdir, "-n", "results/demo/manifest.csv", profile=slurm_profile, env=env, check=False,
                     timeout=300)
    out = output(proc)
    assert proc.returncode != 0, out[-2000:]
    assert "set MGFM_SLURM_PARTITION" in out, out[-2000:]
    # and with the variable set, the same dry run goes through
    proc = snakemake(workdir, "-n", "results/demo/manifest.csv", profile=slurm_profile,
                     env={**env, "MGFM_SLURM_PARTITION": "gpu"}, check=False, timeout=300)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-2000:]
