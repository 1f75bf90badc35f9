"""The one way tests run the repository's Snakemake workflow: ``snakemake(workdir, *args)`` runs
``python -m snakemake`` on the repository's Snakefile in a scratch working directory, with this interpreter's
``bin/`` first on PATH (the rules call ``mgfm``), and fails the test with the command and the end of its
output when it exits non-zero (unless ``check=False``, for tests that expect a failure).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SNAKEFILE = REPO / "Snakefile"
# a tiny demo corpus: 4 short videos (2 labeled, 2 unlabeled), seconds to render and normalise
TINY_DEMO = {"dataset": {"source": "demo", "demo": {"seed": 7, "n_videos": 4, "n_labeled": 2, "n_subjects": 4,
                                                   "labeled_duration_s": [20.0, 22.0],
                                                   "unlabeled_duration_s": [20.0, 22.0]}}}
# the smallest such demo on which every protocol runs (mgfm.eval.plan skips none): 6 short videos, 4 labeled (two
# train subjects, one held out for validation), and a semi-supervised subset of at least 2 clips
RUNNABLE_DEMO = {"dataset": {"source": "demo", "demo": {**TINY_DEMO["dataset"]["demo"], "n_videos": 6, "n_labeled": 4,
                                                        "n_subjects": 5}},
                 "eval": {"semi_supervised": {"fraction": 0.5}}}


def merged(base: dict, change: dict) -> dict:
    """``base`` with ``change`` merged in, key by key (nested sections stay complete)."""
    out = dict(base)
    for key, value in change.items():
        out[key] = merged(out.get(key) or {}, value) if isinstance(value, dict) else value
    return out


def repo_config(change: dict | None = None) -> dict:
    """The repository's config.yaml with ``change`` merged in."""
    return merged(yaml.safe_load((REPO / "config.yaml").read_text()), change or {})


def write_config(path: Path, config: dict) -> Path:
    """Write ``config`` as YAML to ``path`` and return the path."""
    path.write_text(yaml.safe_dump(config, sort_keys=True))
    return path


def snakemake(workdir: Path, *args: str, configfiles: Sequence[Path] | None = None, cores: int | None = 2,
              profile: Path | None = None, env: dict | None = None, check: bool = True,
              timeout: float = 600, snakefile: Path = SNAKEFILE) -> subprocess.CompletedProcess:
    """Run the workflow in ``workdir`` (its working directory) with ``args`` (targets, flags).

    ``configfiles``: default ``workdir/config.yaml`` when it exists; ``()`` passes none, and then the run uses the
    repository's config.yaml (the demo). A given file replaces the demo, whose values reach the run only from
    a file that holds them: ``repo_config(change)`` written out, or ``[REPO / "config.yaml", own]``. ``profile``: a
    workflow profile folder (then the profile sets the cores and ``cores`` is ignored). ``env``: variables set
    on top of this process's environment. ``snakefile``: the repository's by default; a test's own small
    workflow for what concerns Snakemake's handling of any workflow (the console).
    """
    if configfiles is None:
        configfiles = [workdir / "config.yaml"] if (workdir / "config.yaml").is_file() else []
    cmd = [sys.executable, "-m", "snakemake", "--snakefile", str(snakefile), "--directory", str(workdir)]
    if configfiles:
        cmd += ["--configfile", *map(str, configfiles)]
    if profile is not None:
        cmd += ["--workflow-profile", str(profile)]
    if cores is not None and profile is None:
        cmd += ["--cores", str(cores)]
    cmd += list(args)
    full_env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
                **(env or {})}
    proc = subprocess.run(cmd, cwd=workdir, env=full_env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"snakemake {' '.join(args)} in {workdir} failed ({proc.returncode}):\n"
                    f"{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}", pytrace=False)
    return proc


def output(proc: subprocess.CompletedProcess) -> str:
    """Everything Snakemake printed (it logs to stderr, and some messages go to stdout)."""
    return proc.stdout + proc.stderr
