"""Tables VI and VII: MG-IoD precision vs sampling quota and vs confidence threshold, beside the paper's numbers.

Reads the clips stage's raw ablation results (``results/clips/iod.json``, written by ``mgfm.clips.iod``). The
paper's columns are filled only for the settings the paper reports (Table VI at its tau, Table VII at its
quota; ``mgfm.tables.paper``), so a different config never shows a paper number beside a different setting.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pandas as pd

from mgfm.tables.paper import TABLE_VI_IOD_QUOTA, TABLE_VI_TAU, TABLE_VII_IOD_TAU, TABLE_VII_QUOTA
from mgfm.tables.render import Table, write_table

IOD_TABLE_NAMES = ("table6_iod_quota", "table7_iod_tau")
_NO_PAPER = (None, None)


def display_cells(df: pd.DataFrame) -> list[list[str]]:
    """Cells as people read them: two decimals for floats, an en dash where the paper has no number."""
    def cell(value) -> str:
        if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
            return "–"
        return f"{value:.2f}" if isinstance(value, float) else str(value)

    return [[cell(v) for v in rec] for rec in df.itertuples(index=False)]


def _ours(row: dict, n_videos: int) -> dict:
    prec = row["precision_pct"]
    return {"Generated Samples": int(row["clips"]),
            "MG-IoD Precision (%)": round(float("nan") if prec is None else prec, 2),
            "Videos at Quota": f"{row['videos_at_quota']}/{n_videos}"}


def _paper(numbers: tuple) -> dict:
    return {"Paper Generated Samples": numbers[0], "Paper MG-IoD Precision (%)": numbers[1]}


def iod_frames(results: dict) -> dict[str, pd.DataFrame]:
    """{"table6": ..., "table7": ...}: our rows of each sweep with the paper's numbers where the setting matches."""
    n = int(results["n_videos"])
    at_paper_tau = float(results["tau"]) == TABLE_VI_TAU
    at_paper_quota = int(results["tau_sweep_quota"]) == TABLE_VII_QUOTA
    rows6 = [{"Sampling Number": int(r["quota"]), **_ours(r, n),
              **_paper(TABLE_VI_IOD_QUOTA.get(int(r["quota"]), _NO_PAPER) if at_paper_tau else _NO_PAPER)}
             for r in results["quota_sweep"]]
    rows7 = [{"Confidence Threshold": float(r["tau"]), **_ours(r, n),
              **_paper(TABLE_VII_IOD_TAU.get(float(r["tau"]), _NO_PAPER) if at_paper_quota else _NO_PAPER)}
             for r in results["tau_sweep"]]
    return {"table6": pd.DataFrame(rows6).astype({"Paper Generated Samples": "Int64"}),
            "table7": pd.DataFrame(rows7).astype({"Paper Generated Samples": "Int64"})}


def _table(df: pd.DataFrame, name: str, number: str, title: str, note: str) -> Table:
    """Display cells for Markdown and LaTeX; the CSV keeps the raw values."""
    return Table(name, title, list(df.columns), display_cells(df), notes=[note], records=df.to_dict("records"),
                 number=number)


def build_iod_tables(iod_json: str | os.PathLike, out_dir: str | os.PathLike,
                     dataset: str | None = None) -> dict[str, pd.DataFrame]:
    """Write Tables VI and VII (Markdown, CSV, LaTeX) from the clips stage's ``iod.json``; returns their frames.
    ``dataset``: what the captions name as our data (mgfm.tables.summary.dataset_label)."""
    path = Path(iod_json)
    if not path.is_file():
        raise FileNotFoundError(f"MG-IoD results not found: {path} (written by `mgfm clips iod`)")
    results = json.loads(path.read_text())
    missing = [k for k in ("n_videos", "n_instances", "retry_budget", "seed", "tau", "tau_sweep_quota",
                           "quota_sweep", "tau_sweep") if k not in results]
    if missing:
        raise ValueError(f"{path}: missing key(s) {missing}")
    frames = iod_frames(results)
    note = (f"Ours: {results['n_videos']} labeled test videos, {results['n_instances']} MG instances, retry budget "
            f"{results['retry_budget']}, seed {results['seed']}; where no video reaches the quota, the retry budget "
            "alone limits the clips, so such rows are equal. Paper: iMiGUE test set (93 videos, 4,322 MGs).")
    ours = f"Ours: {dataset or 'this run (dataset not named)'}; paper: iMiGUE."
    write_table(_table(frames["table6"], IOD_TABLE_NAMES[0], "VI",
                       f"MG-IoD precision vs sampling number (tau {results['tau']}). {ours}", note), out_dir)
    write_table(_table(frames["table7"], IOD_TABLE_NAMES[1], "VII",
                       f"MG-IoD precision vs confidence threshold (quota {results['tau_sweep_quota']}). {ours}",
                       note), out_dir)
    return frames
