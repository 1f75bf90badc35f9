"""Recovery after a hard kill: Snakemake and its jobs killed with SIGKILL during pose and during pretraining, then
the README's recovery command, end byte-identical to an uninterrupted run; then ``--forcerun`` retrains.

A tiny demo (4 videos) with a tiny single-stream pretraining runs to the joint encoder three times over: once
uninterrupted, once killed twice and recovered. Pose files, packed datasets and encoder weights are compared
byte for byte.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.workflow import REPO, SNAKEFILE, TINY_DEMO, merged, repo_config, snakemake, write_config

pytestmark = [pytest.mark.slow, pytest.mark.pipeline]

TINY_PRETRAIN = {"pretrain": {"streams": ["joint"],
                              "model": {"num_frames": 8, "hidden": 16, "projector_dims": [32, 32],
                                        "instance_projector_dims": [32, 32]},
                              "train": {"epochs": 40, "batch_size": 8, "warmup_epochs": 1, "checkpoint_every": 1,
                                        "log_every_steps": 1}},
                 "eval": {"streams": ["joint"], "emotion": {"skeleton_streams": ["joint"]}}}
TARGET = "results/models/skeleton/joint/encoder.safetensors"


def _prepare(workdir: Path) -> None:
    workdir.mkdir(parents=True)
    write_config(workdir / "config.yaml", repo_config(merged(TINY_DEMO, TINY_PRETRAIN)))


def _kill_when(workdir: Path, ready, timeout: float = 400) -> None:
    """Start the workflow in its own process group and SIGKILL the whole group once ``ready()`` holds."""
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(SNAKEFILE), "--directory", str(workdir),
           "--configfile", str(workdir / "config.yaml"), "--cores", "2", TARGET]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.Popen(cmd, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            assert proc.poll() is None, "the run ended before the moment it was to be killed at"
            assert time.monotonic() < deadline, "timed out waiting for the moment to kill the run"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def readme_recovery() -> list[list[str]]:
    """The arguments of each ``snakemake`` command of the README's recovery paragraph."""
    text = (REPO / "README.md").read_text()
    assert "### Recovery after a hard kill" in text, "README.md lacks its recovery paragraph"
    section = text.split("### Recovery after a hard kill", 1)[1]
    line = re.search(r"```bash\n(.*?)\n```", section, re.S).group(1).strip()
    commands = [shlex.split(part) for part in line.split("&&")]
    assert commands and all(c[0] == "snakemake" for c in commands), line
    return [c[1:] for c in commands]


def _recover(workdir: Path) -> None:
    """Run the README's recovery commands (the last one with this test's target)."""
    *first, last = readme_recovery()
    for args in first:
        snakemake(workdir, *args, cores=None)
    snakemake(workdir, *last, TARGET, cores=None)


def _files(workdir: Path) -> dict[str, bytes]:
    res = workdir / "results"
    paths = [*res.glob("pose/*.parquet"), *res.glob("videos/*.mp4"), *res.glob("packs/skeleton/*/*.npy"),
             *res.glob("packs/skeleton/*/meta.parquet"), res / "clips" / "clips.parquet",
             res / "models" / "skeleton" / "joint" / "encoder.safetensors"]
    return {str(p.relative_to(workdir)): p.read_bytes() for p in paths}


def test_kill_during_pose_and_pretraining_then_recover(tmp_path):
    ref = tmp_path / "reference"
    _prepare(ref)
    snakemake(ref, TARGET)

    work = tmp_path / "killed"
    _prepare(work)
    pose_logs = work / "logs" / "pose"
    _kill_when(work, lambda: pose_logs.is_dir() and any(pose_logs.iterdir()))
    assert not (work / TARGET).exists()
    locked = snakemake(work, TARGET, check=False)
    assert locked.returncode != 0 and "lock" in (locked.stdout + locked.stderr).lower()   # what the README fixes

    ckpt = work / "results" / "models" / "skeleton" / "joint" / "checkpoints" / "last.pt"
    _recover_then_kill = readme_recovery()[0]
    snakemake(work, *_recover_then_kill, cores=None)
    _kill_when(work, ckpt.is_file)
    assert not (work / TARGET).exists()
    _recover(work)
    assert "resuming after epoch" in (work / "logs" / "pretrain" / "skeleton_joint.log").read_text()

    got, want = _files(work), _files(ref)
    assert sorted(got) == sorted(want) and len(want) > 10
    differ = [name for name in want if got[name] != want[name]]
    assert not differ, f"not byte-identical after recovery: {differ}"


    # --forcerun retrains: the finished run's checkpoint is set aside, never resumed; same bytes again
    snakemake(work, TARGET, "--forcerun", "pretrain_skeleton")
    log = (work / "logs" / "pretrain" / "skeleton_joint.log").read_text()
    assert "resuming" not in log and "finished run" in log
    assert (work / TARGET).read_bytes() == want[TARGET]
