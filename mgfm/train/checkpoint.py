"""Training checkpoints: one atomic ``checkpoints/last.pt`` holding only tensors and plain containers.

Saved with ``torch.save`` and read back with ``torch.load(weights_only=True)``, so resuming never runs
pickled code. A checkpoint carries a fingerprint of everything that shapes training: the full training config,
the stream and seed, the *content* of the data (``dataset_digest``, never its path or size alone) and the code
version (``code_version``). A checkpoint with another fingerprint is set aside instead of being resumed, and so
is the checkpoint of a run that already finished: a step that is run again (a forced rerun) retrains, only a
killed run resumes.
"""

from __future__ import annotations

import functools
import hashlib
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
_CHUNK = 8 << 20
# the files that make up a packed dataset's content (mgfm.core.packed), in a fixed order
PACKED_FILES = ("info.json", "meta.parquet", "data.npy")


def fingerprint_of(obj: dict) -> str:
    """A canonical JSON string of the training setup (compared verbatim on resume)."""
    return json.dumps(obj, sort_keys=True, default=str)


def file_digest(path: str | os.PathLike) -> str:
    """sha256 of one file, read in 8 MiB chunks (memory stays flat for multi-GB arrays)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@functools.lru_cache(maxsize=64)
def _digest_cached(path: str, stamp: tuple) -> str:
    h = hashlib.sha256()
    for name in PACKED_FILES:
        h.update(name.encode() + b"\0" + file_digest(Path(path) / name).encode() + b"\n")
    return h.hexdigest()


def dataset_digest(path: str | os.PathLike) -> str:
    """Content digest of a packed dataset folder: sha256 over the digests of info.json, meta.parquet, data.npy.

    Two datasets with the same clip count and shape but other values (a new ``skeleton.joint_min_score``)
    differ here. Cached per process on the files' size and mtime, so the seeds and protocols of one evaluation
    job read the arrays once; at paper scale that one read is seconds against hours of training.
    """
    folder = Path(path)
    missing = [n for n in PACKED_FILES if not (folder / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{folder}: not a packed dataset (missing {', '.join(missing)})")
    stamp = tuple((st.st_size, st.st_mtime_ns) for st in ((folder / n).stat() for n in PACKED_FILES))
    return _digest_cached(str(folder.resolve()), stamp)


def code_version(*packages: str) -> str:
    """``mgfm.__version__`` plus a digest of the ``.py`` sources of the given ``mgfm`` subpackages.

    The sources, not the git revision: a commit that touches only docs or another stage must not make a killed
    training job start over, an edit of the training code must (also in an uncommitted or installed copy).
    """
    import mgfm

    root = Path(mgfm.__file__).resolve().parent
    h = hashlib.sha256()
    for pkg in sorted(set(packages)):
        folder = root / pkg
        if not folder.is_dir():
            raise ValueError(f"code_version: no package mgfm.{pkg} in {root}")
        for src in sorted(folder.rglob("*.py")):
            h.update(src.relative_to(root).as_posix().encode() + b"\0" + src.read_bytes() + b"\0")
    return f"{mgfm.__version__}+{h.hexdigest()[:16]}"


def rng_state() -> dict:
    """Python and torch RNG states: the CPU's, and on a GPU this process's own device's (not every visible one's:
    a run resumed on another number of GPUs restores it onto whichever device each process has)."""
    state = {"python": random.getstate(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restore ``rng_state()``'s states; the CUDA one onto the current device, when this process has a GPU.

    Older checkpoints hold a list with every visible device's state: the current device's entry is used when
    the list has one, else the first (on resume with more GPUs than the run that saved it)."""
    random.setstate(_tuples(state["python"]))
    torch.set_rng_state(state["torch"])
    cuda = state.get("cuda")
    if cuda is None or not torch.cuda.is_available():
        return
    if isinstance(cuda, (list, tuple)):
        if not cuda:
            return
        index = torch.cuda.current_device()
        cuda = cuda[index] if index < len(cuda) else cuda[0]
    torch.cuda.set_rng_state(cuda)


def _tuples(x):
    return tuple(_tuples(v) for v in x) if isinstance(x, (list, tuple)) else x


def save_checkpoint(model_dir: str | os.PathLike, state: dict) -> Path:
    """Write ``state`` to ``model_dir/checkpoints/last.pt`` atomically; a kill mid-write leaves the old one."""
    path = Path(model_dir) / CHECKPOINT_DIR / LAST
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def load_checkpoint(model_dir: str | os.PathLike, fingerprint: str, epochs: int | None = None) -> dict | None:
    """The last checkpoint of ``model_dir`` if it was made by the same setup, else None (a stale one is renamed).

    With ``epochs``, a checkpoint that already holds all ``epochs`` is set aside too (``last.finished.pt``):
    it belongs to a run that completed, so being asked to train again means a rerun, not a resume.
    """
    path = Path(model_dir) / CHECKPOINT_DIR / LAST
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a corrupt file must not block a fresh start, but say so
        log.warning("%s: unreadable checkpoint (%s); starting from scratch", path, err)
        _set_aside(path, path.with_suffix(".unreadable.pt"))
        return None
    if state.get("fingerprint") != fingerprint:
        stale = path.with_suffix(".stale.pt")
        log.warning("%s was made with other parameters, stream or data; moved to %s and starting from scratch",
                    path, stale.name)
        _set_aside(path, stale)
        return None
    if epochs is not None and int(state.get("epoch", 0)) >= epochs:
        done = path.with_suffix(".finished.pt")
        log.warning("%s holds a finished run (epoch %s of %d); moved to %s and training again from scratch",
                    path, state.get("epoch"), epochs, done.name)
        _set_aside(path, done)
        return None
    return state


def _set_aside(path: Path, to: Path) -> None:
    """Rename ``path`` to ``to``; under DDP every process decides the same, and the first one renames it."""
    try:
        path.replace(to)
    except FileNotFoundError:
        pass
