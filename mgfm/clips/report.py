"""Small writers for the clips stage's outputs that people read: Markdown + CSV tables and the duration figure.

A private Markdown/CSV writer keeps this stage independent of ``mgfm.tables`` while that package is written;
the tables have the same shape as the other paper tables (ours beside the paper's).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.atomic import atomic_path


def _cell(value) -> str:
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def to_markdown(df: pd.DataFrame, title: str = "", note: str = "") -> str:
    """A GitHub Markdown table with an optional title line and a note below."""
    lines = [f"**{title}**", ""] if title else []
    lines.append("| " + " | ".join(df.columns) + " |")
    lines.append("|" + "|".join("---" for _ in df.columns) + "|")
    for rec in df.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v) for v in rec) + " |")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def write_table(df: pd.DataFrame, stem: str | os.PathLike, title: str = "", note: str = "") -> None:
    """Write ``stem.md`` and ``stem.csv`` atomically."""
    stem = Path(stem)
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(df, title, note))
    with atomic_path(stem.with_suffix(".csv")) as tmp:
        df.to_csv(tmp, index=False)


def duration_figure(prior_s: np.ndarray, sampled_s: np.ndarray, out_png: str | os.PathLike,
                    max_s: float = 20.0, bin_s: float = 0.4) -> None:
    """Paper Fig. 4: density histograms of the prior (labeled train MG durations) and of the sampled clips."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bins = np.arange(0.0, max_s + bin_s, bin_s)
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=120)
    for values, label, color in ((prior_s, "labeled train MGs (prior)", "tab:blue"),
                                 (sampled_s, "sampled clips", "tab:orange")):
        v = np.asarray(values, float)
        shown = v[v < max_s]
        ax.hist(shown, bins=bins, density=True, alpha=0.55, color=color,
                label=f"{label}: n={len(v)}, mean {v.mean():.2f}s" if len(v) else f"{label}: none")
    ax.set_xlabel("duration (s)")
    ax.set_ylabel("density")
    ax.set_title(f"Duration distributions (< {max_s:g} s shown)")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    with atomic_path(out_png) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
