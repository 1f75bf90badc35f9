"""The demo corpus plan: which videos exist, known from the config alone so Snakemake can build its DAG
before anything is rendered."""

from __future__ import annotations


def demo_video_ids(demo_cfg: dict) -> list[str]:
    """Video ids of the demo corpus: ``demo000`` ... in order; a pure function of ``dataset.demo``."""
    return [f"demo{i:03d}" for i in range(int(demo_cfg["n_videos"]))]
