"""MG-FM-RGB pretraining cost on this machine: the demo- and paper-size student (eager vs torch.compile), analytic
FLOPs per clip, the teacher with and without the target cache, and packed uint8 clip loading vs consumption.

    python benchmarks/bench_rgb.py [--threads 2] [--demo-batch 32] [--paper-batch 2] [--steps 3] [--no-compile]
                                   [--no-paper] [--paper-compile]

Sizes are the ``rgb_pretrain`` sections of config.yaml (demo) and workflow/configs/paper.yaml (paper), resolved
against the schema. The paper-size teacher is CLIP ViT-B/16 with random weights (same cost as the real ones).
- step: one full Stage 1 training step (object pasting, teacher targets on the fly, trajectory-aware mask,
  student forward + backward, AdamW), and one Stage 2 step from the target cache; clips/s = batch / median
  step time after a warm-up step (compile: after the compiling step, timed separately). With
  ``masking.multiple_sampling`` (SMILE's, on in both configs) each clip runs through the student twice a step.
- FLOPs per clip (``mgfm.models.rgb.flops``: student forward + backward, twice with multiple sampling, teacher
  forward) x clips/s = the achieved FLOP/s; a GPU run divides it by its peak to state its share.
- teacher: targets of one clip computed vs read from the float16 cache (``teacher.cache``).
- loader: the training loader itself (``mgfm.train.loop``'s DataLoader over the packed memmap: a shuffled
  DistributedSampler, the config's ``num_workers`` worker processes each prefetching 2 batches, pinned memory on a
  GPU), clips/s converted to float on the training device, printed beside the model's Stage 1 clips/s: the
  loader keeps the model fed while its rate is the higher one. Also with 0 workers (the demo's setting). At paper
  size both layouts: the plain clips read as stored, and the views layout (``rgb.views``: more frames at the
  stride, a context margin) read as pretraining reads it, a new start and multi-scale crop per clip and epoch
  (``rgb_pretrain.augment``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.support: the synthetic datasets

from mgfm.config.steps import resolve_step  # noqa: E402
from mgfm.models.rgb.flops import clip_teacher_forward, train_step_per_clip  # noqa: E402
from mgfm.models.rgb.student import SmileModel, StudentConfig  # noqa: E402
from mgfm.models.rgb.targets import teacher_targets  # noqa: E402
from mgfm.models.rgb.teacher import ClipTeacher, build_teacher  # noqa: E402
from mgfm.train.loop import StepContext  # noqa: E402
from mgfm.train.rgb.clips import PackedRGBClips, to_unit  # noqa: E402
from mgfm.train.rgb.masking import masked_count  # noqa: E402
from mgfm.train.rgb.motion import MotionConfig  # noqa: E402
from mgfm.train.rgb.pretrain import make_step  # noqa: E402

CONFIGS = {"demo": ROOT / "config.yaml", "paper": ROOT / "workflow" / "configs" / "paper.yaml"}


def section(size: str, stage: int) -> dict:
    cfg = yaml.safe_load(CONFIGS[size].read_text()).get("rgb_pretrain", {})
    return resolve_step(f"pretrain_rgb_stage{stage}", cfg)


def teacher_of(p: dict, cfg: StudentConfig):
    if p["teacher"]["kind"] == "clip":     # random weights: the cost of the real ones, no download
        c = p["teacher"]["clip"]
        return ClipTeacher(None, cfg.grid[1:], c["image_size"], c["patch_size"], c["hidden"], c["depth"], c["heads"],
                           c["mlp_dim"])
    return build_teacher(p["teacher"], cfg.grid[1:])


def time_steps(model, step_fn, batch: dict, steps: int) -> tuple[float, list[float]]:
    """(first step seconds, later step seconds) of forward + backward + AdamW."""
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    times = []
    for i in range(steps + 1):
        ctx = StepContext(0, i, i, SimpleNamespace(rank=0, world=1), len(batch["x"]),
                          torch.Generator().manual_seed(i))
        t = time.perf_counter()
        loss, _ = step_fn(model, batch, ctx)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times[0], times[1:]


def bench_size(size: str, batch_size: int, steps: int, compile_too: bool) -> dict:
    p1, p2 = section(size, 1), section(size, 2)
    cfg = StudentConfig.from_section(p1["model"])
    teacher = teacher_of(p1, cfg)
    gen = np.random.default_rng(0)
    x = torch.from_numpy(gen.integers(0, 255, (batch_size, cfg.num_frames, cfg.image_size, cfg.image_size, 3),
                                      dtype=np.uint8))
    batch = {"x": x, "index": torch.arange(batch_size)}
    masked = masked_count(cfg.grid, p1["masking"]["ratio"])
    if p1["teacher"]["kind"] == "clip":
        c = p1["teacher"]["clip"]
        t_flops = clip_teacher_forward(cfg, c["image_size"], c["patch_size"], c["hidden"], c["depth"], c["mlp_dim"])
    else:
        from torch.utils.flop_counter import FlopCounterMode

        with FlopCounterMode(display=False) as fc:
            teacher_targets(teacher, to_unit(x[:1]), cfg.tubelet_size)
        t_flops = fc.get_total_flops()
    flops = train_step_per_clip(cfg, masked, teacher.dim, t_flops)
    if p1["masking"]["multiple_sampling"]:          # each clip runs through the student twice per step
        flops = {**flops, "student": 2 * flops["student"], "total": 2 * flops["student"] + flops["teacher"]}
    out = {"size": size, "batch": batch_size, "tokens": cfg.num_tokens, "masked": masked,
           "student_params": None, "flops_per_clip": flops}

    # teacher: per clip on the fly vs from the cache
    t = time.perf_counter()
    targets = teacher_targets(teacher, to_unit(x), cfg.tubelet_size)
    out["teacher_clips_per_s"] = batch_size / (time.perf_counter() - t)
    with tempfile.TemporaryDirectory() as tmp:
        cache = np.lib.format.open_memmap(Path(tmp) / "t.npy", mode="w+", dtype=np.float16,
                                          shape=(batch_size * 4, *targets.shape[1:]))
        cache[:batch_size] = targets.numpy().astype(np.float16)
        cache.flush()
        cache = np.load(Path(tmp) / "t.npy", mmap_mode="r")
        t = time.perf_counter()
        for _ in range(5):
            torch.from_numpy(np.asarray(cache[np.arange(batch_size)], np.float32))
        out["cache_clips_per_s"] = 5 * batch_size / (time.perf_counter() - t)
        out["cache_bytes_per_clip"] = int(np.prod(targets.shape[1:]) * 2)

        torch.manual_seed(0)
        model = SmileModel(cfg, teacher.dim)
        out["student_params"] = {"encoder": sum(q.numel() for q in model.encoder.parameters()),
                                 "with_decoder": sum(q.numel() for q in model.parameters())}
        motion = MotionConfig.from_section(p1["motion"])
        stage1 = make_step(cfg, teacher, p1["masking"], 1, motion, None)
        stage2 = make_step(cfg, teacher, p2["masking"], 2, None, cache)
        first, rest = time_steps(model, stage1, batch, steps)
        out["stage1_eager"] = {"first_s": first, "median_s": statistics.median(rest),
                               "clips_per_s": batch_size / statistics.median(rest)}
        first, rest = time_steps(model, stage2, batch, steps)
        out["stage2_cached_eager"] = {"first_s": first, "median_s": statistics.median(rest),
                                      "clips_per_s": batch_size / statistics.median(rest)}
        if compile_too:
            compiled = torch.compile(model)
            first, rest = time_steps(compiled, stage2, batch, steps)
            out["stage2_cached_compiled"] = {"first_s": first, "median_s": statistics.median(rest),
                                             "clips_per_s": batch_size / statistics.median(rest)}
    for key in ("stage1_eager", "stage2_cached_eager", "stage2_cached_compiled"):
        if key in out:
            per_clip = flops["total"] if key == "stage1_eager" else flops["student"]
            out[key]["gflop_per_s"] = out[key]["clips_per_s"] * per_clip / 1e9
    return out


def write_views_dataset(path: Path, n: int, size: str) -> None:
    """``n`` random clips in the views layout of this size's ``rgb`` section (what the pretraining dataset holds)."""
    import pandas as pd

    from mgfm.core.packed import PackedWriter

    rgb = resolve_step("pack_rgb", yaml.safe_load(CONFIGS[size].read_text()).get("rgb", {}))
    t, s, v = rgb["num_frames"], rgb["size"], rgb["views"]
    frames, side = t + v["extra_frames"], int(round(s * v["context"]))
    gen = np.random.default_rng(0)
    with PackedWriter(path, (n, frames, side, side, 3), np.uint8) as w:
        for i in range(n):
            w.data[i] = gen.integers(0, 255, (frames, side, side, 3), dtype=np.uint8)
        meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "video_id": "v", "subject_id": "s",
                             "split": "unlabeled", "label": -1, "valid_len": t, "start_frame": 0, "end_frame": 99,
                             "view_starts": v["extra_frames"] + 1})
        w.finish(meta, {"views": {"num_frames": t, "size": s, "frames": frames, "side": side, "stride": v["stride"],
                                  "context": v["context"]}})


def bench_loader(size: str, n: int, batch_size: int, workers: int | None = None, views: bool = False,
                 passes: int = 6) -> dict:
    """clips/s of the training loader (``mgfm.train.loop._loader``) with the config's workers (or ``workers``);
    ``views``: the views layout with per-epoch views (``rgb_pretrain.augment``) instead of plain clips."""
    from mgfm.common.accel import pick_device
    from mgfm.train.distributed import DistInfo
    from mgfm.train.loop import TrainConfig, _loader
    from mgfm.train.rgb.pretrain_views import ViewAugment
    from tests.support.rgb import write_synthetic_rgb

    p = section(size, 1)
    cfg = StudentConfig.from_section(p["model"])
    tcfg = TrainConfig.from_section({**p["stage1"], "batch_size": batch_size,
                                    **({} if workers is None else {"num_workers": workers})}, seed=0)
    device = pick_device()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ds"
        if views:
            write_views_dataset(path, n, size)
            data = PackedRGBClips(path, augment=ViewAugment.from_section(p["augment"]), seed=0)
        else:
            write_synthetic_rgb(path, n, frames=cfg.num_frames, size=cfg.image_size)
            data = PackedRGBClips(path)
        info = DistInfo(rank=0, world=1, local_rank=0, device=device, created_group=False)
        sampler, loader = _loader(data, tcfg, info, batch_size)
        # timed over several epochs after the first batch, so the batches the workers prefetch while starting
        # are a small part of what is timed (each epoch draws new views)
        t, done = None, 0
        for epoch in range(passes):
            sampler.set_epoch(epoch)
            for b in loader:
                x = to_unit(b["x"].to(device, non_blocking=True))
                if t is None:
                    t = time.perf_counter()
                else:
                    done += len(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
        rate = done / max(time.perf_counter() - t, 1e-9)
        return {"size": size, "clips": n, "batch": batch_size, "workers": tcfg.num_workers, "views": views,
                "epochs": passes, "stored_mb": data.data[0].nbytes / 2 ** 20, "clips_per_s": rate}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--demo-batch", type=int, default=32)
    ap.add_argument("--paper-batch", type=int, default=2)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--no-compile", action="store_true")
    ap.add_argument("--no-paper", action="store_true")
    ap.add_argument("--paper-compile", action="store_true", help="also torch.compile the paper-size student (minutes)")
    ap.add_argument("--loader-clips", type=int, default=96, help="paper-size clips the loader benchmark reads")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    print(f"# device {dev}, torch threads {torch.get_num_threads()}")
    results = {"demo": bench_size("demo", args.demo_batch, args.steps, not args.no_compile),
               "loader_demo": bench_loader("demo", 512, args.demo_batch),
               "loader_demo_views": bench_loader("demo", 512, args.demo_batch, views=True)}
    if not args.no_paper:
        results["paper"] = bench_size("paper", args.paper_batch, max(1, args.steps - 1), args.paper_compile)
        results["loader_paper"] = bench_loader("paper", args.loader_clips, 8)
        results["loader_paper_no_workers"] = bench_loader("paper", args.loader_clips, 8, workers=0)
        results["loader_paper_views"] = bench_loader("paper", args.loader_clips, 8, views=True)
        results["loader_paper_views_no_workers"] = bench_loader("paper", args.loader_clips, 8, workers=0, views=True)
    print(json.dumps(results, indent=2))
    d = results["demo"]
    print(f"demo: stage 1 {d['stage1_eager']['clips_per_s']:.1f} clips/s, stage 2 (cached targets) "
          f"{d['stage2_cached_eager']['clips_per_s']:.1f} clips/s; teacher {d['teacher_clips_per_s']:.1f} clips/s "
          f"on the fly vs cache {d['cache_clips_per_s']:.0f} clips/s; loader {results['loader_demo']['clips_per_s']:.0f} "
          f"clips/s ({results['loader_demo']['workers']} workers) beside the model's stage 1 "
          f"{d['stage1_eager']['clips_per_s']:.1f}: {results['loader_demo']['clips_per_s'] / d['stage1_eager']['clips_per_s']:.0f}x; "
          f"with per-epoch views {results['loader_demo_views']['clips_per_s']:.0f} clips/s "
          f"({results['loader_demo_views']['clips_per_s'] / d['stage1_eager']['clips_per_s']:.0f}x)")
    if "stage2_cached_compiled" in d:
        print(f"demo compiled/eager (stage 2): {d['stage2_cached_compiled']['clips_per_s'] / d['stage2_cached_eager']['clips_per_s']:.2f}x "
              f"(compile step {d['stage2_cached_compiled']['first_s']:.0f} s)")
    if "paper" in results:
        p = results["paper"]
        lp, l0 = results["loader_paper"], results["loader_paper_no_workers"]
        print(f"paper: {p['flops_per_clip']['total'] / 1e9:.1f} GFLOP per clip per step (student "
              f"{p['flops_per_clip']['student'] / 1e9:.1f}, teacher {p['flops_per_clip']['teacher'] / 1e9:.1f}); "
              f"stage 1 model {p['stage1_eager']['clips_per_s']:.2f} clips/s = {p['stage1_eager']['gflop_per_s']:.0f} "
              f"GFLOP/s; loader {lp['clips_per_s']:.0f} clips/s with {lp['workers']} workers "
              f"({l0['clips_per_s']:.0f} with none): {lp['clips_per_s'] / p['stage1_eager']['clips_per_s']:.0f}x the "
              "model's rate")
        lv, lv0 = results["loader_paper_views"], results["loader_paper_views_no_workers"]
        print(f"paper, views layout ({lv['stored_mb']:.2f} MB stored per clip) with per-epoch views: loader "
              f"{lv['clips_per_s']:.0f} clips/s with {lv['workers']} workers ({lv0['clips_per_s']:.0f} with none): "
              f"{lv['clips_per_s'] / p['stage1_eager']['clips_per_s']:.0f}x the model's rate")
        if "stage2_cached_compiled" in p:
            print(f"paper compiled/eager (stage 2): "
                  f"{p['stage2_cached_compiled']['clips_per_s'] / p['stage2_cached_eager']['clips_per_s']:.2f}x "
                  f"(compile step {p['stage2_cached_compiled']['first_s']:.0f} s)")


if __name__ == "__main__":
    main()
