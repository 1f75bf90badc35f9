"""The GPU check: every GPU code path of the project, measured in one short unattended run (python part of
``benchmarks/gpu_check.sh``; see that script's header for the machine it assumes and how missing packages travel).

    python benchmarks/gpu_check.py OUT_DIR [--size auto|paper|small] [--only env,pose,...] [--no-compile]

Sections, each in its own subprocess with its own time limit, so one that fails, hangs or crashes the CUDA
context records its error (and whatever it measured before) and the others still run; a failed or timed-out
section's output tail is printed and kept in the JSON:

- ``env``: python, torch, CUDA, the card and its peaks (``PEAKS``, by the exact device name), onnxruntime and its
  providers, decord, the packages that travelled as wheels, missing project dependencies.
- ``pose``: what the machine allows. The stage's own loop (``estimate_video``: prefetched decode with decord +
  crops + model + Parquet) with the shipped demo model at batch 1, 8, 32 and 64 beside decode-only frames/s of the
  same video, on onnxruntime's CUDA provider when it has one, else on its CPU provider; and the demo model's
  network (``DemoSimCCNet``, random weights: the same shapes and FLOPs) through torch on the GPU, model alone.
  ``could_not`` says what was not possible here (on the target image: onnxruntime's CUDA provider).
- ``train``: MG-FM-Skele (``paper.yaml``'s ``pretrain`` block at paper size, ``config.yaml``'s at small size):
  the real pretraining step (four-view augmentation, DSTE, projectors, decorrelation loss, backward, Adam) eager
  and ``torch.compile``-d, bf16 autocast and float32 (TF32 matmuls, as training runs it); clips/s and achieved
  TFLOP/s from the step's FLOPs counted by tracing (``step_flops``) against the card's dense peak of that
  precision (bf16 rows: bf16 peak; float32 rows: TF32 peak).
- ``rgb``: the SMILE Stage 2 step (VideoMAE student, CLIP teacher on the fly, in bf16 on a GPU) eager in bf16 and
  float32, and with the teacher compiled: the student is never compiled, since its visible-token count comes
  from a boolean mask (data-dependent shapes break the graph).
- ``ddp``: two processes in one gloo group (two NCCL ranks cannot share one GPU) run the pretraining step under
  DistributedDataParallel through the all-gather-with-gradients path (``gather_with_grad``), each on its half of
  the global batch; rank 0's all-reduced gradients must match one process's gradients on the whole batch.
- ``resume``: ``pretrain_skeleton`` run uninterrupted, and run again but SIGKILLed right after a checkpoint then
  resumed; the final encoder weights must agree (``RESUME_RTOL``).

On a machine without CUDA (or with ``--size small``) every section runs the same code at small size; that is
what the test suite runs (``tests/test_gpu_check.py``, in a venv holding only the GPU image's packages). Writes
``OUT_DIR/gpu_check.json`` and ``OUT_DIR/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: Seconds each section may take on a GPU (paper size) and at small size. Sum on a GPU: 440 s, under 8 minutes
#: with the wrapper's start-up; the shell wrapper adds a hard limit over everything. Compiling dominates
#: ``train`` (two compiled variants) and ``rgb`` (the compiled teacher); they run last within their section, so
#: a slow compiler costs those rows only (a section killed at its limit keeps the rows it measured).
LIMITS = {"env": (15, 60), "pose": (50, 180), "train": (170, 240), "rgb": (90, 240), "ddp": (50, 180),
          "resume": (65, 240)}
SECTIONS = tuple(LIMITS)

#: Dense (no sparsity) peaks in TFLOP/s: (card, device-name pattern, bf16 tensor cores, TF32 tensor cores, plain
#: float32), from the vendor's datasheets. The pattern must match the whole name that
#: ``torch.cuda.get_device_name`` gives, less a leading "NVIDIA ": a substring would give an H200 NVL the H200's
#: peak, or an H800 PCIe the H800 SXM's. Unknown cards get no peak (the JSON says so), never a guess.
PEAKS = (
    ("H100 SXM", r"H100( 80GB HBM3| SXM5?( 80GB)?)?", 989.4, 494.7, 66.9),
    ("H100 PCIe", r"H100 PCIe( 80GB)?", 756.5, 378.0, 51.2),
    ("H100 NVL", r"H100 NVL( 94GB)?", 835.5, 417.5, 60.0),
    ("H200 SXM", r"H200( 141GB HBM3e)?", 989.4, 494.7, 66.9),
    ("H200 NVL", r"H200 NVL( 141GB)?", 835.5, 417.5, 60.0),
    ("GH200", r"GH200( \d+GB)?( HBM3e?)?", 989.4, 494.7, 66.9),
    ("H800 SXM", r"H800( 80GB HBM3)?", 989.4, 494.7, 66.9),
    ("H800 PCIe", r"H800 PCIe( 80GB)?", 756.5, 378.0, 51.2),
    ("A100", r"A100[- ](SXM4|PCIE|PCIe)[- ]\d+GB|A100 \d+GB PCIe|A100", 312.0, 156.0, 19.5),
    ("A800", r"A800[- ](SXM4|PCIE|PCIe)[- ]\d+GB|A800 \d+GB PCIe|A800", 312.0, 156.0, 19.5),
    ("L40S", r"L40S", 362.1, 183.0, 91.6),
    ("L40", r"L40", 181.0, 90.5, 90.5),
    ("L4", r"L4", 121.0, 60.0, 30.3),
    ("A10", r"A10", 125.0, 62.5, 31.2),
)

#: Resume check: ||resumed - uninterrupted|| / ||uninterrupted - init|| over the encoder's weights (L2 over all
#: of them: the distance between the two runs relative to how far training moved the weights). The children run
#: float32 with deterministic kernels (``_deterministic``), so on CPU the runs are bitwise equal (bound 0); on a
#: GPU a remaining atomics-based reduction may differ in the last bits, and Adam turns such noise in a zero
#: gradient into lr-sized steps, hence a small allowance. A resume that lost the optimiser state, the RNG state or
#: an epoch moves the weights by a large part of the update (``tests/test_gpu_check.py`` measures it).
RESUME_RTOL = {"cpu": 0.0, "cuda": 1e-3}

#: DDP check: max |DDP gradient - one-process gradient| relative to the largest gradient, both in float32 (no
#: TF32) on the same device. Two processes sum the gradient in another order than one; on a GPU the attention
#: backward also uses atomics. Losing the all-gather's gradient (each rank seeing only its half) is a large part.
DDP_RTOL = {"cpu": 1e-4, "cuda": 2e-3}

#: Pose check: seconds of video and frame size (the paper's normalised videos are up to 1280 px wide; a
#: 640x360 25 fps video stands in when no demo video lies in results/).
POSE_VIDEO = {"paper": (60.0, 640, 360), "small": (3.0, 160, 120)}
POSE_BATCHES = (1, 8, 32, 64)

TRAIN_STEPS = {"paper": 5, "small": 1}
#: Training batches by precision: the paper's (train.batch_size, 356: one GPU per stream) in bf16; float32 keeps
#: every activation at twice the size (~62 GiB saved at 356), so it runs a smaller batch and reports per clip.
TRAIN_BATCH = {"paper": {"bf16": None, "fp32": 128}, "small": {"bf16": 4, "fp32": 4}}
#: RGB Stage 2 batches per GPU (paper: 256 over 8 GPUs = 32; float32 half of that).
RGB_BATCH = {"paper": {"bf16": 32, "fp32": 16}, "small": {"bf16": 2, "fp32": 2}}
#: DDP check: the global batch, split over the two processes.
DDP_BATCH = {"paper": 32, "small": 8}
#: Resume check: (clips, batch): 4 steps an epoch on a GPU, 2 on a CPU; the killed run dies right after epoch
#: RESUME_KILL_AFTER.
RESUME_DATA = {"paper": (128, 32), "small": (16, 8)}
RESUME_EPOCHS, RESUME_KILL_AFTER = 3, 2
#: The ddp and resume checks at small size: config.yaml's encoder narrowed further (they start five processes
#: between them, and the test suite runs them on two CPU cores); the code path is the same.
SMALL_MODEL = {"hidden": 16, "heads": 1, "depth": 1, "projector_dims": [64, 64, 64],
               "instance_projector_dims": [64, 64, 64]}
TAIL = 3000  # characters of a failed child's output kept and printed


# ---- helpers -------------------------------------------------------------------------------------------


def _write_json(path: Path, obj: dict) -> None:
    from mgfm.common.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n")


class Part:
    """A section's result file, rewritten after every measurement so a timeout still leaves what was measured."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict = {}

    def set(self, **values) -> None:
        self.data.update(values)
        _write_json(self.path, self.data)

    def add(self, key: str, row: dict) -> None:
        self.data.setdefault(key, []).append(row)
        _write_json(self.path, self.data)


def _device():
    import torch

    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _sync(device) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def card_peaks(name: str) -> dict | None:
    """{"card", "bf16", "tf32", "fp32"} dense TFLOP/s of the card called ``name`` (``PEAKS``), or None."""
    short = re.sub(r"^NVIDIA\s+", "", name.strip())
    for card, pattern, bf16, tf32, fp32 in PEAKS:
        if re.fullmatch(pattern, short, flags=re.IGNORECASE):
            return {"card": card, "bf16": bf16, "tf32": tf32, "fp32": fp32}
    return None


def _peak_for(peaks: dict | None, dtype: str) -> float | None:
    """The peak a row of ``dtype`` is divided by: bf16 rows the bf16 peak, float32 rows (TF32 matmuls) TF32's."""
    if not peaks:
        return None
    return peaks["bf16"] if dtype == "bf16" else peaks["tf32"]


def _config_block(size: str, section: str = "pretrain") -> dict:
    """A config section at this size, every default filled: ``workflow/configs/paper.yaml`` (paper) or
    ``config.yaml`` (small)."""
    import yaml

    from mgfm.config import resolve

    path = ROOT / ("workflow/configs/paper.yaml" if size == "paper" else "config.yaml")
    block = (yaml.safe_load(path.read_text()) or {}).get(section) or {}
    if section == "pretrain" and "model" not in block:
        raise ValueError(f"{path}: no pretrain.model block")
    return resolve(section, block)


def _tail(text: str | None) -> str:
    return (text or "")[-TAIL:]


# ---- env -----------------------------------------------------------------------------------------------


def _missing_dependencies() -> list[str]:
    """Project dependencies (pyproject.toml) that do not import here: the device lacks some optional ones."""
    import importlib.util

    text = (ROOT / "pyproject.toml").read_text()
    deps = re.search(r"^dependencies = \[(.*?)^\]", text, re.S | re.M)
    names = re.findall(r'^\s*"([A-Za-z0-9_.-]+)', deps.group(1), re.M) if deps else []
    modules = {"opencv-python-headless": "cv2", "pyyaml": "yaml", "ffmpeg-python": "ffmpeg", "yt-dlp": "yt_dlp",
               "imageio-ffmpeg": "imageio_ffmpeg", "snakemake-executor-plugin-slurm": "snakemake_executor_plugin_slurm"}
    return [n for n in names if importlib.util.find_spec(modules.get(n, n.replace("-", "_"))) is None]


def section_env(part: Part, size: str) -> None:
    import torch

    info = {"python": sys.version.split()[0], "executable": sys.executable, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_cuda": torch.version.cuda,
            "cuda_available": torch.cuda.is_available(), "size": size,
            "carried_wheels": [w for w in os.environ.get("MGFM_GPU_CHECK_CARRIED", "").split() if w],
            "missing_dependencies": _missing_dependencies()}
    if torch.cuda.is_available():
        prop = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        peaks = card_peaks(name)
        info.update(device_name=name, device_count=torch.cuda.device_count(),
                    capability=f"{prop.major}.{prop.minor}", memory_gib=round(prop.total_memory / 2**30, 1),
                    multiprocessors=prop.multi_processor_count, bf16_supported=torch.cuda.is_bf16_supported(),
                    peaks_tflops=peaks or f"unknown card {name!r}: no peak in PEAKS",
                    cudnn=torch.backends.cudnn.version())
        try:
            nccl = torch.cuda.nccl.version()
            info.update(nccl=".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl))
        except Exception as err:  # NCCL missing from this torch build
            info.update(nccl=f"unavailable: {err}")
    else:
        info.update(device_name=f"CPU ({platform.processor() or platform.machine()})", peaks_tflops=None)
    for module in ("onnxruntime", "decord", "jsonschema", "transformers", "cv2"):
        try:
            mod = __import__(module)
            info[module] = getattr(mod, "__version__", "present")
        except ImportError as err:
            info[module] = f"missing: {err}"
    if not str(info["onnxruntime"]).startswith("missing"):
        import onnxruntime as ort

        info.update(onnxruntime_providers=ort.get_available_providers())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total,power.limit",
                              "--format=csv,noheader"], capture_output=True, text=True, timeout=20)
        info.update(nvidia_smi=smi.stdout.strip() or smi.stderr.strip())
    except (OSError, subprocess.TimeoutExpired) as err:
        info.update(nvidia_smi=f"not available: {err}")
    part.set(status="ok", **info)


# ---- pose ----------------------------------------------------------------------------------------------


def _pose_video(tmp: Path, size: str) -> tuple[Path, str]:
    """A demo video from results/ (with its metadata JSON) if there is one, else a synthetic one: (path, what)."""
    for folder in (ROOT / "results" / "videos",):
        for video in sorted(folder.glob("demo*.mp4")):
            if video.with_suffix(".json").is_file():
                return video, "demo corpus video"
    seconds, w, h = POSE_VIDEO[size]
    path = tmp / "synthetic.mp4"
    n = int(round(seconds * 25))
    try:
        from mgfm.ingest.video import ffmpeg_exe

        cmd = [ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "lavfi",
               "-i", f"testsrc2=size={w}x{h}:rate=25:duration={seconds}",
               "-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", str(path)]
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)
        what = "synthetic ffmpeg testsrc2, H.264"
    except Exception:  # no ffmpeg on the device: OpenCV's own MPEG-4 encoder
        import cv2
        import numpy as np

        out = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (w, h))
        yy, xx = np.mgrid[0:h, 0:w]
        for i in range(n):
            frame = np.stack([(xx + 3 * i) % 256, (yy + 2 * i) % 256, (xx + yy + i) % 256], -1).astype(np.uint8)
            out.write(frame)
        out.release()
        what = "synthetic OpenCV MPEG-4 (no ffmpeg here)"
    path.with_suffix(".json").write_text(json.dumps({"video_id": path.stem, "frames": n, "fps": 25.0,
                                                     "width": w, "height": h, "synthetic": True}))
    return path, what


def _pose_stage_rows(part: Part, video: Path, meta: dict, tmp: Path, device: str, threads: int) -> None:
    """The pose stage's loop with the shipped demo model on onnxruntime (``device``), beside decode-only."""
    import numpy as np

    from mgfm.core.pose_store import PoseWriter
    from mgfm.ingest.video import iter_frames
    from mgfm.pose.backends.registry import load_backend
    from mgfm.pose.extract import estimate_video, extract_pose
    from mgfm.config.sections import from_partial
    from mgfm.pose.params import PoseParams
    from mgfm.pose.video_reader import VideoBatches

    def decode_rate() -> float:
        t0 = time.perf_counter()
        n = sum(len(f) for _, f in iter_frames(video, batch_size=64))
        return n / (time.perf_counter() - t0)

    decode_rate()  # page cache, decoder start-up
    part.set(decode_fps=decode_rate())
    t0 = time.perf_counter()
    backend = load_backend(from_partial(PoseParams, "pose", {"device": device}), threads)
    part.set(providers=backend.meta["providers"], session_start_s=round(time.perf_counter() - t0, 2))
    _, frames = next(iter_frames(video, batch_size=64))
    boxes = np.tile(np.array([0, 0, meta["width"], meta["height"]], np.float32), (len(frames), 1))
    prepared = backend.prepare(frames, boxes)
    backend.infer(prepared)
    reps = 10 if device == "cuda" else 3
    t0 = time.perf_counter()
    for _ in range(reps):
        backend.infer(prepared)
    part.set(onnx_model_only_fps_batch64=reps * len(frames) / (time.perf_counter() - t0))
    # the stage's own loop (prefetch, crops ahead, batched model, Parquet) with the session made once
    for batch in POSE_BATCHES:
        p = from_partial(PoseParams, "pose", {"device": device, "batch_size": batch})
        rates = []
        for _ in range(2):  # the first pass warms the provider for this batch shape
            reader = VideoBatches(video)
            t0 = time.perf_counter()
            with PoseWriter(tmp / f"b{batch}.parquet", {"model": "demo"}) as writer:
                estimate_video(reader, backend, p, writer, desc=f"gpu_check pose b{batch}")
            rates.append(writer.n_frames / (time.perf_counter() - t0))
        dec = decode_rate()  # again beside each row: a shared machine's speed drifts
        part.add("rows", {"batch": batch, "frames_per_s": round(rates[-1], 1), "decode_fps": round(dec, 1),
                          "fraction_of_decode": round(rates[-1] / dec, 3)})
    t0 = time.perf_counter()
    file_meta = extract_pose(video, video.with_suffix(".json"), tmp / "stage.parquet",
                             {"device": device, "batch_size": 32}, threads=threads)
    part.set(stage_call_s=round(time.perf_counter() - t0, 2), stage_providers=file_meta["providers"])


def _pose_torch_rows(part: Part, size: str) -> None:
    """The demo pose network (``DemoSimCCNet``, random weights) through torch, model alone: what the card does with
    the pose model when no CUDA build of onnxruntime can be installed."""
    import torch

    from mgfm.common.accel import pick_device
    from mgfm.demo.pose_model.net import DemoSimCCNet
    from mgfm.pose.backends.onnx_backend import read_sidecar
    from mgfm.pose.params import DEMO_MODEL

    device = pick_device()
    side = read_sidecar(Path(DEMO_MODEL))
    torch.manual_seed(0)
    net = DemoSimCCNet(tuple(side.get("input_size", (128, 96))), float(side.get("split_ratio", 2.0))).to(device).eval()
    w, h = net.input_size
    reps = 20 if device.type == "cuda" else 2
    variants = [(b, "fp32") for b in POSE_BATCHES] + ([(64, "bf16")] if device.type == "cuda" else [])
    for batch, dtype in variants:
        x = torch.randn(batch, 3, h, w, device=device)
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16"):
            net(x)
            _sync(device)
            t0 = time.perf_counter()
            for _ in range(reps):
                net(x)
            _sync(device)
        part.add("torch_rows", {"batch": batch, "dtype": dtype, "device": device.type,
                                "frames_per_s": round(reps * batch / (time.perf_counter() - t0), 1)})


def _cuda_in_fresh_process() -> bool:
    """Whether torch sees a GPU, asked in a child so that torch's CUDA libraries stay out of this process (the
    pose stage never imports torch; onnxruntime's CUDA provider loads its own)."""
    res = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True, timeout=60)
    return res.stdout.strip().endswith("True")


def section_pose(part: Part, size: str) -> None:
    import decord  # noqa: F401  (the stage's decoder: a missing one is reported as missing, not as an error)
    import onnxruntime as ort

    cuda = _cuda_in_fresh_process()
    providers = ort.get_available_providers()
    could_not = []
    if cuda and "CUDAExecutionProvider" in providers:
        device, threads = "cuda", 1  # intra-op threads of the CPU provider only run glue ops then
    else:
        device, threads = "cpu", max(1, min(8, os.cpu_count() or 1))  # the SLURM profile's 8 pose threads
        if cuda:
            could_not.append(
                "the pose stage on onnxruntime's CUDA provider: this machine's onnxruntime is the CPU build "
                f"(providers {providers}), and onnxruntime-gpu with its CUDA libraries is several hundred MB, "
                "more than a run may carry; the stage loop below ran on the CPU provider, and the model's GPU "
                "rate is measured through torch (torch_rows)")
        else:
            could_not.append("anything on a GPU: no CUDA device here (CPU provider and torch on CPU)")
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        video, what = _pose_video(tmp, size)
        meta = json.loads(video.with_suffix(".json").read_text())
        from mgfm.pose.extract import default_workers

        part.set(video=what, width=meta["width"], height=meta["height"], frames=meta["frames"], device=device,
                 onnx_threads=threads, model="demo_wholebody (shipped demo model)", crop_workers=default_workers(),
                 prefetch=2, could_not=could_not,
                 measured="stage loop: decord decode + crops + onnxruntime " + device.upper() + " provider + "
                          "Parquet; torch_rows: DemoSimCCNet (random weights) through torch, model alone")
        _pose_stage_rows(part, video, meta, tmp, device, threads)
    _pose_torch_rows(part, size)
    part.set(status="ok")


# ---- train ---------------------------------------------------------------------------------------------


def step_flops(run_step) -> int:
    """FLOPs of one call of ``run_step()`` (forward and backward), counted by tracing every aten op.

    ``torch.utils.flop_counter.FlopCounterMode`` counts matmuls, convolutions and attention from the shapes
    the ops actually see, so the figure follows the model's code as it changes (no hand-written formula).
    Element-wise ops are not counted: the figure is the tensor-core work, as the peak is.
    """
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        run_step()
    return int(counter.get_total_flops())


def _train_setup(size: str, device, batch: int | None = None, compiled: bool = False, **model_overrides):
    """(model, optimizer, batch dict, step function, context maker, description) for the real pretraining step
    at ``size``; ``compiled``: the whole model through ``torch.compile`` (its shapes are static);
    ``model_overrides``: pretrain.model keys to change."""
    import torch

    from mgfm.models import DSTE, PretrainModel
    from mgfm.models.losses.decorrelation import DecorrelationWeights
    from mgfm.train.augment import AugmentConfig
    from mgfm.train.distributed import DistInfo
    from mgfm.train.loop import StepContext, TrainConfig
    from mgfm.train.pretrain import make_step, split_model_params
    from tests.support.skeleton import synthetic_skeleton

    block = _config_block(size)
    cfg, proj = split_model_params({**block["model"], **model_overrides})
    tcfg = TrainConfig.from_section(block["train"], seed=0)
    batch = batch or tcfg.batch_size
    torch.manual_seed(0)
    model = PretrainModel(DSTE(cfg), proj).to(device)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay, **fused)
    data, meta = synthetic_skeleton(batch, frames=64, joints=cfg.num_joints, seed=1)
    b = {"x": torch.from_numpy(data).to(device), "valid_len": torch.from_numpy(meta["valid_len"].to_numpy()).to(device)}
    step_fn = make_step("joint", AugmentConfig.from_section(block["augment"]),
                        DecorrelationWeights.from_section(block["loss"]), cfg.num_frames)
    info = DistInfo(rank=0, world=1, local_rank=0, device=device, created_group=False)

    def ctx(i: int) -> StepContext:
        return StepContext(0, i, i, info, batch, torch.Generator().manual_seed(1000 + i))

    fwd = torch.compile(model) if compiled else model
    return fwd, opt, b, step_fn, ctx, {"batch": batch, "compiled": "whole model" if compiled else None,
                                       **cfg.to_dict(), **proj.to_dict()}


def _train_variant(size: str, device, compiled: bool, dtype: str, steps: int, setup, batch: int | None) -> dict:
    """One timed variant of a training step built by ``setup(size, device, batch, compiled)``."""
    import torch

    model, opt, batch_dict, step_fn, ctx, desc = setup(size, device, batch, compiled)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")

    def one(i: int) -> float:
        with autocast:
            loss, _ = step_fn(model, batch_dict, ctx(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    _sync(device)
    t0 = time.perf_counter()
    loss0 = one(0)  # compiles when compiled
    _sync(device)
    first = time.perf_counter() - t0
    flops = None if compiled else step_flops(lambda: one(1))
    times = []
    for i in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        loss = one(2 + i)
        _sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    if not all(v == v and abs(v) < float("inf") for v in (loss0, loss)):
        raise RuntimeError(f"non-finite loss {loss0} / {loss}")
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"compiled": compiled, "dtype": dtype, "batch": desc["batch"], "first_step_s": round(first, 3),
            "step_s": round(med, 4), "clips_per_s": round(desc["batch"] / med, 1), "loss": round(loss, 4),
            "step_flops": flops, "peak_mem_gib": peak_mem}


def _timed_variants(part: Part, size: str, setup, batches: dict, describe: dict,
                    compiled_dtypes: tuple[str, ...] = ("bf16", "fp32")) -> None:
    """Eager then compiled (in ``compiled_dtypes``), bf16 and float32 steps of one training step, each against its
    precision's peak."""
    import torch

    from mgfm.common.accel import enable_tf32

    enable_tf32()  # float32 rows run as training runs them: TF32 matmuls (no effect on a CPU)
    compile_ok = os.environ.get("MGFM_GPU_CHECK_NO_COMPILE", "") != "1"
    device = _device()
    steps = TRAIN_STEPS[size]
    peaks = card_peaks(torch.cuda.get_device_name(0)) if device.type == "cuda" else None
    _, _, _, _, _, desc = setup(size, torch.device("cpu"), 2, False)
    part.set(size=size, device=str(device), model={k: v for k, v in desc.items() if k != "compiled"},
             peaks_tflops=peaks, steps_timed=steps, float32_matmul_precision=torch.get_float32_matmul_precision(),
             **describe, flops_note="matmul/conv/attention FLOPs of forward+backward, traced by "
             "torch.utils.flop_counter at the row's batch; achieved = step_flops / step_s; bf16 rows against the "
             "bf16 peak, fp32 rows (TF32 matmuls on a GPU) against the TF32 peak")
    flops_per_clip = None
    for compiled in (False, True):
        for dtype in ("bf16", "fp32"):
            if compiled and not compile_ok:
                part.add("rows", {"compiled": True, "dtype": dtype, "skipped": "torch.compile switched off "
                                  "(--no-compile)"})
                continue
            if compiled and dtype not in compiled_dtypes:
                part.add("rows", {"compiled": True, "dtype": dtype, "skipped": "compiled in " +
                                  ", ".join(compiled_dtypes) + " only (what is compiled runs the same there)"})
                continue
            try:
                row = _train_variant(size, device, compiled, dtype, steps, setup, batches[dtype])
            except Exception as err:  # one variant (say, compile on a host without a compiler) must not hide the rest
                row = {"compiled": compiled, "dtype": dtype, "error": f"{type(err).__name__}: {err}",
                       "traceback": traceback.format_exc()[-1500:]}
            else:
                if row["step_flops"]:
                    flops_per_clip = row["step_flops"] / row["batch"]
                elif flops_per_clip:  # compiled rows: the eager trace's FLOPs per clip at this batch
                    row["step_flops"] = int(flops_per_clip * row["batch"])
                if row["step_flops"]:
                    row["achieved_tflops"] = float(f"{row['step_flops'] / row['step_s'] / 1e12:.4g}")
                    peak = _peak_for(peaks, dtype)
                    if peak:
                        row["peak_tflops"] = peak
                        row["fraction_of_peak"] = round(row["achieved_tflops"] / peak, 4)
            part.add("rows", row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
    errors = [r for r in part.data["rows"] if "error" in r]
    part.set(status="ok" if not errors else "error",
             **({"reason": "; ".join(f"{r['compiled'] and 'compiled' or 'eager'} {r['dtype']}: {r['error']}"
                                     for r in errors)} if errors else {}))


def section_train(part: Part, size: str) -> None:
    _timed_variants(part, size, _train_setup, TRAIN_BATCH[size], {"stream": "joint"})


# ---- rgb -----------------------------------------------------------------------------------------------


def _rgb_setup(size: str, device, batch: int | None = None, compiled: bool = False):
    """The SMILE Stage 2 step (tube masking, teacher targets on the fly) at this size's rgb_pretrain config. The
    device has no network, so a CLIP teacher is the CLIP ViT-B/16 structure with random weights: the same FLOPs.
    ``compiled``: the teacher through ``torch.compile`` (static shapes); the student stays eager."""
    import torch

    from mgfm.models.rgb.student import SmileModel, StudentConfig
    from mgfm.models.rgb.teacher import ClipTeacher, build_teacher
    from mgfm.train.distributed import DistInfo
    from mgfm.train.loop import StepContext, TrainConfig
    from mgfm.train.rgb.pretrain import make_step

    block = _config_block(size, "rgb_pretrain")
    cfg = StudentConfig.from_section(block["model"])
    tcfg = TrainConfig.from_section(block["stage2"], seed=0)
    batch = batch or tcfg.batch_size
    t = block["teacher"]
    if t["kind"] == "clip":
        c = t["clip"]
        teacher = ClipTeacher(None, cfg.grid[1:], c["image_size"], c["patch_size"], c["hidden"], c["depth"],
                              c["heads"], c["mlp_dim"])
    else:
        teacher = build_teacher(t, cfg.grid[1:])
    teacher.to(device)
    torch.manual_seed(0)
    model = SmileModel(cfg, teacher.dim).to(device)
    fused = {"fused": True} if device.type == "cuda" else {}
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay,
                            **fused)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (batch, cfg.num_frames, cfg.image_size, cfg.image_size, 3), generator=g,
                      dtype=torch.uint8).to(device)
    b = {"x": x, "index": torch.arange(batch)}
    step_fn = make_step(cfg, torch.compile(teacher) if compiled else teacher, block["masking"], 2, None, None)
    info = DistInfo(rank=0, world=1, local_rank=0, device=device, created_group=False)

    def ctx(i: int) -> StepContext:
        return StepContext(0, i, i, info, batch, torch.Generator().manual_seed(1000 + i))

    return model, opt, b, step_fn, ctx, {"batch": batch, "stage": 2, "teacher": t["kind"],
                                         "compiled": "teacher only" if compiled else None, **cfg.to_dict()}


def section_rgb(part: Part, size: str) -> None:
    from mgfm.models.rgb.targets import teacher_dtype

    device = _device()
    # the compiled part (the teacher) runs in bf16 on a GPU in both rows: one compiled row
    _timed_variants(part, size, _rgb_setup, RGB_BATCH[size],
                    {"stage": 2, "teacher_targets": f"on the fly, teacher in {str(teacher_dtype(device))[6:]}",
                     "compiled_rows": "the teacher only: the student's visible-token count comes from a boolean "
                                      "mask (data-dependent shapes)"}, compiled_dtypes=("bf16",))


# ---- ddp -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ddp_grads(size: str, device, rank: int, world: int) -> tuple[float, list]:
    """One pretraining step's (loss, gradients) on this rank's rows of the global batch (rows rank::world, as
    the DistributedSampler and ``make_step`` split them), float32 without TF32; DDP-wrapped when world > 1."""
    import torch
    from torch.nn.parallel import DistributedDataParallel

    from mgfm.train.distributed import DistInfo, gather_with_grad
    from mgfm.train.loop import StepContext

    torch.set_float32_matmul_precision("highest")
    # DropPath draws per process (each rank masks its own rows): off, so that one process and two compute the same
    narrow = SMALL_MODEL if size == "small" else {}
    model, _, batch, step_fn, _, _ = _train_setup(size, device, DDP_BATCH[size], drop_path=0.0, **narrow)
    rows = slice(rank, None, world)
    local = {k: v[rows] for k, v in batch.items()}
    info = DistInfo(rank=rank, world=world, local_rank=0, device=device, created_group=False)
    ctx = StepContext(0, 0, 0, info, DDP_BATCH[size], torch.Generator().manual_seed(7))
    fwd = model
    if world > 1:
        model.gather_fn = lambda t: gather_with_grad(t, dim=1)  # the pretraining's all-gather with gradients
        fwd = DistributedDataParallel(model, device_ids=None)   # gloo: parameters on their device, no device_ids
    loss, _ = step_fn(fwd, local, ctx)
    loss.backward()
    _sync(device)
    return float(loss), [p.grad.detach().float().cpu() for p in model.parameters() if p.grad is not None]


def _ddp_child(size: str, rank: int, world: int, port: int, out: str) -> None:
    """One rank of the two-process group: the DDP step, rank 0 saves its (all-reduced) gradients."""
    import torch
    import torch.distributed as dist

    device = _device()
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        t = torch.full((4,), float(rank + 1), device=device)
        parts = [torch.empty_like(t) for _ in range(world)]
        dist.all_gather(parts, t)
        if [float(p[0]) for p in parts] != [float(r + 1) for r in range(world)]:
            raise RuntimeError(f"all_gather over {world} processes returned {[p.tolist() for p in parts]}")
        loss, grads = _ddp_grads(size, device, rank, world)
        if rank == 0:
            torch.save({"loss": loss, "grads": grads, "backend": dist.get_backend(), "device": str(device)}, out)
    finally:
        dist.destroy_process_group()


def section_ddp(part: Part, size: str) -> None:
    import torch
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_gloo_available():
        raise RuntimeError("torch.distributed without gloo")
    device = _device()
    world, port = 2, _free_port()
    with tempfile.TemporaryDirectory() as tmpdir:
        out = Path(tmpdir) / "rank0.pt"
        t0 = time.perf_counter()
        procs = [subprocess.Popen([sys.executable, __file__, "--ddp-child", size, str(rank), str(world), str(port),
                                   str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                 for rank in range(world)]
        logs = [p.communicate()[0] for p in procs]
        rcs = [p.returncode for p in procs]
        part.set(backend="gloo", processes=world, device=str(device), shared_device=device.type == "cuda",
                 global_batch=DDP_BATCH[size], return_codes=rcs, seconds_children=round(time.perf_counter() - t0, 1))
        if any(rcs):
            tails = {f"rank{r}": _tail(log) for r, log in enumerate(logs) if rcs[r]}
            part.set(child_tails=tails)
            raise RuntimeError(f"DDP processes exited {rcs}:\n" + "\n".join(f"--- {k}:\n{v}" for k, v in tails.items()))
        ddp = torch.load(out, weights_only=True)
    loss, plain = _ddp_grads(size, device, 0, 1)
    scale = max(float(g.abs().max()) for g in plain)
    diff = max(float((a - b).abs().max()) for a, b in zip(plain, ddp["grads"]))
    rtol = DDP_RTOL[device.type]
    part.set(loss_one_process=loss, loss_rank0=ddp["loss"], grads=len(plain), max_grad=scale, max_grad_diff=diff,
             relative_diff=diff / max(scale, 1e-30), rtol=rtol, path="gather_with_grad + DistributedDataParallel")
    if len(plain) != len(ddp["grads"]) or diff > rtol * scale:
        raise RuntimeError(f"two-process DDP gradients differ from one process's: max difference {diff:.3g} "
                           f"(> {rtol} x {scale:.3g}); losses {ddp['loss']} vs {loss}")
    part.set(status="ok")


# ---- resume --------------------------------------------------------------------------------------------


def _resume_params(size: str) -> dict:
    """A short pretraining run: paper-wide DSTE on a GPU (small on CPU), 3 epochs, a checkpoint every epoch,
    float32 (deterministic kernels are available for it)."""
    model = dict(_config_block(size)["model"])
    if size == "paper":
        model.update(projector_dims=[1024, 1024, 1024], instance_projector_dims=[1024, 1024, 1024])
    else:
        model.update(SMALL_MODEL)
    return {"model": model, "train": {"epochs": RESUME_EPOCHS, "batch_size": RESUME_DATA[size][1], "lr": 5e-4,
                                      "checkpoint_every": 1, "amp": False, "log_every_steps": 1000}}


def _deterministic() -> None:
    """On a GPU, kernels that give the same result on every run where torch has them (deterministic index ops and
    cuBLAS reductions), so two runs differ only where no such kernel exists. CPU kernels are deterministic."""
    import torch

    if torch.cuda.is_available():
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False


def _resume_child(dataset: str, out: str, size: str, kill_after: int) -> None:
    """One pretraining run in this process; SIGKILL itself after epoch ``kill_after`` (0: never)."""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    from mgfm.train.pretrain import pretrain_skeleton

    _deterministic()

    def on_epoch_end(done: int, row: dict) -> None:
        if done == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as a pre-empted job: checkpoint already on disk

    with sdpa_kernel(SDPBackend.MATH):  # the attention backward without atomics
        pretrain_skeleton(dataset, "joint", out, _resume_params(size), seed=3, on_epoch_end=on_epoch_end)


def weight_distance(a: dict, b: dict, init: dict) -> tuple[float, float, float]:
    """(max |a - b|, ||a - b|| / ||a - init||, ||a - init||) over the tensors of ``a``."""
    import torch

    keys = [k for k in a if k in init]
    diff = torch.cat([(a[k].float() - b[k].float()).flatten() for k in keys])
    moved = torch.cat([(a[k].float() - init[k].float()).flatten() for k in keys])
    norm = float(moved.norm())
    return float(diff.abs().max()), float(diff.norm()) / max(norm, 1e-30), norm


def section_resume(part: Part, size: str) -> None:
    import torch
    from safetensors.torch import load_file

    from tests.support.skeleton import write_synthetic_skeleton

    device = _device().type
    env = {**os.environ, "CUBLAS_WORKSPACE_CONFIG": ":4096:8"}  # deterministic cuBLAS reductions
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        write_synthetic_skeleton(tmp / "ds", RESUME_DATA[size][0], frames=64, seed=5)
        tails = {}

        def run(out: str, kill_after: int, name: str) -> int:
            cmd = [sys.executable, __file__, "--resume-child", str(tmp / "ds"), str(tmp / out), size, str(kill_after)]
            res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env=env)
            expected = -signal.SIGKILL if kill_after else 0
            if res.returncode != expected:
                tails[name] = _tail(res.stdout + res.stderr)
            return res.returncode

        t0 = time.perf_counter()
        rcs = {"uninterrupted": run("a", 0, "uninterrupted"), "killed": run("b", RESUME_KILL_AFTER, "killed")}
        rcs["resumed"] = run("b", 0, "resumed")
        part.set(return_codes=rcs, device=device, epochs=RESUME_EPOCHS, killed_after_epoch=RESUME_KILL_AFTER,
                 precision="float32, deterministic kernels", seconds=round(time.perf_counter() - t0, 1))
        if tails:
            part.set(child_tails=tails)
            raise RuntimeError(f"unexpected return codes {rcs} (the killed run must end by SIGKILL):\n"
                               + "\n".join(f"--- {k}:\n{v}" for k, v in tails.items()))
        steps = (tmp / "b" / "train_log.csv").read_text().splitlines()[1:]
        a, b = load_file(tmp / "a" / "encoder.safetensors"), load_file(tmp / "b" / "encoder.safetensors")
    # how far training moved the weights: the scale a broken resume's error would have (init as pretrain_skeleton)
    from mgfm.common.seeding import derive_seed
    from mgfm.config import resolve
    from mgfm.models import DSTE
    from mgfm.train.loop import TrainConfig
    from mgfm.train.pretrain import split_model_params

    params = resolve("pretrain", _resume_params(size))
    arch, _ = split_model_params(params["model"])
    seed = TrainConfig.from_section(params["train"], seed=derive_seed(3, "pretrain", "skeleton", "joint")).seed
    torch.manual_seed(derive_seed(seed, "init"))
    init = DSTE(arch).state_dict()
    max_diff, relative, moved = weight_distance(a, b, init)
    rtol = RESUME_RTOL[device]
    part.set(max_weight_diff=max_diff, weight_update_norm=moved, relative_diff=relative, rtol=rtol,
             epochs_logged_after_resume=len(steps))
    if len(steps) != RESUME_EPOCHS:
        raise RuntimeError(f"resumed run's train_log.csv has {len(steps)} epoch rows, expected {RESUME_EPOCHS}")
    if relative > rtol:
        raise RuntimeError(f"resumed weights differ from uninterrupted by {relative:.3g} of the training update "
                           f"(> {rtol}; max |difference| {max_diff:.3g})")
    part.set(status="ok")


# ---- orchestration -------------------------------------------------------------------------------------

RUNNERS = {"env": section_env, "pose": section_pose, "train": section_train, "rgb": section_rgb,
           "ddp": section_ddp, "resume": section_resume}


def run_section_child(name: str, size: str, part_path: Path) -> int:
    part = Part(part_path)
    try:
        RUNNERS[name](part, size)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] in ("mgfm", "tests"):  # our own code is broken: an error
            part.set(status="error", reason=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-TAIL:])
            return 1
        part.set(status="skipped", reason=f"Python module {err.name!r} is not installed on this machine ({err}); "
                 "the device has no network: add it to benchmarks/gpu_check_wheels.txt and run "
                 "`bash benchmarks/gpu_check.sh --prepare`")
        return 0
    except Exception as err:
        part.set(status="error", reason=f"{type(err).__name__}: {err}"[:TAIL], traceback=traceback.format_exc()[-TAIL:])
        return 1
    return 0


_RUNNING: list[subprocess.Popen] = []


def _stop_running(signum, frame) -> None:
    """SIGTERM (the shell wrapper's hard limit): take the running section's process group down too."""
    for proc in _RUNNING:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    raise SystemExit(128 + signum)


def _run_section(name: str, size: str, limit: int, tmp: Path) -> dict:
    """The section in a fresh process (own CUDA context, own process group), killed at ``limit`` seconds."""
    part_path = tmp / f"{name}.json"
    cmd = [sys.executable, __file__, "--section", name, "--size", size, "--part", str(part_path)]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    _RUNNING[:] = [proc]
    try:
        log, _ = proc.communicate(timeout=limit)
        timed_out = False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the section's own process group: its children and compile workers
        log, _ = proc.communicate()
        timed_out = True
    result = json.loads(part_path.read_text()) if part_path.is_file() else {}
    if timed_out:
        result.update(status="timeout", reason=f"killed after its {limit}s limit; fields above are what it measured")
    elif "status" not in result or result["status"] not in ("ok", "skipped", "error"):
        result.update(status="error", reason=f"section process exited {proc.returncode} without a result")
    if result["status"] in ("error", "timeout"):
        result["log_tail"] = _tail(log)
    result.update(seconds=round(time.perf_counter() - t0, 1), limit_s=limit)
    return result


def _git_revision() -> str | None:
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def markdown(report: dict) -> str:
    """The human summary of ``report``: one line per section, a table per measured series."""
    env = report["sections"].get("env", {})
    lines = [f"# GPU check: {env.get('device_name', '?')}", "",
             f"- size: {report['size']}; torch {env.get('torch')}, CUDA {env.get('torch_cuda')}, "
             f"onnxruntime {env.get('onnxruntime')}, python {env.get('python')}; carried: "
             f"{', '.join(env.get('carried_wheels') or []) or 'nothing'}",
             f"- created {report['created_utc']}, git {report['git_revision']}, {report['total_seconds']} s in all",
             "", "| section | status | seconds | note |", "|---|---|---|---|"]
    for name, sec in report["sections"].items():
        note = sec.get("reason", "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {name} | {sec.get('status')} | {sec.get('seconds')} | {note} |")
    pose = report["sections"].get("pose", {})
    if pose.get("rows"):
        lines += ["", f"## Pose stage ({pose.get('device')} provider, {pose.get('video')} {pose.get('width')}x"
                  f"{pose.get('height')}, {pose.get('frames')} frames; decode-only {_fmt(pose.get('decode_fps'))} "
                  f"frames/s, ONNX model alone {_fmt(pose.get('onnx_model_only_fps_batch64'))} frames/s at batch 64)",
                  "", "| batch | frames/s | decode-only frames/s | fraction of decode |", "|---|---|---|---|"]
        lines += [f"| {r['batch']} | {r['frames_per_s']} | {r['decode_fps']} | {r['fraction_of_decode']} |"
                  for r in pose["rows"]]
    if pose.get("torch_rows"):
        lines += ["", "## Pose network through torch, model alone (DemoSimCCNet, random weights)", "",
                  "| batch | dtype | device | frames/s |", "|---|---|---|---|"]
        lines += [f"| {r['batch']} | {r['dtype']} | {r['device']} | {r['frames_per_s']} |" for r in pose["torch_rows"]]
    for reason in pose.get("could_not") or []:
        lines += ["", f"Not measured: {reason}."]
    for name, title in (("train", "MG-FM-Skele pretraining step"), ("rgb", "MG-FM-RGB Stage 2 step")):
        sec = report["sections"].get(name, {})
        if not sec.get("rows"):
            continue
        lines += ["", f"## {title} ({sec.get('size')} size, {sec.get('device')})", "",
                  "| mode | dtype | batch | clips/s | step s | first step s | TFLOP/s | peak | of peak | peak GiB |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for r in sec["rows"]:
            mode = "compiled" if r["compiled"] else "eager"
            if "error" in r or "skipped" in r:
                why = f"error: {r['error'][:80]}" if "error" in r else f"skipped: {r['skipped']}"
                lines.append(f"| {mode} | {r['dtype']} | | {why} | | | | | | |")
                continue
            lines.append(f"| {mode} | {r['dtype']} | {r['batch']} | {r['clips_per_s']} | {r['step_s']} | "
                         f"{r['first_step_s']} | {_fmt(r.get('achieved_tflops'))} | {_fmt(r.get('peak_tflops'))} | "
                         f"{_fmt(r.get('fraction_of_peak'))} | {_fmt(r.get('peak_mem_gib'))} |")
    for name, keys in (("ddp", ("backend", "processes", "loss_one_process", "loss_rank0", "max_grad_diff",
                                "max_grad", "rtol")),
                       ("resume", ("max_weight_diff", "relative_diff", "rtol", "precision"))):
        sec = report["sections"].get(name, {})
        if any(k in sec for k in keys):
            lines += ["", f"## {name}: " + ", ".join(f"{k} {_fmt(sec.get(k))}" for k in keys)]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", help="folder for gpu_check.json and gpu_check.md")
    parser.add_argument("--size", choices=("auto", "paper", "small"), default="auto",
                        help="auto: paper size on CUDA, small on CPU")
    parser.add_argument("--only", default=",".join(SECTIONS), help="comma-separated sections to run")
    parser.add_argument("--no-compile", action="store_true", help="train/rgb: skip the torch.compile rows (fast CI)")
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--resume-child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--ddp-child", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.resume_child:
        dataset, out, size, kill = args.resume_child
        _resume_child(dataset, out, size, int(kill))
        return 0
    if args.ddp_child:
        size, rank, world, port, out = args.ddp_child
        _ddp_child(size, int(rank), int(world), int(port), out)
        return 0
    if args.section:
        return run_section_child(args.section, args.size, Path(args.part))
    if not args.out:
        parser.error("OUT folder required")
    only = [s for s in args.only.split(",") if s]
    unknown = sorted(set(only) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s) {unknown}; expected some of {list(SECTIONS)}")
    if args.no_compile:
        os.environ["MGFM_GPU_CHECK_NO_COMPILE"] = "1"  # inherited by the section processes
    size = args.size
    if size == "auto":
        import torch

        size = "paper" if torch.cuda.is_available() else "small"
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    signal.signal(signal.SIGTERM, _stop_running)
    t0 = time.perf_counter()
    report = {"schema": 2, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git_revision": _git_revision(), "size": size, "compile": not args.no_compile, "sections": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        for name in only:
            limit = LIMITS[name][0 if size == "paper" else 1]
            print(f"gpu_check: {name} (limit {limit}s) ...", flush=True)
            report["sections"][name] = sec = _run_section(name, size, limit, Path(tmpdir))
            print(f"gpu_check: {name}: {sec['status']} in {sec['seconds']}s {sec.get('reason', '')[:500]}", flush=True)
            if sec["status"] in ("error", "timeout"):  # the child's own words, where the run's output shows them
                print(f"gpu_check: {name}: output tail:\n{sec.get('log_tail', '')}", flush=True)
            report["total_seconds"] = round(time.perf_counter() - t0, 1)
            _write_json(out / "gpu_check.json", report)  # after every section: a killed run keeps the rest
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
