"""pose.preset: what the workflow fetches, exports and runs (mgfm.pose.presets), and the pose rules' parse-time checks.

The export and the pose jobs themselves run in tests/test_pose_preset_rule.py (mmpose venv); here planning and
dry runs only: which jobs a config gives, which file names carry which digest, which configs stop at parse time.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml

from mgfm.config import resolve
from mgfm.pose.params import DEMO_MODEL
from mgfm.pose.presets import PRESETS, PresetError, plan_pose

from tests.support.workflow import REPO, TINY_DEMO, merged, output, repo_config, snakemake, write_config

MODELS = "results-x/models/pose"
RTMW = PRESETS["rtmw-x"]


def plan(pose: dict):
    return plan_pose(resolve("pose", pose), MODELS)


def test_preset_fetches_and_exports_the_pinned_files_into_the_results_folder():
    p = plan({"preset": "rtmw-x"})
    assert sorted(p.fetch) == sorted([RTMW["checkpoint"], RTMW["det_checkpoint"]])
    assert {f.path for f in p.fetch.values()} == {f"{MODELS}/{RTMW['checkpoint']}", f"{MODELS}/{RTMW['det_checkpoint']}"}
    assert {f.sha256 for f in p.fetch.values()} == {RTMW["checkpoint_sha256"], RTMW["det_checkpoint_sha256"]}
    pose_onnx = f"{MODELS}/onnx/rtmw-x_simcc-cocktail14_pt-ucoco_270e-384x288-f840f204_20231122.f840f204.onnx"
    det_onnx = f"{MODELS}/onnx/rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.235e8209.onnx"
    assert p.section["model"] == pose_onnx and p.section["detector"]["model"] == det_onnx
    assert p.exports[pose_onnx].kind == "pose" and p.exports[pose_onnx].config == RTMW["config"]
    assert p.exports[pose_onnx].checkpoint == f"{MODELS}/{RTMW['checkpoint']}"
    assert p.exports[det_onnx].kind == "detector" and p.exports[det_onnx].sha256 == "235e8209"
    assert p.section["mmpose"]["config"] == RTMW["config"] and p.section["model_sha256"] == ""
    assert p.produced() == {f.path for f in p.fetch.values()} | {pose_onnx, det_onnx}
    # the effective section is a valid pose section
    assert resolve("pose", p.section) == p.section


def test_own_checkpoint_replaces_the_preset_file_and_needs_its_digest(tmp_path):
    ckpt = str(tmp_path / "mine.pth")
    p = plan({"preset": "rtmw-x", "mmpose": {"checkpoint": ckpt, "checkpoint_sha256": "ABCDEF0123"}})
    assert list(p.fetch) == [RTMW["det_checkpoint"]]  # only the detector's file is still the preset's
    assert p.section["model"] == f"{MODELS}/onnx/mine.abcdef01.onnx"
    assert p.exports[p.section["model"]].checkpoint == ckpt
    with pytest.raises(PresetError, match=r"pose\.mmpose\.checkpoint_sha256: a pinned sha256"):
        plan({"preset": "rtmw-x", "mmpose": {"checkpoint": ckpt}})


def test_flip_test_setting_is_another_export():
    default, off = plan({"preset": "rtmw-x"}), plan({"preset": "rtmw-x", "flip_test": False})
    assert off.section["model"] == default.section["model"].replace(".onnx", ".flip-off.onnx")
    assert off.exports[off.section["model"]].flip_test == "off"
    assert off.section["detector"]["model"] == default.section["detector"]["model"]


def test_preset_and_an_explicit_onnx_model_conflict():
    with pytest.raises(PresetError, match=r"pose\.model is set to 'x\.onnx'.*pose\.preset"):
        plan({"preset": "rtmw-x", "model": "x.onnx"})


def test_preset_with_the_mmpose_backend_fetches_but_exports_nothing():
    p = plan({"preset": "rtmw-x", "backend": "mmpose"})
    assert len(p.fetch) == 2 and not p.exports
    assert p.section["mmpose"]["checkpoint"] == f"{MODELS}/{RTMW['checkpoint']}"
    assert p.section["model"] == ""


def test_without_preset_bare_checkpoint_names_lie_in_the_models_folder():
    p = plan({"backend": "mmpose", "mmpose": {"checkpoint": "a.pth", "checkpoint_url": "https://x/a.pth",
                                              "checkpoint_sha256": "12345678", "fetch": True}})
    assert p.section["mmpose"]["checkpoint"] == f"{MODELS}/a.pth" and list(p.fetch) == ["a.pth"]
    with pytest.raises(PresetError, match="must lie directly in"):
        plan({"backend": "mmpose", "mmpose": {"checkpoint": "elsewhere/a.pth", "checkpoint_url": "https://x/a.pth",
                                              "checkpoint_sha256": "12345678", "fetch": True}})
    assert plan({}).section == resolve("pose", {})  # the demo: nothing changes


# ---- the workflow at parse time ------------------------------------------------------------------------------


def _jobs(text: str) -> dict[str, int]:
    table = text.split("Job stats:", 1)[1] if "Job stats:" in text else ""
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, flags=re.M)
            if m.group(1) != "total"}


def _dry_run(workdir: Path, change: dict, *targets: str, check: bool = True):
    write_config(workdir / "config.yaml", repo_config(merged(TINY_DEMO, change)))
    return snakemake(workdir, "-n", *targets, check=check, timeout=300)


def test_preset_plans_fetch_export_and_pose_jobs(tmp_path):
    proc = _dry_run(tmp_path, {"results": "results-own-gpu", "pose": {"preset": "rtmw-x"}},
                    *(f"results-own-gpu/pose/demo00{i}.parquet" for i in range(4)))
    jobs = _jobs(output(proc))
    assert jobs.get("fetch_pose_model") == 2 and jobs.get("export_pose_onnx") == 2 and jobs.get("pose") == 4, jobs


def test_paper_pose_section_plans_under_another_results_folder(tmp_path):
    """The GPU template (paper config + own file) with `results` not `results`: the pose models go to that
    folder instead of stopping the run at planning time."""
    paper = yaml.safe_load((REPO / "workflow" / "configs" / "paper.yaml").read_text())
    proc = _dry_run(tmp_path, {"results": "results-own-gpu", "pose": paper["pose"]},
                    "results-own-gpu/pose/demo000.parquet")
    assert _jobs(output(proc)).get("export_pose_onnx") == 2, output(proc)[-2000:]


def test_a_missing_model_file_stops_the_run_at_parse_time(tmp_path):
    proc = _dry_run(tmp_path, {"pose": {"model": str(tmp_path / "absent.onnx")}}, "results/clips/clips.parquet",
                    check=False)
    assert proc.returncode != 0
    assert f"config key pose.model: file not found: {tmp_path / 'absent.onnx'}" in output(proc)


def test_an_existing_model_file_is_planned(tmp_path):
    model = tmp_path / "m.onnx"
    shutil.copy(DEMO_MODEL, model)
    proc = _dry_run(tmp_path, {"pose": {"model": str(model)}}, "results/pose/demo000.parquet")
    assert _jobs(output(proc)).get("pose") == 1
