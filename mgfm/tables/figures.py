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


def training_curves(logs: dict[str, str | os.PathLike], out: str | os.PathLike, title: str) -> Path | None:
    """One panel per numeric column present in any of the CSV logs ({label: path}), one line per log."""
    frames = {k: pd.read_csv(p) for k, p in logs.items() if Path(p).is_file() and Path(p).stat().st_size}
    frames = {k: f for k, f in frames.items() if "epoch" in f.columns and len(f)}
    if not frames:
        return None
    cols = []
    for f in frames.values():
        cols += [c for c in f.columns if c not in NOT_CURVES and c not in cols and pd.api.types.is_numeric_dtype(f[c])]
    plt = _plt()
    ncol = min(3, len(cols))
    nrow = int(np.ceil(len(cols) / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.0 * nrow), squeeze=False)
    for ax, col in zip(axes.flat, cols):
        for label, f in frames.items():
            if col in f.columns:
                ax.plot(f["epoch"], f[col], label=label)
        ax.set_title(col, fontsize=9)
        ax.set_xlabel("epoch", fontsize=8)
        if col == "lr" or col.startswith("loss"):
            vals = np.concatenate([f[col].to_numpy(float) for f in frames.values() if col in f.columns])
            if np.all(vals > 0) and vals.max() / max(vals.min(), 1e-30) > 100:
                ax.set_yscale("log")
    for ax in list(axes.flat)[len(cols):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout(rect=(0, 0, 1, 0.96))
    return _save(fig, Path(out))


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
