"""Suite-wide test settings: the markers' meaning (registered in pyproject.toml) and the SLURM opt-in.

- ``slow``: minutes of end-to-end work; ``pytest -m "not slow"`` is the development loop.
- ``pipeline``: runs the Snakemake workflow in a subprocess (real jobs or dry runs), through
  ``tests.support.workflow.snakemake``.
- ``slurm``: starts a single-node SLURM cluster (``scripts/slurm/up.sh``: apt install, root daemons). Such
  tests run only when ``MGFM_TEST_SLURM=1`` is set (``.ci/run`` sets it), so that a developer's plain
  ``pytest`` never installs system packages or starts daemons; otherwise they are skipped with that reason.
"""

from __future__ import annotations

import os

import pytest

SLURM_OPT_IN = "MGFM_TEST_SLURM"


def slurm_opted_in() -> bool:
    """Whether this run may install and start SLURM (``MGFM_TEST_SLURM=1``)."""
    return os.environ.get(SLURM_OPT_IN, "") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if slurm_opted_in():
        # last, so the rest of the suite runs first on the machine as it was (scripts/slurm/up.sh keeps the
        # SLURM client commands off the default PATH: the SLURM executor plugin probes `scontrol` at every
        # Snakemake start when it finds `sinfo`, ~10 s each without a running controller)
        items.sort(key=lambda item: item.get_closest_marker("slurm") is not None)
        return
    skip = pytest.mark.skip(reason=f"starting SLURM (apt install, daemons) is opt-in: set {SLURM_OPT_IN}=1 "
                                   "(.ci/run does)")
    for item in items:
        if item.get_closest_marker("slurm") is not None:
            item.add_marker(skip)
