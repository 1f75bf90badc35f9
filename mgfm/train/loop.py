"""The one training loop of mgfm: pretraining and fine-tuning both call ``fit`` with their own step function.

It owns what every run needs: the device (GPU if present, else CPU), DistributedDataParallel under
``torchrun``, a DistributedSampler (also in one process, so the clip order does not depend on the number
of processes), Adam/AdamW with warm-up and step or cosine decay (sized for ``schedule_epochs`` when a run stops
early, as SMILE's released recipe does), bf16 autocast on GPU only, per-epoch reseeding, atomic checkpoints every
N epochs and at the end, automatic resume, CSV curves (per epoch and every few steps), TensorBoard when installed,
and progress lines with rate and ETA. Each batch of indices carries its epoch (``IndexBatch``), so a Dataset can
draw per-epoch augmentations from (seed, item, epoch) in any loader worker.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, Sampler

from mgfm.common.atomic import atomic_path
from mgfm.common.logs import Progress
from mgfm.common.seeding import derive_seed
from mgfm.config.sections import section_values
from mgfm.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mgfm.train.distributed import DistInfo, init_distributed, mean_across
from mgfm.train.schedule import learning_rate

log = logging.getLogger(__name__)
EPOCH_LOG = "train_log.csv"
STEP_LOG = "train_steps.csv"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings: a resolved ``train`` block (``pretrain.train`` or ``eval.finetune.train``, whose
    defaults differ and live in their schemas), so the fields have no defaults of their own, except
    ``schedule_epochs``, which only blocks that can stop early carry (0: the schedule spans ``epochs``)."""

    epochs: int
    batch_size: int                       # global batch: split evenly over the processes
    optimizer: str                        # adam | adamw | sgd
    lr: float
    weight_decay: float
    betas: tuple[float, float]
    eps: float                            # Adam(W) only
    momentum: float                       # SGD only
    schedule: str                         # step | cosine
    warmup_epochs: float
    milestones: tuple[int, ...]
    gamma: float
    min_lr: float
    amp: bool                             # bf16 autocast; used on GPU only
    grad_clip: float                      # max gradient norm, 0 = off
    checkpoint_every: int                 # epochs
    log_every_steps: int
    num_workers: int
    seed: int
    schedule_epochs: int = 0              # epochs the warm-up + decay is sized for; training stops after `epochs`
    #: where the block lives in the config ("pretrain.train", "rgb_pretrain.stage1", ...): messages name its keys
    key: str = field(default="train", compare=False)

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"train: epochs must be >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if self.schedule_epochs and self.schedule_epochs < self.epochs:
            raise ValueError(f"train.schedule_epochs {self.schedule_epochs} is shorter than train.epochs "
                             f"{self.epochs}; 0 sizes the schedule for epochs")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"train.optimizer must be 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"train.schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.checkpoint_every < 1:
            raise ValueError(f"train.checkpoint_every must be >= 1, got {self.checkpoint_every}")

    @classmethod
    def from_section(cls, p: dict, seed: int, key: str = "train") -> TrainConfig:
        """From a resolved train block (mgfm.config fills its defaults); a missing or unknown key is an error
        (``schedule_epochs`` may be absent). ``key``: the block's place in the config, named by messages about its
        values."""
        values = section_values(cls, p, key, supplied=("seed", "key"))
        for name in ("betas", "milestones"):
            if name in values:
                values[name] = tuple(values[name])
        return cls(**values, seed=seed, key=key)

    def to_dict(self) -> dict:
        """The block's values (what shapes training; not where it lives in the config)."""
        out = asdict(self)
        out.pop("key")
        return out

    @property
    def schedule_length(self) -> int:
        """Epochs the learning-rate schedule spans."""
        return self.schedule_epochs or self.epochs


def batch_for_clips(cfg: TrainConfig, n_clips: int, world: int = 1, desc: str = "training",
                    warn: bool = True) -> TrainConfig:
    """``cfg`` with a batch no larger than the clips: a batch size above ``n_clips`` is reduced to the clip count
    (rounded down to a multiple of the ``world`` processes), with one warning naming the key. Every training
    stage goes through this, so every stage treats a small dataset alike."""
    if cfg.batch_size <= n_clips:
        return cfg
    used = n_clips - n_clips % world
    if used < max(2, world):
        raise ValueError(f"{desc}: {n_clips} training clip(s), fewer than the {max(2, world)} one batch needs "
                         f"(config key {cfg.key}.batch_size is {cfg.batch_size}); this stage needs more data")
    if warn:
        log.warning("%s.batch_size %d is more than the %d training clips of %s: training with batch size %d (the "
                    "clip count)", cfg.key, cfg.batch_size, n_clips, desc, used)
    return replace(cfg, batch_size=used)


class IndexBatch(list):
    """One batch of dataset indices and the epoch it belongs to (``.epoch``; None outside training), so a Dataset
    indexed by batches can seed per-epoch augmentations from (seed, item, epoch): the same in any loader worker,
    for any number of processes, and after a resume."""

    def __init__(self, indices, epoch: int | None = None) -> None:
        super().__init__(indices)
        self.epoch = epoch


class EpochBatchSampler(BatchSampler):
    """``BatchSampler`` over a DistributedSampler whose batches are ``IndexBatch``es of the sampler's epoch."""

    def __init__(self, sampler: Sampler, batch_size: int) -> None:
        super().__init__(sampler, batch_size, drop_last=True)

    def __iter__(self):
        epoch = getattr(self.sampler, "epoch", None)
        for batch in super().__iter__():
            yield IndexBatch(batch, epoch)


@dataclass
class StepContext:
    """What a step function may use besides the batch."""

    epoch: int
    step: int                     # within the epoch
    global_step: int
    dist: DistInfo
    global_batch: int
    generator: torch.Generator    # CPU generator seeded from (seed, epoch, step): same draws in every process


StepFn = Callable[[torch.nn.Module, dict, StepContext], tuple[torch.Tensor, dict[str, torch.Tensor]]]


@dataclass
class FitResult:
    model: torch.nn.Module        # unwrapped (no DDP), on its training device
    dist: DistInfo
    epochs_run: int
    resumed_from: int
    history: list[dict] = field(default_factory=list)


class _CsvLog:
    """A CSV of rows on the main process, held in memory and saved whole through a temporary name (``save``), so
    the file is always complete: a full disk or a kill never leaves an empty or half-written log. On resume,
    rows beyond the checkpoint are dropped first."""

    def __init__(self, path: Path, keep_until_epoch: int | None) -> None:
        self.path, self.fields, self.rows = path, None, []
        if keep_until_epoch is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            with path.open() as f:
                self.rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= keep_until_epoch]
            if self.rows:
                self.fields = list(self.rows[0])
            self.save()

    def write(self, row: dict, save: bool = True) -> None:
        """Add a row; ``save=False`` keeps it in memory until the next ``save`` (rows logged every few steps)."""
        if self.fields is None:
            self.fields = list(row)
        self.rows.append(row)
        if save:
            self.save()

    def save(self) -> None:
        if not self.rows:
            self.path.unlink(missing_ok=True)
            return
        with atomic_path(self.path) as tmp, tmp.open("w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Over ``model.optimizer_groups(weight_decay)`` when the model defines it (param groups that may carry an
    ``lr_scale``, e.g. layer-wise lr decay), else over all parameters."""
    groups = model.optimizer_groups(cfg.weight_decay) if hasattr(model, "optimizer_groups") else model.parameters()
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    # on a GPU one fused kernel updates every parameter instead of a chain of launches per tensor
    fused = {"fused": True} if next(model.parameters()).is_cuda else {}
    return cls(groups, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay, **fused)


def fit(model: torch.nn.Module, dataset: Dataset, step_fn: StepFn, cfg: TrainConfig, out_dir: str | os.PathLike,
        fingerprint: str, desc: str = "train", device: str | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``model`` on ``dataset`` (``dataset[list_of_indices]`` returns a batch dict) with ``step_fn``.

    Resumes from ``out_dir/checkpoints/last.pt`` when it carries the same ``fingerprint`` and has not finished
    all epochs (a finished run's checkpoint is set aside, so a rerun retrains). Every process
    must call ``fit``; only the main process writes files.
    """
    out_dir = Path(out_dir)
    info = init_distributed(device)
    try:
        return _fit(model, dataset, step_fn, cfg, out_dir, fingerprint, desc, info, on_epoch_end)
    finally:
        if info.created_group and dist.is_initialized():
            dist.destroy_process_group()


@dataclass
class _Run:
    """What one call of ``fit`` works with, so each phase of an epoch is its own small function."""

    model: torch.nn.Module                # unwrapped
    train_model: torch.nn.Module          # DDP-wrapped when several processes
    optimizer: torch.optim.Optimizer
    sampler: DistributedSampler
    loader: DataLoader
    step_fn: StepFn
    cfg: TrainConfig
    info: DistInfo
    out_dir: Path
    fingerprint: str
    desc: str
    steps_per_epoch: int
    autocast: Callable
    global_step: int
    epoch_log: _CsvLog | None = None
    step_log: _CsvLog | None = None
    board: object | None = None
    bar: Progress | None = None
    lr: float = 0.0


def _resume(model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig, out_dir: Path,
            fingerprint: str, desc: str, info: DistInfo) -> tuple[dict | None, int]:
    """Load ``last.pt`` when it carries ``fingerprint``: (checkpoint state or None, epochs already done)."""
    start_epoch = 0
    state = load_checkpoint(out_dir, fingerprint, cfg.epochs)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        if info.is_main:
            log.info("%s: resuming after epoch %d of %d from %s", desc, start_epoch, cfg.epochs,
                     out_dir / "checkpoints")
    if info.world > 1:
        dist.barrier()  # every process has read the checkpoint before anyone may overwrite it
    return state, start_epoch


def _loader(dataset: Dataset, cfg: TrainConfig, info: DistInfo, local_batch: int
            ) -> tuple[DistributedSampler, DataLoader]:
    """A DistributedSampler (also in one process, so the clip order does not depend on the process count)."""
    sampler = DistributedSampler(dataset, num_replicas=info.world, rank=info.rank, shuffle=True,
                                 seed=derive_seed(cfg.seed, "sampler") % 2**31, drop_last=True)
    loader = DataLoader(dataset, sampler=EpochBatchSampler(sampler, local_batch), batch_size=None,
                        num_workers=cfg.num_workers, pin_memory=info.device.type == "cuda",
                        persistent_workers=cfg.num_workers > 0)
    return sampler, loader


def _fit(model, dataset, step_fn, cfg, out_dir, fingerprint, desc, info: DistInfo, on_epoch_end) -> FitResult:
    cfg = batch_for_clips(cfg, len(dataset), info.world, desc, warn=info.is_main)   # said once, by the main process
    if cfg.batch_size % info.world:
        raise ValueError(f"{cfg.key}.batch_size {cfg.batch_size} is not divisible by the {info.world} processes")
    local_batch = cfg.batch_size // info.world
    steps_per_epoch = len(dataset) // cfg.batch_size
    out_dir.mkdir(parents=True, exist_ok=True)

    model.to(info.device)
    optimizer = _optimizer(model, cfg)
    state, start_epoch = _resume(model, optimizer, cfg, out_dir, fingerprint, desc, info)
    train_model = model
    if info.world > 1:
        ids = [info.local_rank] if info.device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids)

    sampler, loader = _loader(dataset, cfg, info, local_batch)
    use_amp = cfg.amp and info.device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext
    run = _Run(model, train_model, optimizer, sampler, loader, step_fn, cfg, info, out_dir, fingerprint, desc,
               steps_per_epoch, autocast, global_step=start_epoch * steps_per_epoch)
    if info.is_main:
        run.epoch_log = _CsvLog(out_dir / EPOCH_LOG, start_epoch if state else None)
        run.step_log = _CsvLog(out_dir / STEP_LOG, start_epoch if state else None)
        run.board = _tensorboard(out_dir)
        run.bar = Progress((cfg.epochs - start_epoch) * steps_per_epoch, desc, unit="step")
    history: list[dict] = []
    if state is not None:
        set_rng_state(state["rng"])

    for epoch in range(start_epoch, cfg.epochs):
        t_epoch = time.perf_counter()
        sums = _train_epoch(run, epoch)
        row = _end_epoch(run, epoch, sums, time.perf_counter() - t_epoch)
        history.append(row)
        done = epoch + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
            _checkpoint(run, done)
        if on_epoch_end is not None:
            on_epoch_end(done, row)
    if run.bar is not None:
        run.bar.close()
    if run.board is not None:
        run.board.close()
    return FitResult(model=model, dist=info, epochs_run=cfg.epochs - start_epoch, resumed_from=start_epoch,
                     history=history)


def _train_epoch(run: _Run, epoch: int) -> dict[str, float]:
    """One pass over the loader: a step per batch, step-level CSV rows; returns the summed loss terms."""
    cfg, info = run.cfg, run.info
    torch.manual_seed(derive_seed(cfg.seed, "torch", epoch, info.rank))  # dropout / DropPath of this epoch
    run.sampler.set_epoch(epoch)
    run.train_model.train()
    sums: dict[str, float] = {}
    t_window = time.perf_counter()
    window = 0
    for step, batch in enumerate(run.loader):
        values = _train_step(run, epoch, step, batch)
        for k, v in values.items():
            sums[k] = sums.get(k, 0.0) + v
        run.global_step += 1
        window += 1
        if run.bar is not None:
            run.bar.update()
            if run.global_step % cfg.log_every_steps == 0:
                now = time.perf_counter()
                run.step_log.write({"epoch": epoch + 1, "step": run.global_step, "lr": run.lr, **values,
                                    "clips_per_s": window * cfg.batch_size / max(now - t_window, 1e-9)},
                                   save=False)     # saved once per epoch (_end_epoch)
                t_window, window = now, 0
    return sums


def _train_step(run: _Run, epoch: int, step: int, batch: dict) -> dict[str, float]:
    """Learning rate, forward under autocast, finite-loss check, backward, clipping, optimiser step."""
    cfg, info = run.cfg, run.info
    run.lr = lr = learning_rate(run.global_step, run.steps_per_epoch, cfg.schedule_length, cfg.lr, cfg.schedule,
                                cfg.warmup_epochs, cfg.milestones, cfg.gamma, cfg.min_lr)
    for group in run.optimizer.param_groups:
        group["lr"] = lr * group.get("lr_scale", 1.0)
    ctx = StepContext(epoch, step, run.global_step, info, cfg.batch_size,
                      torch.Generator().manual_seed(derive_seed(cfg.seed, "step", epoch, step)))
    batch = {k: v.to(info.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
    with run.autocast():
        loss, terms = run.step_fn(run.train_model, batch, ctx)
    if not torch.isfinite(loss):
        raise RuntimeError(f"{run.desc}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                           "lower train.lr or check the dataset for non-finite values")
    run.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if cfg.grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), cfg.grad_clip)
    run.optimizer.step()
    return {"loss": loss.item(), **{k: float(v) for k, v in terms.items()}}


def _end_epoch(run: _Run, epoch: int, sums: dict[str, float], seconds: float) -> dict:
    """The epoch's row (loss terms averaged over steps and processes) into the CSV, TensorBoard and the log."""
    cfg, info = run.cfg, run.info
    means = mean_across({k: v / run.steps_per_epoch for k, v in sums.items()}, info.device)
    row = {"epoch": epoch + 1, "step": run.global_step, "lr": run.lr, **means,
           "clips_per_s": run.steps_per_epoch * cfg.batch_size / max(seconds, 1e-9), "seconds": seconds}
    if info.is_main:
        run.step_log.save()
        run.epoch_log.write(row)
        if run.board is not None:
            for k, v in row.items():
                if k not in ("epoch", "step"):
                    run.board.add_scalar(k, v, epoch + 1)
        log.info("%s: epoch %d/%d loss %.4f lr %.2e %.1f clips/s", run.desc, epoch + 1, cfg.epochs, row["loss"],
                 run.lr, row["clips_per_s"])
    return row


def _checkpoint(run: _Run, done: int) -> None:
    """Atomic ``last.pt`` from the main process; the others wait so no one runs ahead of a checkpoint."""
    if run.info.is_main:
        save_checkpoint(run.out_dir, {"epoch": done, "global_step": run.global_step, "model": run.model.state_dict(),
                                      "optimizer": run.optimizer.state_dict(), "fingerprint": run.fingerprint,
                                      "rng": rng_state()})
    if run.info.world > 1:
        dist.barrier()
