"""The GPU check (benchmarks/gpu_check.sh) on CPU at small size: every section runs or says why not."""

import importlib.util
import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gc = _load()


def test_bf16_peaks_pick_the_right_card():
    assert gc.bf16_peak_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert gc.bf16_peak_tflops("NVIDIA H100 PCIe") == 756.0
    assert gc.bf16_peak_tflops("NVIDIA H200") == 989.0
    assert gc.bf16_peak_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert gc.bf16_peak_tflops("Tesla V100-SXM2-32GB") is None  # no bf16 tensor cores
    assert gc.bf16_peak_tflops("Some Future GPU") is None


def test_step_flops_are_traced_and_grow_with_the_batch():
    import torch

    flops = {}
    for batch in (2, 4):
        model, opt, b, step_fn, ctx, _ = gc._train_setup("small", torch.device("cpu"), batch=batch)

        def run():
            with torch.autocast("cpu", dtype=torch.bfloat16):  # the bf16 autocast path, on CPU
                loss, _ = step_fn(model, b, ctx(0))
            loss.backward()

        flops[batch] = gc.step_flops(run)
    assert flops[2] > 1e6
    assert 1.8 < flops[4] / flops[2] < 2.2  # forward + backward work is linear in the batch


def test_a_section_past_its_limit_is_killed_and_recorded(tmp_path):
    sec = gc._run_section("train", "small", 1, tmp_path)
    assert sec["status"] == "timeout" and "1s limit" in sec["reason"] and sec["limit_s"] == 1


def test_markdown_lists_every_section():
    report = {"size": "small", "created_utc": "t", "git_revision": "g", "total_seconds": 1.0, "sections": {
        "env": {"status": "ok", "seconds": 1, "device_name": "CPU"},
        "rgb": {"status": "skipped", "seconds": 1, "reason": "no student"},
        "train": {"status": "error", "seconds": 2, "reason": "boom", "size": "small", "rows": [
            {"compiled": False, "dtype": "bf16", "clips_per_s": 3.0, "step_s": 1.0, "first_step_s": 1.0},
            {"compiled": True, "dtype": "bf16", "skipped": "off"}]}}}
    md = gc.markdown(report)
    assert "| rgb | skipped | 1 | no student |" in md and "skipped: off" in md and "| eager | bf16 | 3.0 |" in md


@pytest.mark.slow
def test_gpu_check_runs_every_section_on_cpu(tmp_path):
    """The shell entry at small size (torch.compile off: compiling on 2 CPU cores takes minutes per variant)."""
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path), "--size", "small",
                          "--no-compile"], capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert (tmp_path / "gpu_check.md").is_file()
    assert report["size"] == "small" and list(report["sections"]) == list(gc.SECTIONS)
    for name, sec in report["sections"].items():
        assert sec["status"] in ("ok", "skipped"), (name, sec)
        if sec["status"] == "skipped":
            assert sec["reason"], name
    s = report["sections"]
    assert s["env"]["torch"] and "cuda_available" in s["env"]
    if s["pose"]["status"] == "ok":
        assert [r["batch"] for r in s["pose"]["rows"]] == [1, 8, 32, 64]
        assert all(r["frames_per_s"] > 0 and r["decode_fps"] > 0 for r in s["pose"]["rows"])
    rows = {(r["compiled"], r["dtype"]): r for r in s["train"]["rows"]}
    assert set(rows) == {(False, "bf16"), (False, "fp32"), (True, "bf16"), (True, "fp32")}
    assert rows[(False, "bf16")]["step_flops"] > 0 and rows[(False, "bf16")]["achieved_tflops"] > 0
    assert rows[(True, "bf16")]["skipped"]
    assert s["ddp"]["backend"] == "gloo" and s["ddp"]["max_grad_diff"] == 0.0
    assert s["resume"]["return_codes"]["killed"] == -9 and s["resume"]["max_weight_diff"] == 0.0
    assert s["resume"]["max_weight_update"] > 0


def test_a_missing_third_party_module_skips_but_a_missing_mgfm_module_is_an_error(tmp_path, monkeypatch):
    def needs(name):
        def section(part, size):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return section

    monkeypatch.setitem(gc.RUNNERS, "rgb", needs("decord"))
    assert gc.run_section_child("rgb", "small", tmp_path / "a.json") == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["status"] == "skipped" and "'decord'" in a["reason"]
    monkeypatch.setitem(gc.RUNNERS, "rgb", needs("mgfm.models.gone"))
    assert gc.run_section_child("rgb", "small", tmp_path / "b.json") == 1
    assert json.loads((tmp_path / "b.json").read_text())["status"] == "error"
