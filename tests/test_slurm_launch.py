"""Multi-GPU and multi-node pretraining on SLURM, checked without a cluster: the recipes of docs/cluster.md are
applied to the repository's SLURM profile, Snakemake resolves the pretraining job (dry run: its resources and its
command), and the pinned snakemake-executor-plugin-slurm builds the sbatch line from those resources. The flags
must agree with each other and with the srun line of the rule's launcher; the rendezvous variables must be
expanded inside each srun task (the plugin removes SLURM_* from the rule's own environment), which a fake task
environment checks by running the task's script with stand-ins for scontrol and torchrun."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.support.workflow import REPO, TINY_DEMO, output, repo_config, snakemake, write_config

TARGET = "results/models/skeleton/joint/encoder.safetensors"


def recipes() -> dict[str, dict]:
    """The YAML recipes of docs/cluster.md's multi-GPU section, by kind ('one_node' / 'multi_node')."""
    text = (REPO / "docs" / "cluster.md").read_text()
    section = text.split("### Multi-GPU and multi-node pretraining", 1)[1].split("\n### ", 1)[0]
    found = {}
    for block in re.findall(r"```yaml\n(.*?)```", section, re.S):
        recipe = yaml.safe_load(block)
        found["multi_node" if recipe["set-resources"]["pretrain_skeleton"].get("nodes", 1) > 1 else "one_node"] = recipe
    assert set(found) == {"one_node", "multi_node"}, found
    return found


class Resources(dict):
    """A job's resources as the plugin reads them (``.get`` and attribute access)."""

    __getattr__ = dict.__getitem__


def resolved_job(tmp_path: Path, recipe: dict) -> tuple[Resources, int, str]:
    """(resources, threads, shell command) of the pretraining job under the SLURM profile plus ``recipe``."""
    profile = yaml.safe_load((REPO / "profiles" / "slurm" / "config.yaml").read_text())
    profile["resources"] = recipe.get("resources", profile.get("resources"))
    for rule, res in recipe["set-resources"].items():
        profile["set-resources"][rule] = res  # the recipe's entry replaces the rule's
    folder = tmp_path / "profile"
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(profile, sort_keys=False))
    config = repo_config(TINY_DEMO)
    write_config(tmp_path / "config.yaml", config)
    env = {"MGFM_SLURM_PARTITION": "gpu", "MGFM_SLURM_ACCOUNT": "proj"}
    proc = snakemake(tmp_path, "-n", "-p", "--forceall", TARGET, profile=folder, env=env, timeout=300)
    out = output(proc)
    block = out[out.index("rule pretrain_skeleton:"):]
    res_line = re.search(r"^\s*resources: (.*)$", block, re.M).group(1)
    threads = int(re.search(r"^\s*threads: (\d+)$", block, re.M).group(1))
    shell = re.search(r"^Shell command: (.*)$", block, re.M).group(1)
    resources = Resources()
    for item in res_line.split(", "):
        key, _, value = item.partition("=")
        resources[key] = int(value) if value.lstrip("-").isdigit() else value
    return resources, threads, shell


def sbatch_line(resources: Resources, threads: int) -> str:
    """The sbatch call the pinned plugin makes for a job with these resources (no account/partition lookups)."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SimpleNamespace(resources=resources, threads=threads)
    params = {"run_uuid": "uuid", "slurm_logfile": "log", "comment_str": "rule_pretrain_skeleton", "account": "-A proj",
              "partition": "-p gpu", "workdir": "/work"}
    return get_submit_command(job, params) + set_gres_string(job)


def flags(line: str) -> set[str]:
    return {w for w in shlex.split(line) if w.startswith("-")}


@pytest.mark.pipeline
def test_multi_node_recipe_gives_consistent_sbatch_and_srun_flags(tmp_path):
    resources, threads, shell = resolved_job(tmp_path, recipes()["multi_node"])
    sbatch = sbatch_line(resources, threads)
    words = shlex.split(sbatch)
    assert {"--nodes=4", "--ntasks=4", "--cpus-per-task=64", "--gres=gpu:8"} <= flags(sbatch), sbatch
    assert words[words.index("--mem") + 1] == "256000" and words[words.index("-t") + 1] == "240"
    contradicting = [f for f in flags(sbatch) if f.startswith(("--gpus", "--ntasks-per-gpu", "--cpus-per-gpu"))]
    assert not contradicting, sbatch          # GPUs per node through gres only, tasks counted once
    assert resources["mpi"] == "srun"         # the job step runs the rule's own srun, not `srun -n1 <rule>`
    # the rule's command: one torchrun agent per node, one process per GPU of the node
    assert shell.startswith("python -m mgfm.common.gpu_slots --gpus 0 -- srun ")
    cmd = shlex.split(shell)
    srun = cmd[cmd.index("srun"):cmd.index("bash")]
    assert {"--nodes=4", "--ntasks=4", "--cpus-per-task=64", "--gres=gpu:8"} <= set(srun), srun
    script = cmd[cmd.index("-c") + 1]
    assert "--nproc-per-node=8" in script and "-m mgfm" in script
    outside = [w for w in cmd if w != script]
    assert not any("$SLURM" in w for w in outside), "SLURM variables must be expanded inside the srun task"


def test_the_task_script_expands_the_rendezvous_in_the_step_environment(tmp_path):
    """Run one srun task's script as SLURM would: step variables set, fake scontrol and torchrun on PATH."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text('#!/bin/sh\n[ "$1 $2 $3" = "show hostnames node[07-10]" ] && '
                                      'printf "node07\\nnode08\\nnode09\\nnode10\\n"\n')
    (bin_dir / "torchrun").write_text('#!/bin/sh\nfor a in "$@"; do echo "$a"; done\n')
    for f in bin_dir.iterdir():
        f.chmod(0o755)
    launcher = launcher_of({"gpu": 0, "nodes": 4, "tasks": 4, "gres": "gpu:8", "cpus_per_task": 64})
    cmd = shlex.split(launcher)
    script = cmd[cmd.index("-c") + 1]
    env = {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SLURM_NTASKS": "4", "SLURM_JOB_ID": "123456",
           "SLURM_JOB_NODELIST": "node[07-10]"}
    res = subprocess.run(["bash", "-c", script, "torchrun", "pretrain", "skeleton", "--stream", "joint"], env=env,
                         capture_output=True, text=True, timeout=30)
    assert res.returncode == 0, res.stderr
    args = res.stdout.split()
    assert "--nnodes=4" in args and "--rdzv-id=123456" in args and "--rdzv-backend=c10d" in args
    assert "--rdzv-endpoint=node07:29956" in args                      # first node, port 29500 + job id % 1000
    assert args[-5:] == ["mgfm", "pretrain", "skeleton", "--stream", "joint"]


@pytest.mark.pipeline
def test_one_node_recipe(tmp_path):
    resources, threads, shell = resolved_job(tmp_path, recipes()["one_node"])
    sbatch = sbatch_line(resources, threads)
    assert {"--gpus=8", "--cpus-per-gpu=8"} <= flags(sbatch), sbatch
    assert not [f for f in flags(sbatch) if f.startswith(("--ntasks-per-gpu", "--gres", "--nodes=4"))], sbatch
    assert "torchrun --standalone --nproc-per-node 8 -m mgfm pretrain skeleton" in shell


def launcher_of(resources: dict) -> str:
    """common.smk's torch_launcher, evaluated on its own (the rules file is Snakemake's, not a module)."""
    from snakemake.iocontainers import Namedlist

    src = (REPO / "workflow" / "rules" / "common.smk").read_text()
    start = src.index("def _gres_gpus(")
    end = src.index("def params_json(")
    scope: dict = {"shlex": shlex}                                        # common.smk's import they use
    exec(compile(src[start:end], "common.smk", "exec"), scope)  # the two functions only
    res = Namedlist(fromdict=resources)
    return scope["torch_launcher"](None, res)


def test_launcher_forms():
    assert launcher_of({"gpu": 1, "nodes": 1}) == "mgfm"
    assert launcher_of({"gpu": 0, "nodes": 1}) == "mgfm"
    assert launcher_of({"gpu": 4, "nodes": 1}) == "torchrun --standalone --nproc-per-node 4 -m mgfm"
    two_cpu = shlex.split(launcher_of({"gpu": 0, "nodes": 1, "tasks": 2, "cpus_per_task": 1}))
    assert two_cpu[:5] == ["srun", "--nodes=1", "--ntasks=2", "--kill-on-bad-exit=1", "--cpus-per-task=1"]
    assert "--nproc-per-node=1" in two_cpu[two_cpu.index("-c") + 1]  # CPU processes: one per task
