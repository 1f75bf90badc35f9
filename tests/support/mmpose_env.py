"""When the mmpose tests run: only in the mmpose environment (envs/mmpose-requirements.txt), never in the main
one (numpy 2, no mmcv). There they are skipped with the command that runs them for real; under
MGFM_REQUIRE_MMPOSE=1 (set by scripts/mmpose/ci.sh) a missing mmpose is an error instead of a skip."""

from __future__ import annotations

import importlib.util
import os

import pytest

RUN_COMMAND = "bash scripts/mmpose/ci.sh"

MMPOSE_MISSING = importlib.util.find_spec("mmpose") is None

requires_mmpose = pytest.mark.skipif(
    MMPOSE_MISSING and os.environ.get("MGFM_REQUIRE_MMPOSE") != "1",
    reason="mmpose is not installed here (it needs numpy<2 and mmcv, so it never enters the main test "
           f"environment): `{RUN_COMMAND}` builds the pinned mmpose venv (envs/mmpose-requirements.txt) and runs "
           "this test in it, as CI does",
)
