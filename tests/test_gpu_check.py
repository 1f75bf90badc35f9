"""The GPU check (benchmarks/gpu_check.sh): its pieces here, and the whole check on CPU in a venv that holds only
the target GPU machine's packages plus the wheels `--prepare` makes, installed as the GPU run installs them."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gc = _load()


@pytest.mark.parametrize("name, card, bf16, tf32", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM", 989.4, 494.7),
    ("NVIDIA H100 PCIe", "H100 PCIe", 756.5, 378.0),
    ("NVIDIA H100 NVL", "H100 NVL", 835.5, 417.5),
    ("NVIDIA H200", "H200 SXM", 989.4, 494.7),
    ("NVIDIA H200 NVL", "H200 NVL", 835.5, 417.5),        # a substring match gave it the SXM part's peak
    ("NVIDIA H800", "H800 SXM", 989.4, 494.7),
    ("NVIDIA H800 PCIe", "H800 PCIe", 756.5, 378.0),      # likewise
    ("NVIDIA GH200 480GB", "GH200", 989.4, 494.7),
    ("NVIDIA A100-SXM4-80GB", "A100", 312.0, 156.0),
    ("NVIDIA A100 80GB PCIe", "A100", 312.0, 156.0),
    ("NVIDIA L40S", "L40S", 362.1, 183.0),
])
def test_peaks_come_from_the_exact_device_name(name, card, bf16, tf32):
    peaks = gc.card_peaks(name)
    assert (peaks["card"], peaks["bf16"], peaks["tf32"]) == (card, bf16, tf32)
    assert gc._peak_for(peaks, "bf16") == bf16 and gc._peak_for(peaks, "fp32") == tf32  # fp32 rows: TF32 peak


@pytest.mark.parametrize("name", ["Tesla V100-SXM2-32GB", "NVIDIA GeForce RTX 4090", "NVIDIA H100X", "Future GPU"])
def test_unknown_cards_get_no_peak(name):
    assert gc.card_peaks(name) is None


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
    assert "log_tail" in sec


def test_markdown_lists_every_section():
    report = {"size": "small", "created_utc": "t", "git_revision": "g", "total_seconds": 1.0, "sections": {
        "env": {"status": "ok", "seconds": 1, "device_name": "CPU", "carried_wheels": ["decord-0.6.0.whl"]},
        "pose": {"status": "ok", "seconds": 1, "rows": [], "torch_rows": [
            {"batch": 64, "dtype": "bf16", "device": "cuda", "frames_per_s": 9000.0}],
            "could_not": ["the pose stage on onnxruntime's CUDA provider"]},
        "rgb": {"status": "skipped", "seconds": 1, "reason": "no student"},
        "train": {"status": "error", "seconds": 2, "reason": "boom", "size": "small", "rows": [
            {"compiled": False, "dtype": "bf16", "batch": 4, "clips_per_s": 3.0, "step_s": 1.0, "first_step_s": 1.0,
             "achieved_tflops": 400.0, "peak_tflops": 989.4, "fraction_of_peak": 0.404},
            {"compiled": True, "dtype": "bf16", "skipped": "off"}]}}}
    md = gc.markdown(report)
    assert "| rgb | skipped | 1 | no student |" in md and "skipped: off" in md
    assert "| eager | bf16 | 4 | 3.0 |" in md and "| 989.4 | 0.404 |" in md
    assert "| 64 | bf16 | cuda | 9000.0 |" in md and "Not measured: the pose stage on onnxruntime's CUDA" in md
    assert "carried: decord-0.6.0.whl" in md


def test_a_missing_third_party_module_skips_but_a_missing_mgfm_module_is_an_error(tmp_path, monkeypatch):
    def needs(name):
        def section(part, size):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return section

    monkeypatch.setitem(gc.RUNNERS, "rgb", needs("decord"))
    assert gc.run_section_child("rgb", "small", tmp_path / "a.json") == 0
    a = json.loads((tmp_path / "a.json").read_text())
    assert a["status"] == "skipped" and "'decord'" in a["reason"] and "--prepare" in a["reason"]
    monkeypatch.setitem(gc.RUNNERS, "rgb", needs("mgfm.models.gone"))
    assert gc.run_section_child("rgb", "small", tmp_path / "b.json") == 1
    assert json.loads((tmp_path / "b.json").read_text())["status"] == "error"


@pytest.mark.slow  # four short pretraining runs
def test_the_resume_measure_flags_a_resume_that_lost_the_optimiser_state(tmp_path):
    """The resume section's measure (distance between the runs over the distance training moved the weights)
    is 0 for a correct resume on CPU and far above the GPU allowance when the optimiser state is lost."""
    import torch
    from safetensors.torch import load_file

    from mgfm.common.seeding import derive_seed
    from mgfm.config import resolve
    from mgfm.models import DSTE
    from mgfm.train.checkpoint import CHECKPOINT_DIR, LAST
    from mgfm.train.loop import TrainConfig
    from mgfm.train.pretrain import pretrain_skeleton, split_model_params
    from tests.support.skeleton import write_synthetic_skeleton

    write_synthetic_skeleton(tmp_path / "ds", gc.RESUME_DATA["small"][0], frames=64, seed=5)
    params = gc._resume_params("small")

    class Killed(Exception):
        pass

    def kill_after_2(done, row):
        if done == gc.RESUME_KILL_AFTER:
            raise Killed

    pretrain_skeleton(tmp_path / "ds", "joint", tmp_path / "a", params, seed=3)
    for name, lose_optimiser in (("b", False), ("c", True)):
        with pytest.raises(Killed):
            pretrain_skeleton(tmp_path / "ds", "joint", tmp_path / name, params, seed=3, on_epoch_end=kill_after_2)
        if lose_optimiser:
            path = tmp_path / name / CHECKPOINT_DIR / LAST
            state = torch.load(path, weights_only=True)
            state["optimizer"]["state"] = {}  # Adam's moments gone, as a checkpoint without them would leave it
            torch.save(state, path)
        pretrain_skeleton(tmp_path / "ds", "joint", tmp_path / name, params, seed=3)
    p = resolve("pretrain", params)
    arch, _ = split_model_params(p["model"])
    torch.manual_seed(derive_seed(TrainConfig.from_section(
        p["train"], seed=derive_seed(3, "pretrain", "skeleton", "joint")).seed, "init"))
    init = DSTE(arch).state_dict()
    a = load_file(tmp_path / "a" / "encoder.safetensors")
    _, good, moved = gc.weight_distance(a, load_file(tmp_path / "b" / "encoder.safetensors"), init)
    _, broken, _ = gc.weight_distance(a, load_file(tmp_path / "c" / "encoder.safetensors"), init)
    assert moved > 0 and good == gc.RESUME_RTOL["cpu"] == 0.0
    assert broken > 100 * gc.RESUME_RTOL["cuda"], broken  # measured when written: 0.39


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_gpu_check_runs_on_the_gpu_image_packages_and_the_prepared_wheels(tmp_path):
    """The check as the GPU run does it, on CPU: a venv with only the image's packages (CPU torch for its CUDA
    torch; scripts/gpu_image/build-venv.sh, cached), the wheels of `gpu_check.sh --prepare` (for this venv's
    Python) installed by the script with pip --target + PYTHONPATH, every section "ok", none skipped.
    ~2 minutes on an idle 2-core machine with the venv cached (its first build adds ~2 minutes)."""
    build = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_image" / "build-venv.sh")], capture_output=True,
                           text=True, timeout=900)
    assert build.returncode == 0, build.stderr[-3000:]
    venv = Path(build.stdout.strip().splitlines()[-1])
    py = venv / "bin" / "python"
    lacks = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('jsonschema', 'decord', "
                            "'snakemake') if u.find_spec(m)])"], capture_output=True, text=True, timeout=60)
    assert lacks.stdout.strip() == "[]", "the image venv must lack what the image lacks: " + lacks.stdout
    version = subprocess.run([str(py), "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
                             capture_output=True, text=True, timeout=60).stdout.strip()
    wheels = tmp_path / "wheels"
    prep = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), "--prepare", "--python-version", version,
                           "--dest", str(wheels)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable})
    assert prep.returncode == 0, prep.stderr[-3000:]
    assert len(list(wheels.glob("*.whl"))) == 5
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(PYTHON=str(py), TMPDIR=str(tmp_path), CUDA_VISIBLE_DEVICES="")
    res = subprocess.run(["bash", str(ROOT / "benchmarks" / "gpu_check.sh"), str(tmp_path / "out"), "--wheels",
                          str(wheels), "--size", "small", "--no-compile"], capture_output=True, text=True,
                         timeout=900, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "installed 5 carried wheels" in res.stderr
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    assert (tmp_path / "out" / "gpu_check.md").is_file()
    assert report["size"] == "small" and list(report["sections"]) == list(gc.SECTIONS)
    s = report["sections"]
    assert {name: sec["status"] for name, sec in s.items()} == {name: "ok" for name in gc.SECTIONS}, \
        {name: (sec["status"], sec.get("reason"), sec.get("log_tail", "")[-800:]) for name, sec in s.items()}
    assert s["env"]["executable"].startswith(str(venv)) and len(s["env"]["carried_wheels"]) == 5
    assert not str(s["env"]["jsonschema"]).startswith("missing") and not str(s["env"]["decord"]).startswith("missing")
    assert "snakemake" in s["env"]["missing_dependencies"]  # the image's package list, not this suite's venv
    assert [r["batch"] for r in s["pose"]["rows"]] == list(gc.POSE_BATCHES)
    assert all(r["frames_per_s"] > 0 and r["decode_fps"] > 0 for r in s["pose"]["rows"])
    assert [r["batch"] for r in s["pose"]["torch_rows"]] == list(gc.POSE_BATCHES) and s["pose"]["could_not"]
    for name in ("train", "rgb"):
        rows = {(r["compiled"], r["dtype"]): r for r in s[name]["rows"]}
        assert set(rows) == {(False, "bf16"), (False, "fp32"), (True, "bf16"), (True, "fp32")}
        assert rows[(False, "bf16")]["step_flops"] > 0 and rows[(False, "bf16")]["achieved_tflops"] > 0
        assert rows[(True, "bf16")]["skipped"]
    assert s["ddp"]["backend"] == "gloo" and s["ddp"]["processes"] == 2 and s["ddp"]["return_codes"] == [0, 0]
    assert s["ddp"]["max_grad_diff"] <= s["ddp"]["rtol"] * s["ddp"]["max_grad"]
    assert s["resume"]["return_codes"]["killed"] == -9 and s["resume"]["max_weight_diff"] == 0.0
    assert s["resume"]["weight_update_norm"] > 0
