"""MG-FM-RGB pretraining (SMILE on VideoMAE), one stage per call, through the shared ``fit`` loop.

- Every stage in ``augment.stages`` reads a new view of each clip every epoch (``rgb_pretrain_views``: a random
  start at the stride, a multi-scale crop), drawn in the loader from (seed, clip id, epoch).
- Stage 1: each clip gets pasted objects on smoothed random paths (``rgb_motion``; from ``motion.objects_dir``'s
  RGBA crops, ``rgb_objects``, or generated), the teacher sees the augmented clip, and the mask is SMILE's
  trajectory-aware one built from the objects' boxes (``rgb_masking.trajectory_mask``).
- Stage 2: initialised from Stage 1's whole model (encoder + decoder, ``smile_model.safetensors``), original clips,
  tube masking; without per-epoch views the teacher's targets can be computed once per clip and cached on disk
  (``teacher.cache``).
- Multiple sampling (``masking.multiple_sampling``, SMILE's): each step runs the batch twice, the second time with
  the masks of the batch shuffled, as one forward pass over both.
Loss: MSE between the decoder's predictions and the normalised teacher tokens of the masked tokens only, in
float32. Optimiser groups: no weight decay on biases, norms and the mask token (``decay_exempt``). Outputs in the
model folder: ``encoder.safetensors`` + ``card.json`` (``load_encoder``), ``smile_model.safetensors`` (encoder +
decoder, to initialise the next stage), ``checkpoints/last.pt``, ``train_log.csv``, ``train_steps.csv``.
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
from mgfm.common.revision import git_revision
from mgfm.common.seeding import derive_seed
from mgfm.config.steps import resolve_step
from mgfm.models.rgb.convert import start_pretraining_from
from mgfm.models.rgb.student import SmileModel, StudentConfig, normalise_clips
from mgfm.models.rgb.targets import teacher_targets
from mgfm.models.rgb.teacher import build_teacher
from mgfm.train.checkpoint import code_version, dataset_digest, file_digest, fingerprint_of
from mgfm.train.distributed import DistInfo, init_distributed
from mgfm.train.loop import StepContext, TrainConfig, fit
from mgfm.train.pretrain import CODE_PACKAGES
from mgfm.train.pretrained import data_card, run_card, write_pretrained
from mgfm.train.rgb.clips import PackedRGBClips, TargetsFromCache, to_unit
from mgfm.train.rgb.masking import box_tokens, trajectory_mask, tube_mask
from mgfm.train.rgb.motion import MotionConfig, draw, render, select
from mgfm.train.rgb.objects import bank_key, build_bank, object_files, open_bank
from mgfm.train.rgb.pretrain_views import ViewAugment

log = logging.getLogger(__name__)
FULL_MODEL = "smile_model.safetensors"
TARGET_CACHE = "teacher_targets.npy"
OBJECT_BANK = "objects_bank.npy"
STAGES = (1, 2)


def make_step(cfg: StudentConfig, teacher: torch.nn.Module, masking: dict, stage: int,
              motion: MotionConfig | None, cache: np.ndarray | None, bank: np.ndarray | None = None):
    """The step: (stage 1) paste objects; teacher targets (or the cache); masks (a second, shuffled set with
    multiple sampling); student; masked-token MSE. Objects, masks and the shuffle are drawn for the global batch
    and each process takes its rows."""
    grid = cfg.grid

    def step(model: torch.nn.Module, batch: dict, ctx: StepContext):
        x = to_unit(batch["x"])
        rows = slice(ctx.dist.rank, None, ctx.dist.world)
        terms = {}
        with torch.autocast(device_type=x.device.type, enabled=False):
            if stage == 1:
                draws = draw(motion, ctx.global_batch, cfg.num_frames, cfg.image_size, ctx.generator,
                             0 if bank is None else len(bank))
                traj = box_tokens(draws["box"], grid, cfg.patch_size)
                masks, glimpses = trajectory_mask(traj, masking["ratio"], masking["trajectory_visible"],
                                                  ctx.generator)
                x = render(x, select(draws, rows), bank)
                traj = traj.reshape(ctx.global_batch, -1)[rows]
                terms["trajectory_tokens"] = traj.float().mean()
                terms["trajectory_visible"] = glimpses[rows].float().sum() / traj.sum().clamp(min=1)
            else:
                masks = tube_mask(ctx.global_batch, grid, masking["ratio"], ctx.generator)
            mask = masks[rows]
            if masking["multiple_sampling"]:   # SMILE: the masks of the batch shuffled, the same clips again
                mask = torch.cat([mask, masks[torch.randperm(ctx.global_batch, generator=ctx.generator)][rows]])
            if "target" in batch:  # served by the Dataset (TargetsFromCache): read by the loader's workers
                target = batch["target"].float()
            elif cache is not None:
                target = torch.from_numpy(np.asarray(cache[batch["index"].cpu().numpy()], np.float32)).to(x.device)
            else:
                teacher.to(x.device)
                target = teacher_targets(teacher, x, cfg.tubelet_size)
        mask = mask.to(x.device)
        repeat = len(mask) // len(x)
        clips = normalise_clips(x)
        if repeat > 1:
            clips, target = torch.cat([clips] * repeat), torch.cat([target] * repeat)
        pred = model(clips, mask).float()
        target = target[mask].reshape(len(mask), -1, target.shape[-1])
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


def built_by_rank0(path: Path, key: str, build, opener, info: DistInfo, what: str, poll_s: float = 2.0):
    """A file of a run of one or more processes, built once: rank 0 calls ``build()`` (which reuses a file whose
    key matches) while the other ranks wait for ``opener(path, key)`` to find it (not in a collective, whose
    timeout a long build would exceed; torchrun stops them if rank 0 fails), then a barrier, then every rank
    opens the same file."""
    if info.is_main:
        path.parent.mkdir(parents=True, exist_ok=True)
        build()
    else:
        said = False
        while opener(path, key) is None:
            if not said:
                log.info("rank %d: waiting for rank 0 to write the %s to %s", info.rank, what, path)
                said = True
            time.sleep(poll_s)
    if info.world > 1:
        dist.barrier(device_ids=[info.local_rank]) if info.device.type == "cuda" else dist.barrier()
    opened = opener(path, key)
    if opened is None:
        raise RuntimeError(f"{path}: the {what} is missing after rank 0 wrote it (is {path.parent} shared by every "
                           "process?)")
    return opened


def shared_target_cache(teacher: torch.nn.Module, data: PackedRGBClips, cfg: StudentConfig, path: Path, key: str,
                        batch_size: int, info: DistInfo, poll_s: float = 2.0) -> np.ndarray:
    """The target cache of a run of one or more processes, built by rank 0 on its own device (``built_by_rank0``)."""
    return built_by_rank0(path, key, lambda: cache_targets(teacher, data, cfg, path, key, batch_size, info.device),
                          open_cache, info, "teacher targets", poll_s)


def shared_object_bank(folder: str, size: int, path: Path, info: DistInfo) -> tuple[np.ndarray, str]:
    """The memory-mapped bank of ``folder``'s RGBA objects (``rgb_objects``), packed once by rank 0, and its key."""
    files = object_files(folder)
    key = bank_key(folder, files, size)
    bank = built_by_rank0(path, key, lambda: open_bank(path, key) if open_bank(path, key) is not None
                          else build_bank(files, size, path, key), open_bank, info, "object bank")
    return bank, key


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
    train_cfg = TrainConfig.from_section(params[train_key], seed=derive_seed(seed, "pretrain", "rgb", stage),
                                      key=f"rgb_pretrain.{train_key}")
    masking = params["masking"]
    motion = MotionConfig.from_section(params["motion"]) if stage == 1 else None
    augment = params["augment"]
    views = ViewAugment.from_section(augment) if stage in augment["stages"] else None
    if stage == 2 and params["teacher"]["cache"] and views is not None:
        raise ValueError("rgb_pretrain.teacher.cache keeps the targets of each clip's centre view, but Stage 2 reads "
                         "a new view every epoch (rgb_pretrain.augment.stages lists 2): turn one of them off")
    data = PackedRGBClips(dataset, cfg.num_frames, cfg.image_size, augment=views,
                          seed=derive_seed(train_cfg.seed, "views"))
    teacher = build_teacher(params["teacher"], cfg.grid[1:])

    torch.manual_seed(derive_seed(train_cfg.seed, "init"))
    model = SmileModel(cfg, teacher.dim, decay_exempt=params["decay_exempt"])
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
    # with the schedule sized apart from the stop epoch, the lr of every step is known before the run ends, so
    # where the run stops is left out: raising epochs resumes a stopped run (SMILE's early-stopped recipe)
    bookkeeping = ("checkpoint_every", "log_every_steps", "num_workers") + (("epochs",) if train_cfg.schedule_epochs
                                                                           else ())
    shaping = {k: v for k, v in train_cfg.to_dict().items() if k not in bookkeeping}
    augment_desc = {**(views.to_dict() if views else {}), "per_epoch_views": views is not None}
    setup = {"model": cfg.to_dict(), "teacher": {k: v for k, v in teacher_desc.items() if k != "cache"},
             "masking": masking, "motion": motion.to_dict() if motion else None, "train": shaping, "stage": stage,
             "augment": augment_desc, "decay_exempt": params["decay_exempt"],
             # the data, the teacher and the Stage 1 model by content, never by path (a rebuilt dataset, another
             # teacher file or a retrained Stage 1 must not be resumed), and the code version
             "data": {k: data_desc[k] for k in ("num_clips", "clip_shape", "content_sha256")},
             "init": None if init_desc is None else {k: init_desc.get(k) for k in ("sha256", "decoder")},
             "code": code_version(*CODE_PACKAGES)}
    # under torchrun the process group starts here, before the target cache (fit joins the same group)
    info = init_distributed(device)
    try:
        bank = None
        if motion is not None and motion.objects_dir:
            bank, setup["objects"] = shared_object_bank(motion.objects_dir, motion.object_size, out / OBJECT_BANK,
                                                        info)
            log.info("pretrain rgb stage 1: %d objects from %s", len(bank), motion.objects_dir)
        train_data = data
        if stage == 2 and params["teacher"]["cache"]:
            key = fingerprint_of({"teacher": setup["teacher"], "data": setup["data"], "model": cfg.to_dict()})
            t_cache = time.perf_counter()
            cache = shared_target_cache(teacher, data, cfg, out / TARGET_CACHE, key, train_cfg.batch_size, info)
            train_data = TargetsFromCache(data, cache)
            log.info("pretrain rgb stage 2: teacher targets ready in %.1f s", time.perf_counter() - t_cache)
        t0 = time.perf_counter()
        result = fit(model, train_data, make_step(cfg, teacher, masking, stage, motion, None, bank), train_cfg, out,
                     fingerprint_of(setup), desc=f"pretrain rgb/stage{stage}", device=device,
                     on_epoch_end=on_epoch_end)
    finally:
        if info.created_group and dist.is_initialized():
            dist.destroy_process_group()
    if result.dist.is_main:
        card = {
            "architecture": "videomae", "modality": "rgb", "arch": cfg.to_dict(), "stream": "rgb", "stage": stage,
            "feature_dim": cfg.hidden, "num_frames": cfg.num_frames, "image_size": cfg.image_size,
            "input": "uint8 clip (T, S, S, 3) -> [0, 1] -> ImageNet mean/std, (B, T, 3, S, S); feature = mean of "
                     "the final tokens",
            "teacher": teacher_desc, "masking": masking, "motion": motion.to_dict() if motion else None,
            "objects": setup.get("objects"), "augment": augment_desc, "decay_exempt": params["decay_exempt"],
            "schedule": {"stop_epoch": train_cfg.epochs, "schedule_epochs": train_cfg.schedule_length,
                         "final_lr": result.history[-1]["lr"] if result.history else None},
            "init": init_desc, "data": data_card(dataset, data_desc), "epochs": train_cfg.epochs,
            "seed": seed, "train_seed": train_cfg.seed, "train": train_cfg.to_dict(), "git_revision": git_revision(),
            **run_card(result, t0, "with_decoder"),
        }
        state = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in result.model.state_dict().items()}
        with atomic_path(out / FULL_MODEL) as tmp:
            save_file(state, str(tmp))
        write_pretrained(out, result, card, f"pretrain rgb/stage{stage}")
    return out
