"""Linear probe (paper Table VIII): a linear classifier on frozen features, the public reference's recipe.

Recipe (all config, ``eval.linear_probe``): weights N(0, init_std), zero bias, SGD momentum 0.9, weight decay
0, batch 512, lr 0.006, 160 epochs, lr x gamma at the milestones [120, 140]; test (and validation) scores
every ``eval_every`` epochs and at the last. Features are read from the cache, so the encoder never runs here
(``mgfm.eval.frozen`` re-encodes a few clips to check the cache against the encoder, weights untouched).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from mgfm.common.atomic import atomic_path
from mgfm.common.logs import Progress
from mgfm.common.seeding import derive_seed
from mgfm.config.sections import section_values
from mgfm.config.steps import resolve_step
from mgfm.eval.splits import Split, check_aligned, check_disjoint, load_labeled, num_classes_of, validation_rows
from mgfm.eval.ensemble import fuse
from mgfm.eval.metrics import topk_accuracy
from mgfm.common.revision import git_revision
from mgfm.eval.results import fold_seeds, write_json, write_npz
from mgfm.eval.selection import REPORT_LABELS, summarize_epochs

log = logging.getLogger(__name__)
FEATURE_NORMS = ("none", "l2", "standardize")


@dataclass(frozen=True)
class ProbeConfig:
    """``eval.linear_probe``, resolved by mgfm.config (defaults live in the eval schema only)."""

    epochs: int
    batch_size: int
    lr: float
    momentum: float
    weight_decay: float
    milestones: tuple[int, ...]
    gamma: float
    eval_every: int
    init_std: float
    feature_norm: str

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("config key eval.linear_probe: epochs, batch_size and eval_every must be >= 1")
        if self.feature_norm not in FEATURE_NORMS:
            raise ValueError(f"config key eval.linear_probe.feature_norm must be one of {FEATURE_NORMS}, "
                             f"got {self.feature_norm!r}")

    @classmethod
    def from_section(cls, p: dict) -> ProbeConfig:
        """From the resolved ``eval.linear_probe`` block; a missing or unknown key is an error naming it."""
        p = section_values(cls, p, "eval.linear_probe")
        p["milestones"] = tuple(int(m) for m in p["milestones"])
        return cls(**p)

    def to_dict(self) -> dict:
        return asdict(self)


def normalizer(train_x: np.ndarray, how: str):
    """A function applying ``how`` with statistics of the training features only."""
    if how == "none":
        return lambda x: x
    if how == "l2":
        return lambda x: x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    mean = train_x.mean(axis=0, keepdims=True)
    std = train_x.std(axis=0, keepdims=True) + 1e-6
    return lambda x: (x - mean) / std


@dataclass
class ProbeRun:
    epochs: list[int]                 # evaluated epochs
    scores: dict[str, np.ndarray]     # eval set name -> logits (E, N, K) at those epochs
    history: list[dict]               # one row per epoch: epoch, lr, loss, train_top1


def train_probe(train: Split, evals: dict[str, Split], num_classes: int, cfg: ProbeConfig, seed: int,
                desc: str = "linear probe") -> ProbeRun:
    """Fit the linear classifier on ``train`` and score every set of ``evals`` at the evaluation epochs."""
    norm = normalizer(train.x, cfg.feature_norm)
    x = torch.from_numpy(np.array(norm(train.x), dtype=np.float32))
    y = torch.from_numpy(train.y)
    eval_x = {k: torch.from_numpy(np.array(norm(s.x), dtype=np.float32)) for k, s in evals.items()}
    torch.manual_seed(derive_seed(seed, "linear_probe", "init"))
    head = nn.Linear(x.shape[1], num_classes)
    nn.init.normal_(head.weight, 0.0, cfg.init_std)
    nn.init.zeros_(head.bias)
    opt = torch.optim.SGD(head.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(cfg.milestones), gamma=cfg.gamma)
    gen = torch.Generator().manual_seed(derive_seed(seed, "linear_probe", "shuffle") % 2**63)
    loss_fn = nn.CrossEntropyLoss()
    n = len(y)
    epochs, scores, history = [], {k: [] for k in evals}, []
    bar = Progress(cfg.epochs, desc, unit="epoch")
    for epoch in range(1, cfg.epochs + 1):
        head.train()
        order = torch.randperm(n, generator=gen)
        total, correct = 0.0, 0
        lr = opt.param_groups[0]["lr"]
        for start in range(0, n, cfg.batch_size):
            idx = order[start:start + cfg.batch_size]
            logits = head(x[idx])
            loss = loss_fn(logits, y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == y[idx]).sum())
        sched.step()
        if not np.isfinite(total):
            raise RuntimeError(f"{desc}: loss is not finite at epoch {epoch}; lower eval.linear_probe.lr or "
                               "set eval.linear_probe.feature_norm")
        history.append({"epoch": epoch, "lr": lr, "loss": total / n, "train_top1": 100.0 * correct / n})
        if epoch % cfg.eval_every == 0 or epoch == cfg.epochs:
            head.eval()
            with torch.inference_mode():
                for k, ex in eval_x.items():
                    scores[k].append(head(ex).numpy())
            epochs.append(epoch)
        bar.update()
    bar.close()
    return ProbeRun(epochs, {k: np.stack(v) if v else np.zeros((len(epochs), 0, num_classes), np.float32)
                             for k, v in scores.items()}, history)


# ---- the protocol: every stream, the fusion, every seed ------------------------------------------------

FUSION_NAME = "3-stream"
FUSION_NOTE = ("score fusion: equal-weight sum of the per-stream probes' softmax probabilities at each "
               "evaluated epoch (the reports below pick epochs of the fused scores)")


def fusion_name(streams: list[str]) -> str:
    return FUSION_NAME if len(streams) == 3 else f"{len(streams)}-stream"


def _verify_features(verify: dict[str, tuple[str, str]] | None, features: dict[str, tuple[str, str]],
                     n_verify: int) -> dict[str, float]:
    """Re-encode a few test clips per stream and compare with the cached features ({stream: max rel. diff})."""
    verified = {}
    if verify and n_verify > 0:
        from mgfm.eval.frozen import verify_cached_features

        for s in features:
            if s in verify:
                verified[s] = verify_cached_features(verify[s][0], verify[s][1], features[s][1], n_verify)
    return verified


def _probe_seed(trains: dict[str, Split], tests: dict[str, Split], is_val: np.ndarray, k: int, cfg: ProbeConfig,
                run_seed: int, modality: str, seed: int) -> dict[str, ProbeRun]:
    """One probe per stream, fitted on the training rows outside the validation subjects."""
    runs = {}
    for s in trains:
        fit_rows, val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        runs[s] = train_probe(trains[s].take(fit_rows), {"test": tests[s], "val": trains[s].take(val_rows)}, k,
                              cfg, derive_seed(run_seed, s), desc=f"linear probe {modality}/{s} seed {seed}")
    return runs


def _seed_summary(runs: dict[str, ProbeRun], y_test: np.ndarray, y_val: np.ndarray, fname: str) -> dict:
    """The reports of every stream and, with several streams, of their score fusion."""
    streams = list(runs)
    epochs = runs[streams[0]].epochs
    summary = {}
    for s in streams:
        summary[s] = summarize_epochs(epochs, runs[s].scores["test"], y_test, runs[s].scores["val"], y_val)
    if len(streams) > 1:
        fused_test = fuse({s: runs[s].scores["test"] for s in streams})
        fused_val = fuse({s: runs[s].scores["val"] for s in streams})
        summary[fname] = summarize_epochs(epochs, fused_test, y_test, fused_val, y_val)
    return summary


def _curve_rows(runs: dict[str, ProbeRun], seed: int, y_test: np.ndarray, y_val: np.ndarray) -> list[dict]:
    """probe_log.csv rows: per stream and evaluated epoch, the training row plus test (and val) Top-1."""
    rows = []
    for s, run in runs.items():
        hist = {h["epoch"]: h for h in run.history}
        for i, e in enumerate(run.epochs):
            row = {"seed": seed, "stream": s, **hist[e],
                   "test_top1": topk_accuracy(run.scores["test"][i], y_test, (1,))[1]}
            if len(y_val):
                row["val_top1"] = topk_accuracy(run.scores["val"][i], y_val, (1,))[1]
            rows.append(row)
    return rows


def _last_scores(runs: dict[str, ProbeRun], fname: str) -> dict[str, np.ndarray]:
    """Last-epoch test logits per stream, and the fusion's log-probabilities, for the report."""
    last = {s: run.scores["test"][-1] for s, run in runs.items()}
    if len(runs) > 1:
        last[fname] = np.log(fuse(last) + 1e-12)
    return last


def run_linear_probe(features: dict[str, tuple[str, str]], taxonomy: str, params: dict, out_dir: str,
                     modality: str = "skeleton", global_seed: int = 0,
                     verify: dict[str, tuple[str, str]] | None = None) -> dict:
    """Probe every stream of ``features`` ({stream: (train table, test table)}) for every seed in
    ``params['seeds']``; fuse the streams; write ``metrics.json``, ``scores.npz`` and ``probe_log.csv``.

    ``verify`` ({stream: (model dir, packed test dataset)}) first re-encodes ``params['verify_clips']`` test
    clips with the frozen encoder (weights asserted unchanged) and checks them against the cached features.
    """
    out = Path(out_dir)
    params = resolve_step("eval_linear_probe", params)
    cfg = ProbeConfig.from_section(params["linear_probe"])
    seeds = [int(s) for s in params["seeds"]]
    val_fraction = float(params["validation"]["fraction"])
    k = num_classes_of(taxonomy)
    streams = list(features)
    trains = {s: load_labeled(features[s][0], k, s) for s in streams}
    tests = {s: load_labeled(features[s][1], k, s) for s in streams}
    check_aligned(trains, f"{modality} training features")
    check_aligned(tests, f"{modality} test features")
    first = streams[0]
    check_disjoint(trains[first].meta, tests[first].meta)
    y_test = tests[first].y
    fname = fusion_name(streams)
    verified = _verify_features(verify, features, int(params["verify_clips"]))
    is_val0 = validation_rows(trains[first].meta, val_fraction, derive_seed(global_seed, "eval", seeds[0]))
    n_fit = int((~is_val0).sum())
    if cfg.batch_size > n_fit:     # each epoch is then one batch of all the clips
        log.warning("eval.linear_probe.batch_size %d is more than the %d training clips of linear probe %s: "
                    "training with batch size %d (the clip count)", cfg.batch_size, n_fit, modality, n_fit)

    per_seed, log_rows, last_scores = [], [], {}
    for seed in seeds:
        run_seed = derive_seed(global_seed, "eval", "linear_probe", modality, seed)
        is_val = validation_rows(trains[first].meta, val_fraction, derive_seed(global_seed, "eval", seed))
        y_val = trains[first].y[is_val]
        runs = _probe_seed(trains, tests, is_val, k, cfg, run_seed, modality, seed)
        summary = _seed_summary(runs, y_test, y_val, fname)
        per_seed.append(summary)
        log_rows += _curve_rows(runs, seed, y_test, y_val)
        if seed == seeds[0]:
            last_scores = _last_scores(runs, fname)
        log.info("linear probe %s seed %d: %s", modality, seed,
                 ", ".join(f"{n} last top1 {v['last']['top1']:.2f}" for n, v in summary.items()))

    counts = np.bincount(y_test, minlength=k)
    result = {
        "protocol": "linear_probe", "modality": modality, "streams": streams, "fusion": fname if len(streams) > 1
        else None, "fusion_method": FUSION_NOTE, "num_classes": k, "seeds": seeds, "n_seeds": len(seeds),
        "n_train": int((~is_val0).sum()), "n_val": int(is_val0.sum()), "verified_max_rel_diff": verified,
        "n_test": int(len(y_test)), "chance_top1": 100.0 / k, "majority_top1": float(100.0 * counts.max() / counts.sum()),
        "config": cfg.to_dict(), "validation_fraction": val_fraction, "report_labels": REPORT_LABELS,
        "results": fold_seeds(per_seed), "per_seed": per_seed,
        "inputs": {s: list(map(str, features[s])) for s in streams}, "git_revision": git_revision(),
    }
    out.mkdir(parents=True, exist_ok=True)
    with atomic_path(out / "probe_log.csv") as tmp:
        pd.DataFrame(log_rows).to_csv(tmp, index=False)
    write_npz(out / "scores.npz", y_test=y_test, clip_id=tests[first].meta["clip_id"].to_numpy().astype(str),
              names=np.array(list(last_scores)), **{f"logits_{n}": v for n, v in last_scores.items()})
    write_json(out / "metrics.json", result)
    return result
