"""Paper Fig. 4: the duration distribution of the sampler's prior against that of the sampled clips."""

from __future__ import annotations

import os

import numpy as np

from mgfm.common.atomic import atomic_path


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
