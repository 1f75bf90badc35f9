"""Writing a protocol's raw results (JSON, atomically) and folding per-seed summaries into mean ± std."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mgfm.common.atomic import atomic_path
from mgfm.eval.metrics import mean_std


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    return obj


def write_json(path: str | os.PathLike, obj: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(_jsonable(obj), indent=2, sort_keys=True) + "\n")
    return path


def read_json(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: results file not found")
    return json.loads(path.read_text())


def write_npz(path: str | os.PathLike, **arrays: np.ndarray) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **arrays)
    return path


#: per-seed values reported as they are (a list), not averaged
KEEP_AS_LIST = ("epoch", "seed", "classes_covered", "n_train")


def fold_seeds(per_seed: list, key: str | None = None):
    """Per-seed nested dicts of numbers -> same nesting with mean_std at the numeric leaves.

    Leaves that are None in every seed stay None; epochs are kept as lists (which epoch each seed reported).
    """
    first = per_seed[0]
    if first is None:
        return None
    if isinstance(first, dict):
        return {k: fold_seeds([s[k] for s in per_seed], k) for k in first}
    if key in KEEP_AS_LIST or isinstance(first, bool) or not isinstance(first, (int, float)):
        return [s for s in per_seed]
    return mean_std([float(s) for s in per_seed])


