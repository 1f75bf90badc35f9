"""Where code that needs mmpose runs: this Python when it has the pinned OpenMMLab stack, else the pinned venv.

The ONNX export needs mmpose/mmdet, which need numpy < 2 and their own pins (envs/mmpose-requirements.txt), so
they never enter the main environment. With ``--use-conda`` the export rule runs in envs/mmpose.yaml, which
installs that file; without conda, ``mgfm pose export-onnx`` runs the export in the venv that
scripts/mmpose/build-venv.sh builds from the same file (once, cached under ~/.cache/mgfm; a file lock keeps
concurrent jobs from building it twice), with this checkout's mgfm on its path. Which one is used depends only
on whether this Python has exactly the pinned torch, mmengine, mmcv-lite, mmdet and mmpose.
"""

from __future__ import annotations

import importlib.metadata
import logging
import os
import re
import subprocess
from pathlib import Path

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
REQUIREMENTS = REPO / "envs" / "mmpose-requirements.txt"
BUILD_VENV = REPO / "scripts" / "mmpose" / "build-venv.sh"
#: the packages whose versions decide whether this Python is the pinned mmpose environment
DECISIVE = ("torch", "mmengine", "mmcv-lite", "mmdet", "mmpose")


def pinned_versions(path: Path = REQUIREMENTS) -> dict[str, str]:
    """``name -> version`` of the ``==`` lines of the requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s#;]+)", line)
        if m:
            pins[m.group(1).lower()] = m.group(2)
    return pins


def missing_pins(pins: dict[str, str] | None = None) -> list[str]:
    """The decisive packages this Python lacks or has at another version (a local build tag such as
    torch's ``+cpu`` counts as the same version)."""
    pins = pins if pins is not None else pinned_versions()
    wrong = []
    for name in DECISIVE:
        try:
            have = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            wrong.append(f"{name} (not installed)")
            continue
        if have.split("+")[0] != pins.get(name):
            wrong.append(f"{name} {have} (pinned {pins.get(name)})")
    return wrong


def pinned_venv_python() -> Path:
    """The pinned mmpose venv's python, built first if needed (minutes, once; progress on stderr)."""
    if not BUILD_VENV.is_file():
        raise RuntimeError(f"{BUILD_VENV} not found: the pinned mmpose environment is built from a checkout of "
                           "mgfm; run from one, or use snakemake --use-conda (envs/mmpose.yaml)")
    out = subprocess.run(["bash", str(BUILD_VENV)], stdout=subprocess.PIPE, text=True, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"building the pinned mmpose venv failed (bash {BUILD_VENV}, exit {out.returncode}; "
                           "its output is above)")
    return Path(out.stdout.strip().splitlines()[-1]) / "bin" / "python"


def run_in_pinned_venv(module: str, args: list[str]) -> int:
    """``python -m module args`` in the pinned mmpose venv (built first if needed), with this checkout first on
    PYTHONPATH. Returns the exit status."""
    python = pinned_venv_python()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])}
    log.info("running %s in %s", module, python)
    return subprocess.run([str(python), "-m", module, *args], env=env, check=False).returncode
