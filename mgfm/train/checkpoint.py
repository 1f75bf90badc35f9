"""Training checkpoints: one atomic ``checkpoints/last.pt`` holding only tensors and plain containers.

Saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``, so resuming never runs
pickled code. A checkpoint carries a fingerprint of everything that shapes training (parameters, stream,
data, seed); a checkpoint with another fingerprint is set aside instead of being resumed.
"""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path

import torch

from mgfm.common.atomic import atomic_path

log = logging.getLogger(__name__)
CHECKPOINT_DIR = "checkpoints"
LAST = "last.pt"


def fingerprint_of(obj: dict) -> str:
    """A canonical JSON string of the training setup (compared verbatim on resume)."""
    return json.dumps(obj, sort_keys=True, default=str)


def rng_state() -> dict:
    """Python and torch (CPU, and CUDA when present) RNG states, as tensors and plain tuples."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(model_dir: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``model_dir/checkpoints/last.pt`` atomically; a kill mid-write leaves the old one."""
    path = Path(model_dir) / CHECKPOINT_DIR / LAST
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(model_dir: str | os.PathLike, fingerprint: str) -> dict | None:
    """The last checkpoint of ``model_dir`` if it was made by the same setup, else None (a stale one is renamed)."""
    path = Path(model_dir) / CHECKPOINT_DIR / LAST
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file must not block a fresh start, but say so
        log.warning("%s: unreadable checkpoint (%s); starting from scratch", path, err)
        path.replace(path.with_suffix(".unreadable.pt"))
        return None
    if state.get("fingerprint") != fingerprint:
        stale = path.with_suffix(".stale.pt")
        log.warning("%s was made with other parameters, stream or data; moved to %s and starting from scratch",
                    path, stale.name)
        path.replace(stale)
        return None
    return state
