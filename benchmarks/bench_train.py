"""MG-FM-Skele training throughput on this machine: paper-size and demo-size encoders, eager vs torch.compile,
peak memory, analytic FLOPs per clip, and the data pipeline's throughput against the model's consumption.

    python benchmarks/bench_train.py [--threads 2] [--paper-batch 16] [--demo-batch 128] [--steps 3] [--no-compile]

Sizes are the ``pretrain`` sections of workflow/configs/paper.yaml and config.yaml, resolved against the schema.
FLOPs per clip (``mgfm.models.flops``: forward + backward of all four views, projectors and loss) times clips/s
gives the achieved FLOP/s, which a GPU run divides by its peak to state its share.

Each measurement runs in its own subprocess (clean peak RSS, no compile cache shared between variants):
- model: one full training step (four augmented views -> DSTE -> projectors -> decorrelation loss, backward,
  Adam step) on a synthetic batch; clips/s = batch / median step time after one warm-up step (compile: after
  the compiling step, whose time is reported separately). Peak memory = the process's max RSS on CPU
  (torch.cuda.max_memory_allocated on GPU).
- loader: the training DataLoader exactly as ``fit`` builds it (DistributedSampler + BatchSampler over a
  memory-mapped packed dataset) plus the augmentation draws/apply and the stream transform, i.e. all the work
  the model waits for; clips/s over one pass.
Printed ratios: compiled / eager speed, loader / model speed (must stay well above 1: the loader may never be
the bottleneck), and paper / demo cost per clip.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the synthetic datasets


ROOT = Path(__file__).resolve().parents[1]
CONFIGS = {"paper": ROOT / "workflow" / "configs" / "paper.yaml", "demo": ROOT / "config.yaml"}


def pretrain_section(size: str) -> dict:
    """The resolved ``pretrain`` section of the paper or demo config."""
    import yaml

    from mgfm.config import resolve

    cfg = yaml.safe_load(CONFIGS[size].read_text())["pretrain"]
    return resolve("pretrain", {k: cfg[k] for k in ("model", "augment", "loss") if k in cfg})


def _peak_mb(device) -> float:
    import torch

    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_model(size: str, batch: int, steps: int, compile_: bool) -> dict:
    import torch

    from mgfm.models import DSTE, PretrainModel
    from mgfm.models.dste import DSTEConfig
    from mgfm.models.projectors import ProjectorConfig
    from mgfm.models.flops import pretrain_flops_per_clip
    from mgfm.models.losses import DecorrelationWeights, multi_grained_decorrelation_loss
    from mgfm.core.layout import to_stream
    from mgfm.train.augment import AugmentConfig, FourViewAugment
    from tests.support.skeleton import synthetic_skeleton

    section = pretrain_section(size)
    cfg = DSTEConfig.from_section(section["model"])
    proj = ProjectorConfig.from_section(section["model"])
    aug = AugmentConfig.from_section(section["augment"])
    weights = DecorrelationWeights.from_section(section["loss"])
    dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    torch.manual_seed(0)
    model = PretrainModel(DSTE(cfg), proj).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=5e-4)
    data, meta = synthetic_skeleton(batch, frames=cfg.num_frames, joints=cfg.num_joints, seed=1)
    x = torch.from_numpy(data).to(dev)
    valid = torch.tensor(meta["valid_len"].to_numpy()).to(dev)
    views = to_stream(FourViewAugment(aug, cfg.num_frames)(x, valid, torch.Generator().manual_seed(0)), "bone")
    flops = pretrain_flops_per_clip(cfg, proj["projector_dims"], proj["instance_projector_dims"], aug.num_views)
    fwd = torch.compile(model) if compile_ else model
    amp = torch.autocast("cuda", dtype=torch.bfloat16) if dev.type == "cuda" else torch.autocast("cpu", enabled=False)

    def step() -> float:
        t0 = time.perf_counter()
        with amp:
            loss, _ = multi_grained_decorrelation_loss(fwd(views), weights)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - t0

    first = step()
    times = [step() for _ in range(steps)]
    med = statistics.median(times)
    params = sum(p.numel() for p in model.encoder.parameters())
    device = torch.cuda.get_device_name() if dev.type == "cuda" else "cpu"
    return {"size": size, "compile": compile_, "device": device, "batch": batch, "first_step_s": first,
            "step_s": med, "clips_per_s": batch / med, "peak_mb": _peak_mb(dev), "encoder_params_m": params / 1e6,
            "all_params_m": sum(p.numel() for p in model.parameters()) / 1e6,
            "train_gflop_per_clip": flops["train_step"] / 1e9,
            "achieved_tflop_s": flops["train_step"] * batch / med / 1e12}


def measure_loader(size: str, batch: int, clips: int) -> dict:
    import torch
    from torch.utils.data import BatchSampler, DataLoader, DistributedSampler

    from mgfm.core.layout import to_stream
    from mgfm.train.augment import AugmentConfig, apply, draw
    from mgfm.train.skeleton_clips import PackedClips
    from tests.support.skeleton import write_synthetic_skeleton

    section = pretrain_section(size)
    frames = section["model"]["num_frames"]
    aug = AugmentConfig.from_section(section["augment"])
    with tempfile.TemporaryDirectory() as tmp:
        write_synthetic_skeleton(Path(tmp) / "ds", clips, frames=64, seed=2)  # packed T = 64 like the paper's
        ds = PackedClips(Path(tmp) / "ds")
        sampler = DistributedSampler(ds, num_replicas=1, rank=0, shuffle=True, seed=0, drop_last=True)
        loader = DataLoader(ds, sampler=BatchSampler(sampler, batch, drop_last=True), batch_size=None)
        g = torch.Generator().manual_seed(0)
        t0 = time.perf_counter()
        n = 0
        for b in loader:
            d = draw(aug, len(b["x"]), frames, b["x"].shape[3], g)
            to_stream(apply(aug, b["x"], b["valid_len"], d, frames), "bone")
            n += len(b["x"])
        secs = time.perf_counter() - t0
    return {"size": size, "batch": batch, "clips": n, "clips_per_s": n / secs}


def _child(args: list[str], threads: int, timeout: int) -> dict | str:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    try:
        res = subprocess.run([sys.executable, __file__, "--child", *args, "--threads", str(threads)], env=env,
                             capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"timed out after {timeout}s"
    if res.returncode != 0:
        return "failed: " + (res.stderr.strip().splitlines() or ["?"])[-1][:300]
    return json.loads(res.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--paper-batch", type=int, default=16)
    ap.add_argument("--demo-batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--loader-clips", type=int, default=4096)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per measurement subprocess")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        import torch

        torch.set_num_threads(args.threads)
        kind, size, batch, extra = args.child[0], args.child[1], int(args.child[2]), int(args.child[3])
        out = measure_model(size, batch, args.steps, bool(extra)) if kind == "model" else \
            measure_loader(size, batch, extra)
        print(json.dumps(out))
        return

    print(f"# bench_train: {args.threads} threads, load average {os.getloadavg()[0]:.1f} at start")
    rows = {}
    for size, batch in (("demo", args.demo_batch), ("paper", args.paper_batch)):
        for comp in ([False] if args.no_compile else [False, True]):
            r = _child(["model", size, str(batch), str(int(comp))], args.threads, args.timeout)
            rows[(size, comp)] = r
            if isinstance(r, str):
                print(f"model  {size:5s} {'compiled' if comp else 'eager':8s} batch {batch:4d}: {r}")
            else:
                print(f"model  {size:5s} {'compiled' if comp else 'eager':8s} batch {batch:4d}: "
                      f"{r['clips_per_s']:8.1f} clips/s  step {r['step_s']:.3f}s  first step {r['first_step_s']:.1f}s"
                      f"  peak {r['peak_mb']:.0f} MB  encoder {r['encoder_params_m']:.2f} M params"
                      f" (all {r['all_params_m']:.2f} M)  {r['train_gflop_per_clip']:.2f} GFLOP/clip"
                      f" = {1e3 * r['achieved_tflop_s']:.1f} GFLOP/s  ({r['device']})")
        lr = _child(["loader", size, str(batch), str(args.loader_clips)], args.threads, args.timeout)
        rows[(size, "loader")] = lr
        if isinstance(lr, str):
            print(f"loader {size:5s} batch {batch:4d}: {lr}")
        else:
            print(f"loader {size:5s} batch {batch:4d}: {lr['clips_per_s']:8.1f} clips/s (memmap read + 4-view "
                  "augmentation + stream)")
    print("# ratios")
    for size in ("demo", "paper"):
        eager, comp, lr = rows.get((size, False)), rows.get((size, True)), rows.get((size, "loader"))
        if isinstance(eager, dict) and isinstance(comp, dict):
            print(f"{size}: torch.compile / eager speed = {comp['clips_per_s'] / eager['clips_per_s']:.2f}x")
        elif comp is not None:
            print(f"{size}: torch.compile unavailable here ({comp})")
        if isinstance(eager, dict) and isinstance(lr, dict):
            print(f"{size}: loader / model speed = {lr['clips_per_s'] / eager['clips_per_s']:.1f}x "
                  "(> 1: the model, not the loader, is the bottleneck)")
    d, p = rows.get(("demo", False)), rows.get(("paper", False))
    if isinstance(d, dict) and isinstance(p, dict):
        print(f"paper / demo cost per clip = {d['clips_per_s'] / p['clips_per_s']:.0f}x")


if __name__ == "__main__":
    main()
