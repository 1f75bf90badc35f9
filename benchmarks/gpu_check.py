"""The GPU check: every GPU code path of the project, measured in one short unattended run (python part of
``benchmarks/gpu_check.sh``; see that script's header for the machine it assumes).

    python benchmarks/gpu_check.py OUT_DIR [--size auto|paper|small] [--only env,pose,...]

Sections, each in its own subprocess with its own time limit, so one that fails, hangs or crashes the CUDA
context records its error (and whatever it measured before) and the others still run:

- ``env``: python, torch, CUDA, the card, onnxruntime and its providers, decord, missing project dependencies.
- ``pose``: frames/s of the onnx backend (the stage's loop ``estimate_video``: prefetched decode + crops +
  model + Parquet, session made once) at batch 1, 8, 32 and 64, beside the decode-only frames/s of the same
  video in the same run, the model alone on ready-made input, and one whole ``extract_pose`` call; ``pose.device`` is ``cuda`` on a GPU (CUDAExecutionProvider required), ``cpu`` otherwise.
- ``train``: MG-FM-Skele (``paper.yaml``'s ``pretrain`` block at paper size, ``config.yaml``'s at small
  size): the real pretraining step (four-view augmentation, DSTE, projectors, decorrelation loss, backward,
  Adam) eager and ``torch.compile``-d, fp32 and bf16 autocast; clips/s, and achieved TFLOP/s from the step's
  FLOPs counted by tracing (``step_flops``) against the card's dense bf16 peak.
- ``rgb``: the same for the RGB student, when ``mgfm.models`` has one; skipped with the reason otherwise.
- ``ddp``: a one-process group over NCCL (gloo on CPU): all_reduce / all_gather checked, and one
  DistributedDataParallel training step whose weights must equal a plain step's.
- ``resume``: ``pretrain_skeleton`` run uninterrupted, and run again but SIGKILLed right after a checkpoint
  then resumed; the final encoder weights must agree (tolerance ``RESUME_RTOL`` below).

On a machine without CUDA (or with ``--size small``) every section runs the same code at small size; that is
what the test suite runs. Writes ``OUT_DIR/gpu_check.json`` and ``OUT_DIR/gpu_check.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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

#: Seconds each section may take on a GPU (paper size) and at small size. Sum on a GPU: 440 s (< 8 min with
#: start-up); the shell wrapper adds a hard limit over everything. ``torch.compile`` dominates ``train``.
LIMITS = {"env": (20, 60), "pose": (70, 150), "train": (180, 400), "rgb": (60, 150), "ddp": (30, 90),
          "resume": (80, 180)}
SECTIONS = tuple(LIMITS)

#: Dense (no sparsity) bf16 tensor-core peaks in TFLOP/s, by a substring of torch.cuda.get_device_name().
BF16_PEAK_TFLOPS = (("H200", 989.0), ("GH200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0),
                    ("H800", 989.0), ("A100", 312.0), ("A800", 312.0), ("L40S", 362.0), ("L40", 181.0),
                    ("A10G", 70.0), ("A10", 125.0), ("L4", 121.0), ("RTX 4090", 165.0), ("V100", 0.0))

#: Resume check: max |uninterrupted - resumed| over the encoder's weights, relative to the largest weight
#: change of the uninterrupted run (how far training moved the weights). On CPU the runs are bitwise
#: deterministic, so the bound is 0; on a GPU under bf16 autocast cuBLAS/cuDNN reductions are not bitwise
#: reproducible and a bf16 step carries ~2^-8 relative error, so we allow 5 % of the training update: a resume
#: that lost the optimiser state, the RNG state or an epoch moves the weights by a large part of the update.
RESUME_RTOL = {"cpu": 0.0, "cuda": 0.05}

#: DDP check: max |DDP gradient - plain gradient| relative to the largest gradient. One process's all-reduce
#: returns its own gradient, so on CPU they are equal; on a GPU the attention backward (flash kernels) and other
#: atomics-based reductions are not bitwise reproducible between two runs, hence a small bf16-sized allowance.
DDP_RTOL = {"cpu": 0.0, "cuda": 1e-2}

#: Pose check: seconds of video and frame size (the paper's normalised videos are up to 1280 px wide; a
#: 640x360 25 fps video stands in when no demo video lies in results/).
POSE_VIDEO = {"paper": (60.0, 640, 360), "small": (3.0, 160, 120)}
POSE_BATCHES = {"paper": (1, 8, 32, 64), "small": (1, 8, 32, 64)}

TRAIN_STEPS = {"paper": 5, "small": 2}
#: Resume check: (clips, batch), 4 steps an epoch; the killed run dies right after epoch RESUME_KILL_AFTER.
RESUME_DATA = {"paper": (128, 32), "small": (32, 8)}
RESUME_EPOCHS, RESUME_KILL_AFTER = 3, 2
#: Training batch: the paper's (train.batch_size, 356: one GPU per stream) at paper size; tiny on CPU.
TRAIN_BATCH = {"paper": None, "small": 8}


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


def bf16_peak_tflops(name: str) -> float | None:
    """The card's dense bf16 peak from ``BF16_PEAK_TFLOPS`` (None when unknown or no bf16 tensor cores)."""
    for key, peak in BF16_PEAK_TFLOPS:
        if key in name:
            return peak or None
    return None


def _config_block(size: str) -> dict:
    """The ``pretrain`` block at this size: ``workflow/configs/paper.yaml`` (paper) or ``config.yaml`` (small)."""
    import yaml

    path = ROOT / ("workflow/configs/paper.yaml" if size == "paper" else "config.yaml")
    from mgfm.config import resolve

    block = (yaml.safe_load(path.read_text()) or {}).get("pretrain")
    if not block or "model" not in block:
        raise ValueError(f"{path}: no pretrain.model block")
    return resolve("pretrain", block)  # every default filled, as the pretraining step sees it


# ---- env -----------------------------------------------------------------------------------------------


def _missing_dependencies() -> list[str]:
    """Project dependencies (pyproject.toml) that do not import here: the device may lack some optional ones."""
    import importlib.util
    import re

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
            "missing_dependencies": _missing_dependencies()}
    if torch.cuda.is_available():
        prop = torch.cuda.get_device_properties(0)
        name = torch.cuda.get_device_name(0)
        info.update(device_name=name, device_count=torch.cuda.device_count(),
                    capability=f"{prop.major}.{prop.minor}", memory_gib=round(prop.total_memory / 2**30, 1),
                    bf16_supported=torch.cuda.is_bf16_supported(), bf16_peak_tflops=bf16_peak_tflops(name),
                    cudnn=torch.backends.cudnn.version())
        try:
            nccl = torch.cuda.nccl.version()
            info.update(nccl=".".join(map(str, nccl)) if isinstance(nccl, tuple) else str(nccl))
        except Exception as err:  # NCCL missing from this torch build: the ddp section says so
            info.update(nccl=f"unavailable: {err}")
    else:
        info.update(device_name=f"CPU ({platform.processor() or platform.machine()})", bf16_peak_tflops=None)
    try:
        import onnxruntime as ort

        info.update(onnxruntime=ort.__version__, onnxruntime_providers=ort.get_available_providers())
    except ImportError as err:
        info.update(onnxruntime=f"missing: {err}")
    try:
        import decord

        info.update(decord=decord.__version__)
    except ImportError as err:
        info.update(decord=f"missing: {err}")
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
        from mgfm.data.video import ffmpeg_exe

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


def _cuda_in_fresh_process() -> bool:
    """Whether torch sees a GPU, asked in a child so that torch's CUDA libraries stay out of this process."""
    res = subprocess.run([sys.executable, "-c", "import torch; print(torch.cuda.is_available())"],
                         capture_output=True, text=True, timeout=60)
    return res.stdout.strip().endswith("True")


def section_pose(part: Part, size: str) -> None:
    try:
        import decord  # noqa: F401
        import onnxruntime as ort
    except ImportError as err:
        part.set(status="skipped", reason=f"pose needs onnxruntime and decord: {err}")
        return
    import numpy as np

    from mgfm.core.pose_store import PoseWriter
    from mgfm.data.video import iter_frames
    from mgfm.pose.backends.registry import load_backend
    from mgfm.pose.extract import default_workers, estimate_video, extract_pose
    from mgfm.pose.params import PoseParams
    from mgfm.pose.video_reader import VideoBatches

    cuda = _cuda_in_fresh_process()  # the pose stage never imports torch: neither does this process
    if cuda and "CUDAExecutionProvider" not in ort.get_available_providers():
        part.set(status="skipped", reason="CUDA is present but onnxruntime has no CUDAExecutionProvider "
                 f"(providers {ort.get_available_providers()}; install onnxruntime-gpu)")
        return
    device = "cuda" if cuda else "cpu"
    threads = 1 if cuda else 2  # intra-op threads of the CPU provider; on CUDA they only run glue ops
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        video, what = _pose_video(tmp, size)
        meta = json.loads(video.with_suffix(".json").read_text())
        part.set(video=what, width=meta["width"], height=meta["height"], frames=meta["frames"], device=device,
                 model="demo_wholebody (shipped demo model)", crop_workers=default_workers(), prefetch=2)

        def decode_rate() -> float:
            t0 = time.perf_counter()
            n = sum(len(f) for _, f in iter_frames(video, batch_size=64))
            return n / (time.perf_counter() - t0)

        decode_rate()  # page cache, decoder start-up
        part.set(decode_fps=decode_rate())
        # the model alone on ready input: what the card could do if decoding were free
        t0 = time.perf_counter()
        backend = load_backend(PoseParams.from_dict({"device": device}), threads)
        part.set(providers=backend.meta["providers"], session_start_s=round(time.perf_counter() - t0, 2))
        _, frames = next(iter_frames(video, batch_size=64))
        boxes = np.tile(np.array([0, 0, meta["width"], meta["height"]], np.float32), (len(frames), 1))
        prepared = backend.prepare(frames, boxes)
        backend.infer(prepared)
        t0 = time.perf_counter()
        reps = 10 if cuda else 2
        for _ in range(reps):
            backend.infer(prepared)
        part.set(model_only_fps_batch64=reps * len(frames) / (time.perf_counter() - t0))
        # the stage's own loop (estimate_video: prefetch, crops ahead, batched model, Parquet) with the session
        # made once, so the rates are not diluted by the CUDA provider's start-up
        for batch in POSE_BATCHES[size]:
            p = PoseParams.from_dict({"device": device, "batch_size": batch})
            rates = []
            for rep in range(2):  # the first pass warms the provider for this batch shape
                reader = VideoBatches(video)
                t0 = time.perf_counter()
                with PoseWriter(tmp / f"b{batch}.parquet", {"model": "demo"}) as writer:
                    estimate_video(reader, backend, p, writer, desc=f"gpu_check pose b{batch}")
                rates.append(writer.n_frames / (time.perf_counter() - t0))
            fps = rates[-1]
            dec = decode_rate()  # again beside each row: a shared machine's speed drifts
            part.add("rows", {"batch": batch, "frames_per_s": round(fps, 1), "decode_fps": round(dec, 1),
                              "fraction_of_decode": round(fps / dec, 3)})
        t0 = time.perf_counter()
        file_meta = extract_pose(video, video.with_suffix(".json"), tmp / "stage.parquet",
                                 {"device": device, "batch_size": 32}, threads=threads)
        part.set(stage_call_s=round(time.perf_counter() - t0, 2), stage_providers=file_meta["providers"])
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


def _train_setup(size: str, device, batch: int | None = None):
    """(model, optimizer, batch dict, step function, context maker) for the real pretraining step at ``size``."""
    import torch

    from mgfm.models import DSTE, PretrainModel
    from mgfm.models.losses.decorrelation import DecorrelationWeights
    from mgfm.train.augment import AugmentConfig
    from mgfm.train.distributed import DistInfo
    from mgfm.train.loop import StepContext, TrainConfig
    from mgfm.train.pretrain import make_step, split_model_params
    from tests.support.skeleton import synthetic_skeleton

    block = _config_block(size)
    cfg, proj = split_model_params(block["model"])
    tcfg = TrainConfig.from_params(block["train"], seed=0)
    batch = batch or tcfg.batch_size
    torch.manual_seed(0)
    model = PretrainModel(DSTE(**cfg.to_dict()), **proj).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    data, meta = synthetic_skeleton(batch, frames=64, joints=cfg.num_joints, seed=1)
    b = {"x": torch.from_numpy(data).to(device), "valid_len": torch.from_numpy(meta["valid_len"].to_numpy()).to(device)}
    step_fn = make_step("joint", AugmentConfig.from_section(block["augment"]),
                        DecorrelationWeights.from_section(block["loss"]), cfg.num_frames)
    info = DistInfo(rank=0, world=1, local_rank=0, device=device, created_group=False)

    def ctx(i: int) -> StepContext:
        return StepContext(0, i, i, info, batch, torch.Generator().manual_seed(1000 + i))

    return model, opt, b, step_fn, ctx, {"batch": batch, **cfg.to_dict(), **proj}


def _train_variant(size: str, device, compiled: bool, bf16: bool, steps: int, setup=None, batch=None) -> dict:
    """One timed variant of a training step: ``setup(size, device, batch)`` builds (model, optimizer, batch dict,
    step function, context maker, description); the skeleton step by default."""
    import torch

    setup = setup or _train_setup
    model, opt, batch, step_fn, ctx, desc = setup(size, device, batch or TRAIN_BATCH[size])
    fwd = torch.compile(model) if compiled else model
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)

    def one(i: int) -> float:
        with autocast:
            loss, _ = step_fn(fwd, batch, ctx(i))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return float(loss)

    _sync(device)
    t0 = time.perf_counter()
    loss0 = one(0)  # compiles when compiled
    _sync(device)
    first = time.perf_counter() - t0
    if not bf16 or compiled:
        flops = None
    else:
        flops = step_flops(lambda: one(1))
    times = []
    for i in range(steps):
        _sync(device)
        t0 = time.perf_counter()
        loss = one(2 + i)
        _sync(device)
        times.append(time.perf_counter() - t0)
    med = statistics.median(times)
    if not all(map(lambda v: v == v and abs(v) < float("inf"), (loss0, loss))):
        raise RuntimeError(f"non-finite loss {loss0} / {loss}")
    peak_mem = torch.cuda.max_memory_allocated() / 2**30 if device.type == "cuda" else None
    return {"compiled": compiled, "dtype": "bf16" if bf16 else "fp32", "batch": desc["batch"],
            "first_step_s": round(first, 3), "step_s": round(med, 4), "clips_per_s": round(desc["batch"] / med, 1),
            "loss": round(loss, 4), "step_flops": flops, "peak_mem_gib": peak_mem}


def _timed_variants(part: Part, size: str, setup, batch, describe: dict) -> None:
    """Eager and compiled, bf16 and fp32 steps of one training step, with traced FLOPs against the bf16 peak."""
    import torch

    compile_ok = os.environ.get("MGFM_GPU_CHECK_NO_COMPILE", "") != "1"

    device = _device()
    steps = TRAIN_STEPS[size]
    peak = bf16_peak_tflops(torch.cuda.get_device_name(0)) if device.type == "cuda" else None
    _, _, _, _, _, desc = setup(size, torch.device("cpu"), 2)
    part.set(size=size, device=str(device), model=desc, bf16_peak_tflops=peak, steps_timed=steps, **describe,
             flops_note="matmul/conv/attention FLOPs of forward+backward, traced by "
             "torch.utils.flop_counter at the timed batch; achieved = step_flops / step_s")
    flops = None
    for compiled in (False, True):
        for bf16 in (True, False):
            if compiled and not compile_ok:
                part.add("rows", {"compiled": True, "dtype": "bf16" if bf16 else "fp32",
                                  "skipped": "torch.compile switched off (--no-compile)"})
                continue
            try:
                row = _train_variant(size, device, compiled, bf16, steps, setup, batch)
            except Exception as err:  # one variant (say, compile on a host without a compiler) must not hide the rest
                row = {"compiled": compiled, "dtype": "bf16" if bf16 else "fp32", "error": f"{type(err).__name__}: {err}"}
            else:
                flops = flops or row["step_flops"]
                row["step_flops"] = flops
                if flops:
                    row["achieved_tflops"] = float(f"{flops / row['step_s'] / 1e12:.4g}")
                    if peak:
                        row["fraction_of_bf16_peak"] = round(row["achieved_tflops"] / peak, 4)
            part.add("rows", row)
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
    errors = [r for r in part.data["rows"] if "error" in r]
    part.set(status="ok" if not errors else "error",
             **({"reason": "; ".join(f"{r['compiled'] and 'compiled' or 'eager'} {r['dtype']}: {r['error']}"
                                     for r in errors)} if errors else {}))


def section_train(part: Part, size: str) -> None:
    _timed_variants(part, size, _train_setup, TRAIN_BATCH[size], {"stream": "joint"})


# ---- rgb -----------------------------------------------------------------------------------------------

#: Where an RGB student model would live; the section runs its training step once one of these exists.
RGB_BATCH = {"paper": 32, "small": 4}


def _rgb_setup(size: str, device, batch: int | None = None):
    """The SMILE Stage II step (tube masking, teacher targets on the fly) at this size's rgb_pretrain config. The
    device has no network, so a CLIP teacher is the CLIP ViT-B/16 structure with random weights: the same FLOPs."""
    import torch
    import yaml

    from mgfm.config import resolve
    from mgfm.models.rgb.student import SmileModel, StudentConfig
    from mgfm.models.rgb.teacher import ClipTeacher, build_teacher
    from mgfm.train.distributed import DistInfo
    from mgfm.train.loop import StepContext, TrainConfig
    from mgfm.train.rgb_pretrain import make_step

    path = ROOT / ("workflow/configs/paper.yaml" if size == "paper" else "config.yaml")
    block = resolve("rgb_pretrain", (yaml.safe_load(path.read_text()) or {}).get("rgb_pretrain") or {})
    cfg = StudentConfig.from_section(block["model"])
    tcfg = TrainConfig.from_params(block["stage2"], seed=0)
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
    opt = torch.optim.AdamW(model.parameters(), lr=tcfg.lr, betas=tcfg.betas, weight_decay=tcfg.weight_decay)
    g = torch.Generator().manual_seed(1)
    x = torch.randint(0, 256, (batch, cfg.num_frames, cfg.image_size, cfg.image_size, 3), generator=g,
                      dtype=torch.uint8).to(device)
    b = {"x": x, "index": torch.arange(batch)}
    step_fn = make_step(cfg, teacher, block["masking"], 2, None, None)
    info = DistInfo(rank=0, world=1, local_rank=0, device=device, created_group=False)

    def ctx(i: int) -> StepContext:
        return StepContext(0, i, i, info, batch, torch.Generator().manual_seed(1000 + i))

    return model, opt, b, step_fn, ctx, {"batch": batch, "stage": 2, "teacher": t["kind"], **cfg.to_dict()}


def section_rgb(part: Part, size: str) -> None:
    _timed_variants(part, size, _rgb_setup, RGB_BATCH[size], {"stage": 2, "teacher_targets": "on the fly"})


# ---- ddp -----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def section_ddp(part: Part, size: str) -> None:
    import torch
    import torch.distributed as dist
    from torch.nn.parallel import DistributedDataParallel

    from mgfm.train.distributed import gather_with_grad

    device = _device()
    if device.type == "cuda":
        device = torch.device("cuda", torch.cuda.current_device())  # NCCL binds one indexed device
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_available() or (backend == "nccl" and not dist.is_nccl_available()):
        part.set(status="skipped", reason=f"torch.distributed without {backend}")
        return
    t0 = time.perf_counter()
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1,
                            device_id=device if device.type == "cuda" else None)
    try:
        part.set(backend=dist.get_backend(), init_s=round(time.perf_counter() - t0, 2), device=str(device))
        t = torch.arange(8, dtype=torch.float32, device=device)
        dist.all_reduce(t)
        parts = [torch.empty_like(t)]
        dist.all_gather(parts, t)
        if not (torch.equal(t, torch.arange(8.0, device=device)) and torch.equal(parts[0], t)):
            raise RuntimeError("all_reduce / all_gather over one process changed the tensor")
        # the same training step plain and under DDP (features gathered with gradients as in pretraining):
        # DDP's gradient all-reduce (over NCCL on a GPU) must hand back the plain step's gradients
        small = "small" if size == "small" else "paper"
        results = {}
        for wrapped in (False, True):
            model, opt, batch, step_fn, ctx, desc = _train_setup(small, device, batch=32 if size == "paper" else 8)
            fwd = model
            if wrapped:
                model.gather_fn = lambda x: gather_with_grad(x, dim=1)
                fwd = DistributedDataParallel(model, device_ids=[device.index or 0] if device.type == "cuda" else None)
            with torch.autocast(device.type, dtype=torch.bfloat16):
                loss, _ = step_fn(fwd, batch, ctx(0))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _sync(device)
            results[wrapped] = (float(loss), [p.grad.detach().float().cpu() for p in model.parameters()
                                              if p.grad is not None])
            opt.step()
        plain, ddp = results[False][1], results[True][1]
        scale = max(float(g.abs().max()) for g in plain)
        diff = max(float((a - b).abs().max()) for a, b in zip(plain, ddp))
        rtol = DDP_RTOL[device.type]
        part.set(loss_plain=results[False][0], loss_ddp=results[True][0], grads=len(plain), max_grad=scale,
                 max_grad_diff=diff, rtol=rtol, batch=desc["batch"])
        if len(plain) != len(ddp) or diff > rtol * scale:
            raise RuntimeError(f"DDP step differs from the plain step: loss {results[True][0]} vs "
                               f"{results[False][0]}, max gradient difference {diff:.3g} (> {rtol} x {scale:.3g})")
    finally:
        dist.destroy_process_group()
    part.set(status="ok")


# ---- resume --------------------------------------------------------------------------------------------


def _resume_params(size: str) -> dict:
    """A short pretraining run: paper-wide DSTE on a GPU (small on CPU), 3 epochs, a checkpoint every epoch."""
    model = dict(_config_block(size)["model"])
    if size == "paper":
        model.update(projector_dims=[1024, 1024, 1024], instance_projector_dims=[1024, 1024, 1024])
    return {"model": model, "train": {"epochs": RESUME_EPOCHS, "batch_size": RESUME_DATA[size][1], "lr": 5e-4,
                                      "checkpoint_every": 1, "amp": True, "log_every_steps": 1000}}


def _resume_child(dataset: str, out: str, size: str, kill_after: int) -> None:
    """One pretraining run in this process; SIGKILL itself after epoch ``kill_after`` (0: never)."""
    from mgfm.train.pretrain import pretrain_skeleton

    def on_epoch_end(done: int, row: dict) -> None:
        if done == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)  # no cleanup, as a pre-empted job: checkpoint already on disk

    pretrain_skeleton(dataset, "joint", out, _resume_params(size), seed=3, on_epoch_end=on_epoch_end)


def section_resume(part: Part, size: str) -> None:
    import torch
    from safetensors.torch import load_file

    from tests.support.skeleton import write_synthetic_skeleton

    device = _device().type
    with tempfile.TemporaryDirectory() as tmpdir:
        tmp = Path(tmpdir)
        write_synthetic_skeleton(tmp / "ds", RESUME_DATA[size][0], frames=64, seed=5)

        def run(out: str, kill_after: int) -> int:
            cmd = [sys.executable, __file__, "--resume-child", str(tmp / "ds"), str(tmp / out), size, str(kill_after)]
            return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True).returncode

        t0 = time.perf_counter()
        rcs = {"uninterrupted": run("a", 0), "killed": run("b", RESUME_KILL_AFTER)}
        rcs["resumed"] = run("b", 0)
        part.set(return_codes=rcs, device=device, epochs=RESUME_EPOCHS, killed_after_epoch=RESUME_KILL_AFTER,
                 seconds=round(time.perf_counter() - t0, 1))
        if rcs["uninterrupted"] != 0 or rcs["resumed"] != 0 or rcs["killed"] != -signal.SIGKILL:
            raise RuntimeError(f"unexpected return codes {rcs} (killed run must end by SIGKILL)")
        steps = (tmp / "b" / "train_log.csv").read_text().splitlines()[1:]
        a, b = load_file(tmp / "a" / "encoder.safetensors"), load_file(tmp / "b" / "encoder.safetensors")
    diff = max(float((a[k].float() - b[k].float()).abs().max()) for k in a)
    # how far training moved the weights: the scale a broken resume's error would have (init as pretrain_skeleton)
    from mgfm.common.seeding import derive_seed
    from mgfm.config import resolve
    from mgfm.models import DSTE
    from mgfm.train.loop import TrainConfig
    from mgfm.train.pretrain import split_model_params

    params = resolve("pretrain", _resume_params(size))
    arch, _ = split_model_params(params["model"])
    seed = TrainConfig.from_params(params["train"], seed=derive_seed(3, "pretrain", "skeleton", "joint")).seed
    torch.manual_seed(derive_seed(seed, "init"))
    init = DSTE(**arch.to_dict()).state_dict()
    update = max(float((a[k].float() - init[k].float()).abs().max()) for k in a if k in init)
    rtol = RESUME_RTOL[device]
    part.set(max_weight_diff=diff, max_weight_update=update, relative_diff=diff / max(update, 1e-12), rtol=rtol,
             epochs_logged_after_resume=len(steps))
    if len(steps) != RESUME_EPOCHS:
        raise RuntimeError(f"resumed run's train_log.csv has {len(steps)} epoch rows, expected {RESUME_EPOCHS}")
    if diff > rtol * update:
        raise RuntimeError(f"resumed weights differ from uninterrupted by {diff:.3g} (> {rtol} x update {update:.3g})")
    part.set(status="ok")


# ---- orchestration -------------------------------------------------------------------------------------

RUNNERS = {"env": section_env, "pose": section_pose, "train": section_train, "rgb": section_rgb,
           "ddp": section_ddp, "resume": section_resume}


def run_section_child(name: str, size: str, part_path: Path) -> int:
    part = Part(part_path)
    try:
        RUNNERS[name](part, size)
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] == "mgfm":  # our own code is broken: an error, not a missing piece
            part.set(status="error", reason=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-3000:])
            return 1
        part.set(status="skipped", reason=f"Python module {err.name!r} is not installed on this machine ({err}); "
                 "the device has no network, so bring it as a wheel in shared/wheels/")
        return 0
    except Exception as err:
        part.set(status="error", reason=f"{type(err).__name__}: {err}", traceback=traceback.format_exc()[-3000:])
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
        os.killpg(proc.pid, signal.SIGKILL)  # the section's own process group: its compile workers too
        log, _ = proc.communicate()
        timed_out = True
    result = json.loads(part_path.read_text()) if part_path.is_file() else {}
    if timed_out:
        result.update(status="timeout", reason=f"killed after its {limit}s limit; fields above are what it measured")
    elif "status" not in result or result["status"] not in ("ok", "skipped", "error"):
        result.update(status="error", reason=f"section process exited {proc.returncode} without a result")
    if result["status"] in ("error", "timeout"):
        result["log_tail"] = (log or "")[-2000:]
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
             f"onnxruntime {env.get('onnxruntime')}, python {env.get('python')}",
             f"- created {report['created_utc']}, git {report['git_revision']}, {report['total_seconds']} s in all",
             "", "| section | status | seconds | note |", "|---|---|---|---|"]
    for name, sec in report["sections"].items():
        note = sec.get("reason", "").replace("|", "/").replace("\n", " ")[:200]
        lines.append(f"| {name} | {sec.get('status')} | {sec.get('seconds')} | {note} |")
    pose = report["sections"].get("pose", {})
    if pose.get("rows"):
        lines += ["", f"## Pose ({pose.get('device')}, {pose.get('video')} {pose.get('width')}x{pose.get('height')}, "
                  f"{pose.get('frames')} frames; decode-only {_fmt(pose.get('decode_fps'))} frames/s, model alone "
                  f"{_fmt(pose.get('model_only_fps_batch64'))} frames/s at batch 64)", "",
                  "| batch | frames/s | decode-only frames/s | fraction of decode |", "|---|---|---|---|"]
        lines += [f"| {r['batch']} | {r['frames_per_s']} | {r['decode_fps']} | {r['fraction_of_decode']} |"
                  for r in pose["rows"]]
    train = report["sections"].get("train", {})
    if train.get("rows"):
        lines += ["", f"## MG-FM-Skele training step ({train.get('size')} size, {train.get('device')}, bf16 peak "
                  f"{_fmt(train.get('bf16_peak_tflops'))} TFLOP/s)", "",
                  "| mode | dtype | clips/s | step s | first step s | TFLOP/s | of bf16 peak | peak GiB |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in train["rows"]:
            mode = "compiled" if r["compiled"] else "eager"
            if "error" in r or "skipped" in r:
                why = f"error: {r['error'][:80]}" if "error" in r else f"skipped: {r['skipped']}"
                lines.append(f"| {mode} | {r['dtype']} | {why} | | | | | |")
                continue
            lines.append(f"| {mode} | {r['dtype']} | {r['clips_per_s']} | {r['step_s']} | {r['first_step_s']} | "
                         f"{_fmt(r.get('achieved_tflops'))} | {_fmt(r.get('fraction_of_bf16_peak'))} | "
                         f"{_fmt(r.get('peak_mem_gib'))} |")
    for name, keys in (("ddp", ("backend", "loss_plain", "loss_ddp", "max_grad_diff", "max_grad", "rtol")),
                       ("resume", ("max_weight_diff", "max_weight_update", "relative_diff", "rtol"))):
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
    parser.add_argument("--no-compile", action="store_true", help="train: skip the torch.compile variants (fast CI)")
    parser.add_argument("--section", help=argparse.SUPPRESS)
    parser.add_argument("--part", help=argparse.SUPPRESS)
    parser.add_argument("--resume-child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.resume_child:
        dataset, out, size, kill = args.resume_child
        _resume_child(dataset, out, size, int(kill))
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
    report = {"schema": 1, "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "git_revision": _git_revision(), "size": size, "compile": not args.no_compile, "sections": {}}
    with tempfile.TemporaryDirectory() as tmpdir:
        for name in only:
            limit = LIMITS[name][0 if size == "paper" else 1]
            print(f"gpu_check: {name} (limit {limit}s) ...", flush=True)
            report["sections"][name] = sec = _run_section(name, size, limit, Path(tmpdir))
            print(f"gpu_check: {name}: {sec['status']} in {sec['seconds']}s {sec.get('reason', '')}", flush=True)
            report["total_seconds"] = round(time.perf_counter() - t0, 1)
            _write_json(out / "gpu_check.json", report)  # after every section: a killed run keeps the rest
    (out / "gpu_check.md").write_text(markdown(report))
    print(markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
