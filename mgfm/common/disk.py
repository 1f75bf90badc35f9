"""Disk space and permissions, said in one line naming the path.

- ``reserve``: a memory-mapped output is written through pages of a file that is first created sparse; when the
  disk fills while pages are written back the process dies of SIGBUS, with no message at all. So the space a
  memory-mapped file needs is checked against ``shutil.disk_usage`` and then reserved (``posix_fallocate``)
  before any page is touched: a full disk is an ``OSError`` naming the file, the bytes needed and the bytes free.
- ``os_error_line``: what a failing command prints for a disk-full, permission or read-only error: the path and
  the cause, with the free space where it matters.
- ``unwritable_dirs``: folders of a results tree that cannot be written (read-only permissions or file system),
  found before any job starts, because Snakemake cannot replace an old output there and fails in its own code.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

#: Room left beside a reserved file, for the metadata and logs written with it.
MARGIN_BYTES = 16 << 20


def _mb(n: int) -> str:
    return f"{n / 2**20:.1f} MB" if n < 2**30 else f"{n / 2**30:.2f} GB"


def free_bytes(path: str | os.PathLike) -> int:
    """Free bytes (for this user) of the file system holding ``path`` (or its nearest existing parent)."""
    p = Path(path)
    while not p.exists() and p != p.parent:
        p = p.parent
    return shutil.disk_usage(p).free


def check_free_space(path: str | os.PathLike, needed: int, what: str = "") -> None:
    """An ``OSError(ENOSPC)`` naming ``path`` when its file system has less than ``needed`` + a margin free."""
    free = free_bytes(path)
    if free < needed + MARGIN_BYTES:
        raise OSError(errno.ENOSPC, f"no space left for {what or 'it'}: it needs {_mb(needed)}, the file system "
                                    f"has {_mb(free)} free", str(path))


def reserve(path: str | os.PathLike, size: int, what: str = "") -> None:
    """Make the existing file ``path`` hold ``size`` bytes of allocated blocks, or fail with ENOSPC naming it.

    Checked first against the free space (a clear message), then allocated for real (``posix_fallocate``), so a
    memory map of the file can never meet a full disk. File systems without fallocate support are only checked.
    """
    path = Path(path)
    check_free_space(path.parent, size, what or path.name)
    if not hasattr(os, "posix_fallocate"):
        return
    fd = os.open(path, os.O_RDWR)
    try:
        os.posix_fallocate(fd, 0, size)
    except OSError as err:
        if err.errno in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return
        raise OSError(err.errno, f"cannot reserve {_mb(size)} for {what or path.name}: {err.strerror}",
                      str(path)) from None
    finally:
        os.close(fd)


def os_error_line(err: OSError) -> str:
    """One line for a failed file operation: the path, the cause and, for a full disk, the free space."""
    where = err.filename or ""
    if err.filename2:
        where = f"{where} -> {err.filename2}"
    cause = err.strerror or str(err)
    if err.errno == errno.ENOSPC and where and "free" not in cause:
        try:
            cause += f" ({_mb(free_bytes(err.filename))} free there)"
        except OSError:
            pass
    elif err.errno in (errno.EACCES, errno.EPERM):
        cause += " (check the permissions of the file and its folder)"
    elif err.errno == errno.EROFS:
        cause += " (a read-only file system)"
    return f"{where}: {cause}" if where else cause


def unwritable_dirs(root: str | os.PathLike, limit: int = 5) -> list[Path]:
    """Up to ``limit`` existing folders under (and including) ``root`` that this process cannot write into."""
    root = Path(root)
    if not root.is_dir():
        return []
    found = []
    for dirpath, dirnames, _ in os.walk(root):
        if not os.access(dirpath, os.W_OK | os.X_OK):
            found.append(Path(dirpath))
            dirnames[:] = []            # everything below is unreachable for writing anyway
            if len(found) >= limit:
                break
    return found


def unwritable_message(roots: list[str | os.PathLike]) -> str | None:
    """The one message for folders of ``roots`` that cannot be written (Snakemake could not replace the outputs
    in them), or None."""
    blocked = [d for root in roots for d in unwritable_dirs(root)]
    if not blocked:
        return None
    shown = ", ".join(map(str, blocked[:5])) + (" ..." if len(blocked) > 5 else "")
    return (f"{shown}: not writable (read-only permissions or file system), so outputs there cannot be replaced; "
            "make it writable (chmod u+w) or give another results folder (config key results)")
