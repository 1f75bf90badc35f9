"""Labeled feature splits for the protocols: load, check (labels, subjects, dims), carve validation subjects,
draw the semi-supervised subset. Every random choice is seeded from (global seed, protocol keys)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mgfm.common.seeding import rng_for
from mgfm.core.feature_store import read_feature_info, read_features

log = logging.getLogger(__name__)


def num_classes_of(taxonomy_path: str | os.PathLike) -> int:
    """Number of MG classes = rows of the taxonomy (class ids must be 0..K-1)."""
    from mgfm.ingest.contract import load_taxonomy

    tax = load_taxonomy(taxonomy_path)
    ids = sorted(int(c) for c in tax["class_id"])
    if ids != list(range(len(ids))):
        raise ValueError(f"{taxonomy_path}: class_id must be 0..{len(ids) - 1} without gaps, got {ids[:5]}...")
    return len(ids)


def class_names_of(taxonomy_path: str | os.PathLike) -> list[str]:
    from mgfm.ingest.contract import load_taxonomy

    tax = load_taxonomy(taxonomy_path).sort_values("class_id")
    return [str(n) for n in tax["name"]]


@dataclass
class Split:
    """Rows of one feature table: metadata, features (N, D) float32 and integer labels."""

    meta: pd.DataFrame
    x: np.ndarray
    y: np.ndarray

    def take(self, rows: np.ndarray) -> Split:
        return Split(self.meta.iloc[rows].reset_index(drop=True), self.x[rows], self.y[rows])

    def __len__(self) -> int:
        return len(self.y)


def load_labeled(path: str | os.PathLike, num_classes: int, stream: str | None = None) -> Split:
    """A labeled feature table, checked: labels in [0, K), finite features, and (if given) the encoder's stream."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: feature table not found")
    meta, x = read_features(path)
    if stream is not None:
        card = read_feature_info(path).get("card", {})
        if card.get("stream") not in (None, stream):
            raise ValueError(f"{path}: features come from a {card['stream']!r} encoder, expected stream {stream!r}")
    y = meta["label"].to_numpy().astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= num_classes))
    if len(bad):
        r = int(bad[0])
        raise ValueError(f"{path}: row {r} (clip_id {meta['clip_id'].iloc[r]}) has label {y[r]} outside "
                         f"[0, {num_classes}) of the taxonomy ({len(bad)} bad rows)")
    nonfinite = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(nonfinite):
        r = int(nonfinite[0])
        raise ValueError(f"{path}: row {r} (clip_id {meta['clip_id'].iloc[r]}) has a non-finite feature")
    if len(y) == 0:
        raise ValueError(f"{path}: no rows")
    return Split(meta, x, y)


def check_disjoint(train: pd.DataFrame, test: pd.DataFrame, what: str = "train/test") -> None:
    """Raise if a subject appears on both sides (every protocol is subject-disjoint)."""
    shared = sorted(set(train["subject_id"].astype(str)) & set(test["subject_id"].astype(str)))
    if shared:
        raise ValueError(f"{what} splits share subjects {shared[:5]} ({len(shared)} in all): they must be "
                         "subject-disjoint")


def check_aligned(splits: dict[str, Split], what: str) -> None:
    """Streams of one dataset must list the same clips in the same order (score fusion adds rows)."""
    names = list(splits)
    ref = splits[names[0]].meta["clip_id"].to_numpy()
    for name in names[1:]:
        other = splits[name].meta["clip_id"].to_numpy()
        if len(other) != len(ref) or not np.array_equal(other, ref):
            raise ValueError(f"{what}: the {name!r} feature table lists other clips (or another order) than "
                             f"{names[0]!r}; extract all streams from the same packed dataset")


def validation_rows(meta: pd.DataFrame, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of training rows whose subject is held out for validation (whole subjects, seeded).

    ``fraction`` of the training subjects (at least one, never all) are held out; 0 gives no validation rows,
    and so does a training split of one subject (with a warning naming the key; the workflow says so before
    its first job, mgfm.eval.plan).
    """
    if fraction <= 0:
        return np.zeros(len(meta), dtype=bool)
    if fraction >= 1:
        raise ValueError(f"config key eval.validation.fraction must be < 1, got {fraction}")
    subjects = np.array(sorted(meta["subject_id"].astype(str).unique()))
    if len(subjects) < 2:
        log.warning("config key eval.validation.fraction %g needs at least 2 training subjects, got %d: no "
                    "validation subject is held out", fraction, len(subjects))
        return np.zeros(len(meta), dtype=bool)
    n_val = min(len(subjects) - 1, max(1, int(round(fraction * len(subjects)))))
    held = set(rng_for(seed, "eval", "validation").permutation(subjects)[:n_val])
    return meta["subject_id"].astype(str).isin(held).to_numpy()


def semi_supervised_rows(n: int, fraction: float, seed: int) -> np.ndarray:
    """Indices of the labeled subset: shuffle 0..n-1 with a fixed seed and keep int(fraction * n) (>= 1)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"config key eval.semi_supervised.fraction must be in (0, 1], got {fraction}")
    keep = max(1, int(fraction * n))
    return np.sort(rng_for(seed, "eval", "semi_supervised").permutation(n)[:keep])
