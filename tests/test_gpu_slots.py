"""One GPU workstation: each GPU job takes its own GPU(s) (mgfm.common.gpu_slots) and the default profile's
`gpu` limit decides how many run at once. The machine's GPUs are faked with CUDA_VISIBLE_DEVICES (the picker
chooses among its entries), so the tests run without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mgfm.common import gpu_slots
from tests.support.workflow import REPO, output, snakemake

PICKER = [sys.executable, "-m", "mgfm.common.gpu_slots"]
SHOW = [sys.executable, "-c", "import os; print(repr(os.environ.get('CUDA_VISIBLE_DEVICES')))"]


def run(args, env, **kw):
    return subprocess.run([*PICKER, *args], env={**os.environ, **env}, cwd=REPO, capture_output=True, text=True,
                          timeout=60, **kw)


def base_env(tmp_path, gpus: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", "SLURM_JOB_ID")}
    env["MGFM_GPU_LOCK_DIR"] = str(tmp_path / "locks")
    if gpus is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpus
    return env


def test_candidates_come_from_cuda_visible_devices():
    assert gpu_slots.candidate_gpus({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}) == ["0", "1", "2", "3"]
    assert gpu_slots.candidate_gpus({"CUDA_VISIBLE_DEVICES": "GPU-8f2a,MIG-1"}) == ["GPU-8f2a", "MIG-1"]
    assert gpu_slots.candidate_gpus({"CUDA_VISIBLE_DEVICES": ""}) == []
    with pytest.raises(ValueError, match="'../x' is not a GPU index"):
        gpu_slots.candidate_gpus({"CUDA_VISIBLE_DEVICES": "0,../x"})


def test_acquire_is_all_or_none(tmp_path):
    held = gpu_slots.try_acquire(["0", "1", "2"], 2, tmp_path)
    assert held is not None and held[0] == ["0", "1"]
    assert gpu_slots.try_acquire(["0", "1", "2"], 2, tmp_path) is None   # one free: none taken, none kept
    third = gpu_slots.try_acquire(["0", "1", "2"], 1, tmp_path)
    assert third is not None and third[0] == ["2"]
    for fd in held[1] + third[1]:
        os.close(fd)                                                     # closing releases the lock
    assert gpu_slots.try_acquire(["0", "1", "2"], 3, tmp_path)[0] == ["0", "1", "2"]
    with pytest.raises(ValueError, match="needs 4 GPUs, this machine offers 3"):
        gpu_slots.acquire(4, ["0", "1", "2"], tmp_path)


def test_a_job_sees_only_its_gpu_and_holds_it_while_it_runs(tmp_path):
    env = base_env(tmp_path, "0,1")
    first = subprocess.Popen([*PICKER, "--gpus", "1", "--", sys.executable, "-c",
                              "import os, time; print(os.environ['CUDA_VISIBLE_DEVICES'], flush=True); time.sleep(3)"],
                             env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert first.stdout.readline().strip() == "0"
    second = run(["--gpus", "1", "--", *SHOW], env)
    assert second.returncode == 0 and second.stdout.strip() == "'1'"     # GPU 0 is taken while the first runs
    busy = run(["--gpus", "1", "--timeout", "1", "--", *SHOW], {**env, "CUDA_VISIBLE_DEVICES": "0"})
    assert busy.returncode == 1 and "no 1 free GPUs" in busy.stderr
    first.wait(timeout=30)
    assert run(["--gpus", "1", "--", *SHOW], {**env, "CUDA_VISIBLE_DEVICES": "0"}).stdout.strip() == "'0'"


def test_slurm_binding_and_cpu_machines_are_left_alone(tmp_path):
    slurm = run(["--gpus", "1", "--", *SHOW], {**base_env(tmp_path, "3"), "SLURM_JOB_ID": "42"})
    assert slurm.stdout.strip() == "'3'"                                 # SLURM bound the GPU already
    none = run(["--gpus", "1", "--", *SHOW], base_env(tmp_path, ""))
    assert none.returncode == 0 and none.stdout.strip() == "''"           # no GPU here: runs on the CPU
    hidden = run(["--gpus", "0", "--", *SHOW], base_env(tmp_path, "0,1"))
    assert hidden.stdout.strip() == "''"                                  # asked for none: sees none
    too_many = run(["--gpus", "3", "--", *SHOW], base_env(tmp_path, "0,1"))
    assert too_many.returncode == 1 and "needs 3 GPUs, this machine offers 2" in too_many.stderr


# ---- through Snakemake and the default profile -------------------------------------------------------------

# Four GPU jobs declared as the workflow's GPU rules declare them. Each job records the GPU it sees, waits until
# all four have started (at most config `polls` x 0.1 s), and records how many had started by then.
SNAKEFILE = r'''
GPU = 1

rule all:
    input: expand("out/{i}.txt", i=range(4))
    localrule: True

rule gpu_job:
    output: "out/{i}.txt"
    resources: gpu=GPU
    params: polls=config.get("polls", 30)
    log: "logs/{i}.log"
    shell:
        "python -m mgfm.common.gpu_slots --gpus {resources.gpu} -- sh -c 'touch started.{wildcards.i}; n=0; "
        "while [ $(ls started.* | wc -l) -lt 4 ] && [ $n -lt {params.polls} ]; do sleep 0.1; n=$((n+1)); done; "
        "echo $CUDA_VISIBLE_DEVICES $(ls started.* | wc -l) > {output}' 2> {log}"
'''


def gpu_workflow(tmp_path: Path, *args: str, gpus: str = "0,1,2,3") -> list[tuple[str, int]]:
    workdir = tmp_path / "wf"
    workdir.mkdir()
    (workdir / "Snakefile").write_text(SNAKEFILE)
    env = {"CUDA_VISIBLE_DEVICES": gpus, "MGFM_GPU_LOCK_DIR": str(tmp_path / "locks")}
    proc = snakemake(workdir, *args, configfiles=(), profile=REPO / "profiles" / "default",
                     snakefile=workdir / "Snakefile", env={**env, "PATH": f"{Path(sys.executable).parent}:"
                                                           f"{os.environ['PATH']}"}, timeout=300)
    assert proc.returncode == 0, output(proc)[-3000:]
    rows = [(workdir / "out" / f"{i}.txt").read_text().split() for i in range(4)]
    return [(gpu, int(started)) for gpu, started in rows]


@pytest.mark.pipeline
def test_four_gpu_workstation_runs_four_jobs_side_by_side(tmp_path):
    rows = gpu_workflow(tmp_path, "--cores", "4", "--resources", "gpu=4", "--config", "polls=300")
    assert sorted(gpu for gpu, _ in rows) == ["0", "1", "2", "3"]        # one GPU each, all different
    assert all(started == 4 for _, started in rows)                       # all four ran at the same time
    # (each job's wait ends as soon as all four have started; one at a time, none would see four)


@pytest.mark.pipeline
def test_default_profile_runs_one_gpu_job_at_a_time(tmp_path):
    t0 = time.perf_counter()
    rows = gpu_workflow(tmp_path, "--cores", "4", "--config", "polls=10")
    assert [started for _, started in sorted(rows, key=lambda r: r[1])] == [1, 2, 3, 4], rows
    assert time.perf_counter() - t0 > 4 * 1.0 * 0.9                       # each waited its 1 s alone


@pytest.mark.pipeline
def test_the_workflow_asks_for_a_gpu_only_where_there_are_gpus(tmp_path):
    """The real rules: on a machine with GPUs a pose job asks for one and starts through the picker; on one
    without (CUDA_VISIBLE_DEVICES empty) it asks for none."""
    from tests.support.workflow import TINY_DEMO, repo_config, write_config

    write_config(tmp_path / "config.yaml", repo_config(TINY_DEMO))
    for gpus, want in (("0,1,2,3", 1), ("", 0)):
        proc = snakemake(tmp_path, "-n", "-p", "--quiet", "host", "--logger-mgfm-full", "results/pose/demo000.parquet",
                         profile=REPO / "profiles" / "default", env={"CUDA_VISIBLE_DEVICES": gpus})
        out = output(proc)
        assert f"python -m mgfm.common.gpu_slots --gpus {want} -- mgfm pose extract" in out, out[-3000:]
