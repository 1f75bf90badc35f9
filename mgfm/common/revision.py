"""The package checkout's git commit, recorded in every card and metrics file so a number names its code."""

from __future__ import annotations

import subprocess
from pathlib import Path


def git_revision() -> str | None:
    """The commit of the checkout the package runs from, or None (not a git checkout, or git missing)."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).resolve().parent, capture_output=True,
                             text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return (res.stdout.strip() or None) if res.returncode == 0 else None
