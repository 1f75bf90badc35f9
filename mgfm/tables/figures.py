"""Figures of the report: training curves, the best model's confusion matrix, a 2-D embedding of test features.

matplotlib with the Agg backend only (no display); every figure is written atomically as PNG.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_path

log = logging.getLogger(__name__)
NOT_CURVES = {"epoch", "step", "seconds", "seed", "stream"}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110, bbox_inches="tight")
    _plt().close(fig)
    return path


#: one colour per stream (and for the fusion) in every figure of the report
STREAM_COLORS = {"joint": "#1f77b4", "bone": "#ff7f0e", "motion": "#2ca02c", "3-stream": "#9467bd",
                 "rgb": "#d62728"}
_SPARE_COLORS = ("#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: columns of a training log that are bookkeeping, not curves
NOT_LOSS = NOT_CURVES | {"lr", "loss", "clips_per_s", "samples_per_s", "grad_norm", "train_top1", "test_top1",
                         "val_top1"}


def stream_color(label: str) -> str:
    """The colour of a stream (a label such as "joint" or "skeleton/joint"), the same in every figure."""
    key = str(label).rsplit("/", 1)[-1]
    if key in STREAM_COLORS:
        return STREAM_COLORS[key]
    return _SPARE_COLORS[sum(map(ord, key)) % len(_SPARE_COLORS)]


def curves_figure(frames: dict[str, pd.DataFrame], panels: list[tuple[str, str]], out: str | os.PathLike,
                  title: str, log_scale: tuple[str, ...] = ("lr", "loss")) -> Path | None:
    """One panel per (column, y-axis label) present in any frame ({stream: frame with an ``epoch`` column}), one
    line per stream in that stream's colour; epochs on every x-axis. None when nothing is left to draw."""
    frames = {k: f for k, f in frames.items() if f is not None and "epoch" in f.columns and len(f)}
    panels = [(c, y) for c, y in panels if any(c in f.columns and f[c].notna().any() for f in frames.values())]
    if not frames or not panels:
        return None
    plt = _plt()
    ncol = min(3, len(panels))
    nrow = int(np.ceil(len(panels) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.1 * nrow), squeeze=False)
    for ax, (col, ylabel) in zip(axes.flat, panels):
        for label, f in frames.items():
            if col in f.columns:
                d = f[["epoch", col]].dropna()
                ax.plot(d["epoch"], d[col], label=label, color=stream_color(label),
                        marker="o" if len(d) <= 30 else None, markersize=3)
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        if col in log_scale or col.startswith("loss"):
            vals = np.concatenate([f[col].dropna().to_numpy(float) for f in frames.values() if col in f.columns])
            if len(vals) and np.all(vals > 0) and vals.max() / max(vals.min(), 1e-30) > 100:
                ax.set_yscale("log")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7, title="stream", title_fontsize=7)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    return _save(fig, Path(out))


def read_log(path: str | os.PathLike) -> pd.DataFrame | None:
    p = Path(path)
    if not p.is_file() or not p.stat().st_size:
        return None
    return pd.read_csv(p)


def pretraining_figure(logs: dict[str, str | os.PathLike], out: str | os.PathLike, title: str) -> Path | None:
    """Pretraining per stream: the total loss, each combined loss term (the per-grain parts stay in
    train_log.csv) and the learning rate."""
    frames = {k: read_log(p) for k, p in logs.items()}
    frames = {k: f for k, f in frames.items() if f is not None}
    terms = []
    for f in frames.values():
        terms += [c for c in f.columns if c not in NOT_LOSS and "_" not in c and c not in terms
                  and pd.api.types.is_numeric_dtype(f[c])]
    panels = [("loss", "total loss")] + [(t, f"loss term: {t}") for t in terms] + [("lr", "learning rate")]
    return curves_figure(frames, panels, out, title)


def confusion_figure(cm: np.ndarray, class_names: list[str], out: str | os.PathLike, title: str) -> Path:
    """Row-normalised confusion matrix (true class rows) with counts in the cells."""
    plt = _plt()
    k = len(class_names)
    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    size = max(4.0, 0.45 * k + 2)
    fig, ax = plt.subplots(figsize=(size, size))
    im = ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(k), class_names, rotation=90, fontsize=7)
    ax.set_yticks(range(k), class_names, fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if k <= 40:
        for i in range(k):
            for j in range(k):
                if cm[i, j]:
                    ax.text(j, i, str(int(cm[i, j])), ha="center", va="center", fontsize=6,
                            color="white" if norm[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, label="fraction of the true class")
    ax.set_title(title, fontsize=9)
    return _save(fig, Path(out))


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First two principal components (N, 2) and their explained-variance ratios."""
    xc = x - x.mean(axis=0, keepdims=True)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    var = s ** 2
    return xc @ vt[:2].T, var[:2] / max(var.sum(), 1e-30)


def embedding_figure(x: np.ndarray, labels: np.ndarray, class_names: list[str], out: str | os.PathLike,
                     title: str, max_points: int = 5000, seed: int = 0) -> Path:
    """PCA of (standardised) features to 2-D, points coloured by class."""
    if len(x) > max_points:
        keep = np.sort(np.random.default_rng(seed).choice(len(x), max_points, replace=False))
        x, labels = x[keep], labels[keep]
    xs = (x - x.mean(0)) / (x.std(0) + 1e-6)
    z, ratio = pca_2d(xs)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 5))
    cmap = plt.get_cmap("tab20" if len(class_names) > 10 else "tab10")
    for c in np.unique(labels):
        m = labels == c
        ax.scatter(z[m, 0], z[m, 1], s=8, color=cmap(int(c) % cmap.N), label=class_names[int(c)], alpha=0.8)
    ax.set_xlabel(f"PC1 ({100 * ratio[0]:.1f}% var.)")
    ax.set_ylabel(f"PC2 ({100 * ratio[1]:.1f}% var.)")
    ax.legend(fontsize=6, markerscale=1.5, loc="center left", bbox_to_anchor=(1, 0.5))
    ax.set_title(title, fontsize=9)
    return _save(fig, Path(out))
