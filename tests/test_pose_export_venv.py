"""`mgfm pose export-onnx` from the main environment (numpy 2, no mmpose) runs the export in the pinned mmpose venv.

This is what the workflow's export rule does without --use-conda. It needs the pinned venv, which takes minutes to
build the first time, so it runs when `bash scripts/mmpose/ci.sh` has just built (or reused) it: there
MGFM_MMPOSE_VENV_TEST=1 is set and this test runs in the main environment; elsewhere it is skipped with that
command.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from mgfm.pose.mmpose_env import REPO, missing_pins, pinned_venv_python

pytestmark = pytest.mark.skipif(os.environ.get("MGFM_MMPOSE_VENV_TEST") != "1",
                                reason="needs the pinned mmpose venv: `bash scripts/mmpose/ci.sh` runs this test after "
                                       "building (or reusing) it")

DET_CONFIG = "mmpose::demo/mmdetection_cfg/rtmdet_m_640-8xb32_coco-person.py"


def test_main_environment_exports_in_the_pinned_venv(tmp_path):
    import hashlib

    assert missing_pins(), "this test is meant for an environment without the pinned mmpose stack"
    venv_python = pinned_venv_python()
    ckpt = tmp_path / "rtmdet-m_random.pth"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    subprocess.run([str(venv_python), "-c", "import sys; from mgfm.pose.onnx_export import save_random_checkpoint; "
                    "save_random_checkpoint('detector', sys.argv[1], sys.argv[2])", DET_CONFIG, str(ckpt)],
                   check=True, env=env)
    digest = hashlib.sha256(ckpt.read_bytes()).hexdigest()
    out = tmp_path / "onnx" / "rtmdet-m.onnx"
    proc = subprocess.run([sys.executable, "-m", "mgfm", "pose", "export-onnx", "--kind", "detector", "--config",
                           DET_CONFIG, "--checkpoint", str(ckpt), "--sha256", digest[:8], "--out", str(out)],
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "pinned venv" in proc.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["source"]["checkpoint_sha256"] == digest
    assert side["sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()


def test_a_wrong_digest_stops_the_export(tmp_path):
    ckpt = tmp_path / "x.pth"
    ckpt.write_bytes(b"not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "mgfm", "pose", "export-onnx", "--kind", "detector", "--config",
                           DET_CONFIG, "--checkpoint", str(ckpt), "--sha256", "0" * 8, "--out",
                           str(tmp_path / "x.onnx")], capture_output=True, text=True)
    assert proc.returncode != 0 and "does not match the pinned 00000000" in proc.stderr, proc.stderr[-2000:]
    assert not (tmp_path / "x.onnx").exists()
