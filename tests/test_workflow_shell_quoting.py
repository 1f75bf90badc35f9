"""No config value or file name reaches a shell unquoted.

Paths holding characters only a shell or Snakemake gives meaning to (``$(...)``, backticks, quotes, braces) are
refused before any job, naming the key; paths with spaces, parentheses and non-ASCII letters work, because every
substitution in every rule's command is quoted. The proof for the second kind: a dry run prints every command of
the whole pipeline (both modalities, a user video), each one passes ``bash -n``, and each one run with a stand-in
``mgfm`` that records its arguments hands every path over as one intact argument, while a config string full of
command substitutions (``download.user_agent``, passed inside ``--params``) reaches the stand-in verbatim and
runs nothing: the canary files it names never appear.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.workflow import (REPO, RUNNABLE_DEMO, TINY_DEMO, merged, output, repo_config, snakemake,
                                    write_config)

pytestmark = pytest.mark.pipeline

ODD_RESULTS = "runs/exp (2) é"
ODD_VIDEO = "in vids/my talk (1) é.mp4"


def _canary_string(work: Path) -> str:
    a, b, c = (work / f"CANARY_{k}" for k in "abc")
    return f"ua$(touch {a})`touch {b}`'\"; touch {c} #"


def _canaries(work: Path) -> list[Path]:
    return [p for p in work.rglob("CANARY_*")]


def _shell_blocks(text: str) -> list[str]:
    """The ``shell:`` sections of a rules file (a ``run:`` block's Python f-strings are no shell)."""
    blocks, lines = [], text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "shell:":
            indent = len(line) - len(line.lstrip())
            block = []
            for nxt in lines[i + 1:]:
                if nxt.strip() and len(nxt) - len(nxt.lstrip()) <= indent:
                    break
                block.append(nxt)
            blocks.append("\n".join(block))
    return blocks


def test_every_substitution_in_every_rule_is_quoted():
    """Static: a rule's command substitutes params, inputs, outputs, logs and wildcards only with ``:q``; the
    exceptions are the thread count and the GPU count (integers Snakemake gives) and the launcher (a command
    built from integers: mgfm, torchrun, srun)."""
    unquoted, shells = [], 0
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        text = smk.read_text()
        # the shell text the helper `recorded` appends to a command (common.smk)
        blocks = _shell_blocks(text) + re.findall(r'return f"(\{command\} &&.*)"', text)
        shells += len(blocks)
        for block in blocks:
            for m in re.finditer(r"\{(params|input|output|log|wildcards|resources)\b[^{}]*\}", block):
                if not m.group(0).endswith(":q}") and m.group(0) not in ("{params.launcher}", "{resources.gpu}"):
                    unquoted.append(f"{smk.name}: {m.group(0)}")
    assert shells > 30 and unquoted == []


@pytest.mark.parametrize("change, key", [
    ({"results": "res$(touch CANARY_x)"}, "config.results"),
    ({"results": "res`touch CANARY_x`"}, "config.results"),
    ({"results": "it's"}, "config.results"),
    ({"results": 'say"hi"'}, "config.results"),
    ({"results": "res{x}"}, "config.results"),
    ({"results": "-rf"}, "config.results"),
    ({"dataset": {"source": "files", "manifest": "m$(touch CANARY_x).csv", "annotations": "a.csv",
                  "taxonomy": "t.csv"}}, "dataset.manifest"),
    ({"pose": {"model": "m`touch CANARY_x`.onnx"}}, "pose.model"),
    ({"infer": {"videos": ["ok.mp4", "v;touch CANARY_x.mp4"]}}, "infer.videos[1]"),
])
def test_shell_characters_in_a_path_are_refused_before_any_job(tmp_path, change, key):
    write_config(tmp_path / "config.yaml", repo_config({**TINY_DEMO, **change}))
    proc = snakemake(tmp_path, "--dry-run", check=False, timeout=300)
    out = output(proc)
    assert proc.returncode != 0
    assert f"{key}: " in out and "is refused" in out and "a path of the workflow holds only" in out, out[-2000:]
    assert "Job stats" not in out and len(out.splitlines()) < 20, out
    assert not _canaries(tmp_path) and not any(p.name.startswith(("res", "it", "say")) for p in tmp_path.iterdir())


def test_a_file_name_in_infer_video_dir_the_workflow_cannot_take_names_the_file_and_the_key(tmp_path):
    videos = tmp_path / "talks"
    videos.mkdir()
    (videos / "talk {final}.mp4").write_bytes(b"")
    write_config(tmp_path / "config.yaml", repo_config({**TINY_DEMO, "infer": {"video_dir": str(videos)}}))
    proc = snakemake(tmp_path, "--dry-run", "infer", check=False, timeout=300)
    out = output(proc)
    assert proc.returncode != 0 and "WildcardError" not in out
    assert "infer.video_dir" in out and "talk {final}.mp4" in out and "mgfm infer" in out, out[-2000:]


STUB = """#!{python}
import json, os, sys
with open(os.environ["MGFM_STUB_LOG"], "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
"""


@pytest.fixture(scope="module")
def odd_commands(tmp_path_factory) -> tuple[Path, list[str]]:
    """The dry run's commands of the whole pipeline with an odd results folder, an odd video and a config string
    made of command substitutions."""
    work = tmp_path_factory.mktemp("odd")
    (work / ODD_VIDEO).parent.mkdir(parents=True)
    (work / ODD_VIDEO).write_bytes(b"")
    cfg = repo_config(merged(RUNNABLE_DEMO, {"results": ODD_RESULTS, "eval": {"modalities": ["skeleton", "rgb"]},
                                             "infer": {"videos": [ODD_VIDEO]},
                                             "download": {"user_agent": _canary_string(work)}}))
    write_config(work / "config.yaml", cfg)
    proc = snakemake(work, "--dry-run", "--printshellcmds", "--workflow-profile", "none", "all", "infer",
                     timeout=300)
    commands = [line.removeprefix("Shell command: ") for line in output(proc).splitlines()
                if line.startswith("Shell command: ") and line != "Shell command: None"]   # None: rule all
    return work, commands


def test_every_printed_command_is_valid_shell(odd_commands):
    work, commands = odd_commands
    launched = [c.split(" -- ", 1)[1] if c.startswith("python -m mgfm.common.gpu_slots ") else c for c in commands]
    rules = {shlex.split(c)[1 if c.startswith("mgfm ") else 0] for c in launched}
    assert len(commands) > 60 and {"infer", "eval", "tables", "pretrain", "packs", "ingest"} <= rules, rules
    for command in commands:
        proc = subprocess.run(["bash", "-n"], input=command, text=True, capture_output=True)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    assert not _canaries(work)


def test_every_command_hands_each_path_over_intact_and_runs_nothing_else(odd_commands, tmp_path):
    work, commands = odd_commands
    stub_dir = tmp_path / "bin"
    stub_dir.mkdir()
    for name in ("mgfm", "torchrun"):
        (stub_dir / name).write_text(STUB.format(python=sys.executable))
        (stub_dir / name).chmod(0o755)
    record = tmp_path / "argv.jsonl"
    env = {**os.environ, "PATH": f"{stub_dir}{os.pathsep}{os.environ['PATH']}", "MGFM_STUB_LOG": str(record)}
    for command in commands:
        log = shlex.split(command)[-2]                        # every command ends with `> LOG 2>&1` (or >>)
        (work / log).parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["bash", "-c", command], cwd=work, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"{command}\n{proc.stderr}"
    argv = [json.loads(line) for line in record.read_text().splitlines()]
    assert len(argv) == sum(1 + c.count(" && mgfm content record ") for c in commands)   # the record after a job
    assert not _canaries(work), "a config string was executed by a shell"
    # the config string reached the download command verbatim, inside its --params JSON
    downloads = [a for a in argv if a[1:3] == ["ingest", "download"]]
    assert downloads and all(json.loads(a[a.index("--params") + 1])["user_agent"] == _canary_string(work)
                             for a in downloads)
    # every path argument is one argument, whole: the odd results folder and the odd video
    words = [w for a in argv for w in a]
    assert f"{ODD_RESULTS}/ingest/validated.json" in words and ODD_VIDEO in words
    assert not [w for w in words if w in ("runs/exp", "(2)", "é") or w.startswith(("(2)", "é/"))]
    report = next(a for a in argv if a[1:3] == ["tables", "report"])
    assert f"{ODD_RESULTS}/tables/table6_iod_quota.md" in report


@pytest.mark.slow
def test_real_jobs_run_under_a_results_folder_with_spaces_parentheses_and_accents(tmp_path):
    write_config(tmp_path / "config.yaml", repo_config({**TINY_DEMO, "results": ODD_RESULTS}))
    snakemake(tmp_path, f"{ODD_RESULTS}/pose/demo000.parquet", f"{ODD_RESULTS}/ingest/validated.json")
    res = tmp_path / ODD_RESULTS
    assert (res / "pose" / "demo000.parquet").is_file() and (res / "videos" / "demo000.json").is_file()
    assert [p.name for p in tmp_path.iterdir() if p.name not in ("config.yaml", "logs", "runs", ".snakemake")] == []
