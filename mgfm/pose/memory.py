"""Process memory settings of the pose stage (no heavy imports here: call it before they happen)."""

from __future__ import annotations


def limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas (mallopt M_ARENA_MAX) for this process.

    Decoder, OpenCV and ONNX Runtime threads each get their own arena by default; the per-batch buffers then
    fragment across them and resident memory settles 3-5x higher (measured: ~870 MiB vs ~330 MiB at batch 32)
    without being used. Arenas that exist already stay, so the CLI calls this before importing the backend.
    A no-op where glibc is absent.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.mallopt(-8, int(arenas))  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass
