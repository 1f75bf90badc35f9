"""The one training loop of mgfm: pretraining and fine-tuning both call ``fit`` with their own step function.

It owns what every run needs: the device (GPU if present, else CPU), DistributedDataParallel under
``torchrun``, a DistributedSampler (also in one process, so the clip order does not depend on the number
of processes), Adam/AdamW with warm-up and step or cosine decay, bf16 autocast on GPU only, per-epoch
reseeding, atomic checkpoints every N epochs and at the end, automatic resume, CSV curves (per epoch and
every few steps), TensorBoard when installed, and progress lines with rate and ETA.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler

from mgfm.common.logs import Progress
from mgfm.common.seeding import derive_seed
from mgfm.train.checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from mgfm.train.distributed import DistInfo, init_distributed, mean_across
from mgfm.train.schedule import learning_rate

log = logging.getLogger(__name__)
EPOCH_LOG = "train_log.csv"
STEP_LOG = "train_steps.csv"


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings: a resolved ``train`` block (``pretrain.train`` or ``eval.finetune.train``, whose
    defaults differ and live in their schemas), so the fields have no defaults of their own."""

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

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 2:
            raise ValueError(f"train: epochs must be >= 1 and batch_size >= 2, got {self.epochs}, {self.batch_size}")
        if self.optimizer not in ("adam", "adamw", "sgd"):
            raise ValueError(f"train.optimizer must be 'adam', 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.schedule not in ("step", "cosine"):
            raise ValueError(f"train.schedule must be 'step' or 'cosine', got {self.schedule!r}")
        if self.checkpoint_every < 1:
            raise ValueError(f"train.checkpoint_every must be >= 1, got {self.checkpoint_every}")

    @classmethod
    def from_params(cls, p: dict, seed: int) -> TrainConfig:
        """From a resolved train block (mgfm.config fills its defaults); a missing or unknown key is an error."""
        p = dict(p)
        for key in ("betas", "milestones"):
            if key in p:
                p[key] = tuple(p[key])
        expected = set(cls.__dataclass_fields__) - {"seed"}
        unknown, missing = sorted(set(p) - expected), sorted(expected - set(p))
        if unknown or missing:
            raise ValueError(f"train: unknown keys {unknown}, missing keys {missing} (resolve the section with "
                             "mgfm.config first)")
        return cls(**p, seed=seed)

    def to_dict(self) -> dict:
        return asdict(self)


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
    """Append-only CSV on the main process; on resume, rows beyond the checkpoint are dropped first."""

    def __init__(self, path: Path, keep_until_epoch: int | None) -> None:
        self.path, self.fields = path, None
        if keep_until_epoch is None:
            path.unlink(missing_ok=True)
        elif path.exists():
            with path.open() as f:
                rows = [r for r in csv.DictReader(f) if int(r["epoch"]) <= keep_until_epoch]
            if rows:
                self.fields = list(rows[0])
            with path.open("w", newline="") as f:
                if rows:
                    w = csv.DictWriter(f, fieldnames=self.fields)
                    w.writeheader()
                    w.writerows(rows)

    def write(self, row: dict) -> None:
        new = self.fields is None
        if new:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            w = csv.DictWriter(f, fieldnames=self.fields, extrasaction="ignore")
            if new:
                w.writeheader()
            w.writerow(row)


def _tensorboard(out_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except Exception:  # tensorboard is optional
        return None
    return SummaryWriter(str(out_dir / "tensorboard"))


def _optimizer(model: torch.nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(model.parameters(), lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay)


def fit(model: torch.nn.Module, dataset: Dataset, step_fn: StepFn, cfg: TrainConfig, out_dir: str | os.PathLike,
        fingerprint: str, desc: str = "train", device: str | None = None,
        on_epoch_end: Callable[[int, dict], None] | None = None) -> FitResult:
    """Train ``model`` on ``dataset`` (``dataset[list_of_indices]`` returns a batch dict) with ``step_fn``.

    Resumes from ``out_dir/checkpoints/last.pt`` when it carries the same ``fingerprint``. Every process
    must call ``fit``; only the main process writes files.
    """
    out_dir = Path(out_dir)
    info = init_distributed(device)
    try:
        return _fit(model, dataset, step_fn, cfg, out_dir, fingerprint, desc, info, on_epoch_end)
    finally:
        if info.created_group and dist.is_initialized():
            dist.destroy_process_group()


def _fit(model, dataset, step_fn, cfg, out_dir, fingerprint, desc, info: DistInfo, on_epoch_end) -> FitResult:
    if cfg.batch_size % info.world:
        raise ValueError(f"train.batch_size {cfg.batch_size} is not divisible by the {info.world} processes")
    local_batch = cfg.batch_size // info.world
    steps_per_epoch = len(dataset) // cfg.batch_size
    if steps_per_epoch < 1:
        raise ValueError(f"train.batch_size {cfg.batch_size} exceeds the {len(dataset)} training clips")
    out_dir.mkdir(parents=True, exist_ok=True)

    model.to(info.device)
    optimizer = _optimizer(model, cfg)
    start_epoch = 0
    state = load_checkpoint(out_dir, fingerprint)
    if state is not None:
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        start_epoch = int(state["epoch"])
        if info.is_main:
            log.info("%s: resuming after epoch %d of %d from %s", desc, start_epoch, cfg.epochs,
                     out_dir / "checkpoints")
    if info.world > 1:
        dist.barrier()  # every process has read the checkpoint before anyone may overwrite it
    train_model = model
    if info.world > 1:
        ids = [info.local_rank] if info.device.type == "cuda" else None
        train_model = DistributedDataParallel(model, device_ids=ids)

    sampler = DistributedSampler(dataset, num_replicas=info.world, rank=info.rank, shuffle=True,
                                 seed=derive_seed(cfg.seed, "sampler") % 2**31, drop_last=True)
    loader = DataLoader(dataset, sampler=BatchSampler(sampler, local_batch, drop_last=True), batch_size=None,
                        num_workers=cfg.num_workers, pin_memory=info.device.type == "cuda",
                        persistent_workers=cfg.num_workers > 0)
    use_amp = cfg.amp and info.device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if use_amp else nullcontext

    epoch_log = _CsvLog(out_dir / EPOCH_LOG, start_epoch if state else None) if info.is_main else None
    step_log = _CsvLog(out_dir / STEP_LOG, start_epoch if state else None) if info.is_main else None
    board = _tensorboard(out_dir) if info.is_main else None
    bar = Progress((cfg.epochs - start_epoch) * steps_per_epoch, desc, unit="step") if info.is_main else None
    history: list[dict] = []
    global_step = start_epoch * steps_per_epoch
    if state is not None:
        set_rng_state(state["rng"])

    for epoch in range(start_epoch, cfg.epochs):
        torch.manual_seed(derive_seed(cfg.seed, "torch", epoch, info.rank))  # dropout / DropPath of this epoch
        sampler.set_epoch(epoch)
        train_model.train()
        sums: dict[str, float] = {}
        t_epoch = t_window = time.perf_counter()
        window = 0
        for step, batch in enumerate(loader):
            lr = learning_rate(global_step, steps_per_epoch, cfg.epochs, cfg.lr, cfg.schedule, cfg.warmup_epochs,
                               cfg.milestones, cfg.gamma, cfg.min_lr)
            for group in optimizer.param_groups:
                group["lr"] = lr
            ctx = StepContext(epoch, step, global_step, info, cfg.batch_size,
                              torch.Generator().manual_seed(derive_seed(cfg.seed, "step", epoch, step)))
            batch = {k: v.to(info.device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}
            with autocast():
                loss, terms = step_fn(train_model, batch, ctx)
            if not torch.isfinite(loss):
                raise RuntimeError(f"{desc}: loss is {loss.item()} at epoch {epoch + 1}, step {step + 1}; "
                                   "lower train.lr or check the dataset for non-finite values")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            values = {"loss": loss.item(), **{k: float(v) for k, v in terms.items()}}
            for k, v in values.items():
                sums[k] = sums.get(k, 0.0) + v
            global_step += 1
            window += 1
            if bar is not None:
                bar.update()
                if global_step % cfg.log_every_steps == 0:
                    now = time.perf_counter()
                    step_log.write({"epoch": epoch + 1, "step": global_step, "lr": lr, **values,
                                    "clips_per_s": window * cfg.batch_size / max(now - t_window, 1e-9)})
                    t_window, window = now, 0
        seconds = time.perf_counter() - t_epoch
        means = mean_across({k: v / steps_per_epoch for k, v in sums.items()}, info.device)
        row = {"epoch": epoch + 1, "step": global_step, "lr": lr, **means,
               "clips_per_s": steps_per_epoch * cfg.batch_size / max(seconds, 1e-9), "seconds": seconds}
        history.append(row)
        if info.is_main:
            epoch_log.write(row)
            if board is not None:
                for k, v in row.items():
                    if k not in ("epoch", "step"):
                        board.add_scalar(k, v, epoch + 1)
            log.info("%s: epoch %d/%d loss %.4f lr %.2e %.1f clips/s", desc, epoch + 1, cfg.epochs, row["loss"], lr,
                     row["clips_per_s"])
        done = epoch + 1
        if done % cfg.checkpoint_every == 0 or done == cfg.epochs:
            if info.is_main:
                save_checkpoint(out_dir, {"epoch": done, "global_step": global_step, "model": model.state_dict(),
                                          "optimizer": optimizer.state_dict(), "fingerprint": fingerprint,
                                          "rng": rng_state()})
            if info.world > 1:
                dist.barrier()
        if on_epoch_end is not None:
            on_epoch_end(done, row)
    if bar is not None:
        bar.close()
    if board is not None:
        board.close()
    return FitResult(model=model, dist=info, epochs_run=cfg.epochs - start_epoch, resumed_from=start_epoch,
                     history=history)
