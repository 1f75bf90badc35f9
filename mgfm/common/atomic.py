"""Atomic outputs: write to a temporary sibling, rename on success, delete on failure.

A killed or failing job must never leave something that looks finished, so every stage writes
through these helpers. Temporary names start with a dot and contain ``.part`` so they are easy to
spot, and keep the real extension last so tools that sniff it (ffmpeg, pyarrow) still work. A job killed
before it could clean up (SIGKILL, out of memory) leaves its temporary behind; the next writer of the same
output removes it first (``remove_stale_parts``), so they never pile up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


log = logging.getLogger(__name__)


def _stale_patterns(final: Path) -> tuple[re.Pattern, re.Pattern]:
    """Names of the temporaries ``atomic_path`` / ``atomic_dir`` create for ``final``: mkstemp's and mkdtemp's
    8-character random part, exactly, so another output's temporaries (``a.b.mp4`` beside ``a.mp4``) never match."""
    rand = r"\.[A-Za-z0-9_]{8}\."
    file_re = re.compile(r"\." + re.escape(final.stem) + rand + r"part" + re.escape(final.suffix))
    dir_re = re.compile(r"\." + re.escape(final.name) + rand + r"part")
    return file_re, dir_re


def remove_stale_parts(path: str | os.PathLike) -> list[Path]:
    """Delete temporaries left beside ``path`` by a killed earlier job writing it (files and folders).

    A job owns its outputs, so it may remove their temporaries when it starts: nothing else writes them.
    Returns what was removed.
    """
    final = Path(path)
    if not final.parent.is_dir():
        return []
    file_re, dir_re = _stale_patterns(final)
    removed = []
    for entry in final.parent.iterdir():
        is_file, is_dir = file_re.fullmatch(entry.name), dir_re.fullmatch(entry.name)
        if is_dir and entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        elif (is_file or is_dir) and not entry.is_dir():
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
        else:
            continue
        removed.append(entry)
    if removed:
        log.info("removed %d stale temporary file(s) of %s: %s", len(removed), final,
                 ", ".join(e.name for e in removed))
    return removed


def _raise_naming(err: BaseException, final: Path) -> None:
    """Re-raise ``err``; an OSError that names no file (a failed write on a full disk) is raised naming the
    output it was for, so the one-line error says which output could not be written."""
    if isinstance(err, OSError) and not err.filename:
        raise OSError(err.errno, err.strerror or str(err), str(final)) from err
    raise err


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary file path beside ``path``; rename it onto ``path`` if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final)
    fd, tmp = tempfile.mkstemp(prefix=f".{final.stem}.", suffix=".part" + final.suffix, dir=final.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; outputs get the usual permissions
        os.replace(tmp_path, final)
    except BaseException as err:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        _raise_naming(err, final)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside ``path``; it replaces ``path`` only if the block succeeds."""
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_parts(final)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))
    try:
        yield tmp
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as err:
        shutil.rmtree(tmp, ignore_errors=True)
        _raise_naming(err, final)


def write_version(path: str | os.PathLike, text: str, versions: re.Pattern, key: str) -> None:
    """Write ``text`` to ``path`` atomically, then remove the older versions beside it: the files whose names match
    ``versions`` with the same ``key`` group as ``path``'s name, so a folder of versioned files (name = key +
    content digest) holds one file per key."""
    path = Path(path)
    mine = versions.match(path.name)
    if not mine:
        raise ValueError(f"{path}: not a versioned name ({versions.pattern})")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)
    for other in path.parent.iterdir():
        old = versions.match(other.name)
        if other != path and old and old[key] == mine[key]:
            other.unlink(missing_ok=True)
