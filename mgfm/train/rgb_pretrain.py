"""MG-FM-RGB pretraining (SMILE on VideoMAE), one stage per call, through the shared ``fit`` loop.

- Stage 1: each clip gets pasted object tubelets (``rgb_motion``), the teacher sees the augmented clip, and the
  mask is trajectory-aware (``rgb_masking.trajectory_mask``).
- Stage 2: initialised from Stage 1's whole model (encoder + decoder, ``smile_model.safetensors``), original clips,
  tube masking; the teacher's targets can be computed once per clip and cached on disk (``teacher.cache``), since
  the clip never changes (Stage 1 cannot cache: its input is re-augmented every step).
Loss: MSE between the decoder's predictions and the normalised teacher tokens of the masked tokens only, in
float32. Outputs in the model folder: ``encoder.safetensors`` + ``card.json`` (``load_encoder``),
``smile_model.safetensors`` (encoder + decoder, to initialise the next stage), ``checkpoints/last.pt``,
``train_log.csv``, ``train_steps.csv``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from mgfm.common.atomic import atomic_path
from mgfm.common.disk import check_free_space, reserve
from mgfm.common.logs import Progress
from mgfm.common.seeding import derive_seed
from mgfm.config.steps import resolve_step
from mgfm.core.packed import read_info
from mgfm.models.artifact import save_encoder
from mgfm.models.rgb.convert import start_pretraining_from
from mgfm.models.rgb.student import SmileModel, StudentConfig, normalise_clips
from mgfm.models.rgb.targets import teacher_targets
from mgfm.models.rgb.teacher import build_teacher
from mgfm.train.checkpoint import code_version, dataset_digest, file_digest, fingerprint_of
from mgfm.train.distributed import DistInfo, init_distributed
from mgfm.train.loop import StepContext, TrainConfig, fit
from mgfm.train.pretrain import CODE_PACKAGES, git_revision
from mgfm.train.rgb_data import PackedRGBClips, TargetsFromCache, to_unit
from mgfm.train.rgb_masking import trajectory_mask, tube_mask
from mgfm.train.rgb_motion import MotionConfig, draw, render, select, trajectory_tokens

log = logging.getLogger(__name__)
FULL_MODEL = "smile_model.safetensors"
TARGET_CACHE = "teacher_targets.npy"
STAGES = (1, 2)


def make_step(cfg: StudentConfig, teacher: torch.nn.Module, masking: dict, stage: int,
              motion: MotionConfig | None, cache: np.ndarray | None):
    """The step: (stage 1) paste objects; teacher targets (or the cache); mask; student; masked-token MSE."""
    grid = cfg.grid

    def step(model: torch.nn.Module, batch: dict, ctx: StepContext):
        x = to_unit(batch["x"])
        b = x.shape[0]
        rows = slice(ctx.dist.rank, None, ctx.dist.world)
        terms = {}
        with torch.autocast(device_type=x.device.type, enabled=False):
            if stage == 1:
                draws = select(draw(motion, ctx.global_batch, cfg.num_frames, cfg.image_size, ctx.generator), rows)
                x, coverage = render(x, draws)
                traj = trajectory_tokens(coverage, cfg.tubelet_size, cfg.patch_size)
                mask, glimpses = trajectory_mask(traj.cpu(), masking["ratio"], masking["trajectory_visible"],
                                                 ctx.generator, rows, ctx.global_batch)
                terms["trajectory_tokens"] = traj.float().mean()
                terms["trajectory_visible"] = glimpses.float().sum() / traj.sum().clamp(min=1).cpu()
            else:
                mask = tube_mask(ctx.global_batch, grid, masking["ratio"], ctx.generator)[rows]
            if "target" in batch:  # served by the Dataset (TargetsFromCache): read by the loader's workers
                target = batch["target"].float()
            elif cache is not None:
                target = torch.from_numpy(np.asarray(cache[batch["index"].cpu().numpy()], np.float32)).to(x.device)
            else:
                teacher.to(x.device)
                target = teacher_targets(teacher, x, cfg.tubelet_size)
        mask = mask.to(x.device)
        pred = model(normalise_clips(x), mask).float()
        target = target[mask].reshape(b, -1, target.shape[-1])
        return torch.nn.functional.mse_loss(pred, target), terms

    return step


def open_cache(path: Path, key: str) -> np.ndarray | None:
    """The target cache at ``path`` (memory-mapped) when its ``.json`` says it was made for ``key``, else None."""
    meta = path.with_suffix(".json")
    try:
        if path.is_file() and json.loads(meta.read_text()).get("key") == key:
            return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return None


def cache_targets(teacher: torch.nn.Module, data: PackedRGBClips, cfg: StudentConfig, path: Path, key: str,
                  batch_size: int, device: torch.device) -> np.ndarray:
    """Teacher targets of every clip (float16 (N, tokens, D)) at ``path``, reused while ``key`` matches."""
    meta = path.with_suffix(".json")
    cached = open_cache(path, key)
    if cached is not None:
        return cached
    teacher.to(device)
    first = teacher_targets(teacher, to_unit(data[[0]]["x"]).to(device), cfg.tubelet_size)
    n = len(data)
    bar = Progress(n, "teacher targets", unit="clip")
    with atomic_path(path) as tmp:
        shape = (n, *first.shape[1:])
        check_free_space(tmp, int(np.prod(shape)) * 2, f"the teacher targets {path}")
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        reserve(tmp, tmp.stat().st_size, f"the teacher targets {path}")   # a full disk: an error, not a SIGBUS
        for start in range(0, n, batch_size):
            idx = np.arange(start, min(start + batch_size, n))
            x = to_unit(data[idx]["x"]).to(device)
            out[idx] = teacher_targets(teacher, x, cfg.tubelet_size).cpu().numpy().astype(np.float16)
            bar.update(len(idx))
        out.flush()
        del out
    bar.close()
    with atomic_path(meta) as tmp:
        tmp.write_text(json.dumps({"key": key}) + "\n")
    return np.load(path, mmap_mode="r")


def shared_target_cache(teacher: torch.nn.Module, data: PackedRGBClips, cfg: StudentConfig, path: Path, key: str,
                        batch_size: int, info: DistInfo, poll_s: float = 2.0) -> np.ndarray:
    """The target cache of a run of one or more processes: built once, by rank 0 on its own device, while the
    other ranks wait for its key file (not in a collective, whose timeout a long build would exceed; torchrun
    stops them if rank 0 fails), then a barrier, then every rank maps the same file."""
    if info.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        cache_targets(teacher, data, cfg, path, key, batch_size, info.device)
    else:
        said = False
        while open_cache(path, key) is None:
            if not said:
                log.info("rank %d: waiting for rank 0 to write the teacher targets to %s", info.rank, path)
                said = True
            time.sleep(poll_s)
    if info.world > 1:
        dist.barrier(device_ids=[info.local_rank]) if info.device.type == "cuda" else dist.barrier()
    cache = open_cache(path, key)
    if cache is None:
        raise RuntimeError(f"{path}: the teacher-target cache is missing after rank 0 wrote it (is {path.parent} "
                           "shared by every process?)")
    return cache


def module_digest(module: torch.nn.Module) -> str:
    """sha256 of a module's parameters and buffers (names, shapes, bytes): the teacher by content, not by path."""
    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        h.update(t.view(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def pretrain_rgb(dataset: str | os.PathLike, stage: int, out: str | os.PathLike, params: dict, seed: int,
                 init: str | os.PathLike | None = None, device: str | None = None, on_epoch_end=None) -> Path:
    """Run SMILE stage ``stage`` (1 or 2) on a packed RGB dataset; returns the model folder.

    ``params`` is the ``rgb_pretrain`` section (missing keys take the schema's defaults); stage 2 needs ``init``,
    the Stage 1 model folder."""
    if stage not in STAGES:
        raise ValueError(f"unknown SMILE stage {stage!r}; expected 1 or 2")
    out = Path(out)
    params = resolve_step(f"pretrain_rgb_stage{stage}", params)
    cfg = StudentConfig.from_section(params["model"])
    train_key = f"stage{stage}"
    train_cfg = TrainConfig.from_params(params[train_key], seed=derive_seed(seed, "pretrain", "rgb", stage),
                                      key=f"rgb_pretrain.{train_key}")
    masking = params["masking"]
    motion = MotionConfig.from_section(params["motion"]) if stage == 1 else None
    data = PackedRGBClips(dataset, cfg.num_frames, cfg.image_size)
    teacher = build_teacher(params["teacher"], cfg.grid[1:])

    torch.manual_seed(derive_seed(train_cfg.seed, "init"))
    model = SmileModel(cfg, teacher.dim)
    init_desc = None
    if stage == 1 and params["init"]["checkpoint"]:       # SMILE's / VideoMAE's weights instead of random ones
        init_desc = start_pretraining_from(model, params["init"])
    if stage == 2:
        if init is None:
            raise ValueError("SMILE stage 2 starts from stage 1: pass the Stage 1 model folder (--init)")
        weights = Path(init) / FULL_MODEL
        if not weights.is_file():
            raise FileNotFoundError(f"{weights}: Stage 1 model missing (run stage 1 first)")
        try:
            model.load_state_dict(load_file(str(weights)), strict=True)
        except RuntimeError as err:
            raise ValueError(f"{weights}: does not match rgb_pretrain.model: {err}") from err
        init_desc = {"path": str(weights), "sha256": file_digest(weights), "stage1_final_loss": json.loads((Path(init) / "card.json").read_text())
                     .get("final_loss") if (Path(init) / "card.json").is_file() else None}
    data_desc = {"dataset": str(dataset), "name": Path(dataset).name, "num_clips": len(data),
                 "clip_shape": list(data.data.shape[1:]), "content_sha256": dataset_digest(dataset)}
    teacher_desc = {**params["teacher"], "dim": teacher.dim, "weights_sha256": module_digest(teacher)}
    shaping = {k: v for k, v in train_cfg.to_dict().items() if k not in ("checkpoint_every", "log_every_steps",
                                                                       "num_workers")}
    setup = {"model": cfg.to_dict(), "teacher": {k: v for k, v in teacher_desc.items() if k != "cache"},
             "masking": masking, "motion": motion.to_dict() if motion else None, "train": shaping, "stage": stage,
             # the data, the teacher and the Stage 1 model by content, never by path (a rebuilt dataset, another
             # teacher file or a retrained Stage 1 must not be resumed), and the code version
             "data": {k: data_desc[k] for k in ("num_clips", "clip_shape", "content_sha256")},
             "init": None if init_desc is None else {k: init_desc.get(k) for k in ("sha256", "decoder")},
             "code": code_version(*CODE_PACKAGES)}
    # under torchrun the process group starts here, before the target cache (fit joins the same group)
    info = init_distributed(device)
    try:
        train_data = data
        if stage == 2 and params["teacher"]["cache"]:
            key = fingerprint_of({"teacher": setup["teacher"], "data": setup["data"], "model": cfg.to_dict()})
            t_cache = time.perf_counter()
            cache = shared_target_cache(teacher, data, cfg, out / TARGET_CACHE, key, train_cfg.batch_size, info)
            train_data = TargetsFromCache(data, cache)
            log.info("pretrain rgb stage 2: teacher targets ready in %.1f s", time.perf_counter() - t_cache)
        t0 = time.perf_counter()
        result = fit(model, train_data, make_step(cfg, teacher, masking, stage, motion, None), train_cfg, out,
                     fingerprint_of(setup), desc=f"pretrain rgb/stage{stage}", device=device,
                     on_epoch_end=on_epoch_end)
    finally:
        if info.created_group and dist.is_initialized():
            dist.destroy_process_group()
    if result.dist.is_main:
        try:
            dataset_info = read_info(dataset)
        except (OSError, ValueError):
            dataset_info = {}
        card = {
            "architecture": "videomae", "modality": "rgb", "arch": cfg.to_dict(), "stream": "rgb", "stage": stage,
            "feature_dim": cfg.hidden, "num_frames": cfg.num_frames, "image_size": cfg.image_size,
            "input": "uint8 clip (T, S, S, 3) -> [0, 1] -> ImageNet mean/std, (B, T, 3, S, S); feature = mean of "
                     "the final tokens",
            "teacher": teacher_desc, "masking": masking, "motion": motion.to_dict() if motion else None,
            "init": init_desc, "data": {**data_desc, "info": dataset_info}, "epochs": train_cfg.epochs,
            "seed": seed, "train_seed": train_cfg.seed, "train": train_cfg.to_dict(), "git_revision": git_revision(),
            "parameters": {"encoder": sum(p.numel() for p in result.model.encoder.parameters()),
                           "with_decoder": sum(p.numel() for p in result.model.parameters())},
            "world_size": result.dist.world, "device": result.dist.device.type,
            "final_loss": result.history[-1]["loss"] if result.history else None,
            "train_seconds_last_run": round(time.perf_counter() - t0, 1),
        }
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in result.model.state_dict().items()}
        with atomic_path(out / FULL_MODEL) as tmp:
            save_file(state, str(tmp))
        save_encoder(out, result.model.encoder, card)
        log.info("pretrain rgb/stage%d: wrote %s", stage, out / "encoder.safetensors")
    return out
