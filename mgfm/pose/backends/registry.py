"""The pose backends by name (config key ``pose.backend``), each loaded only when selected.

A loader takes the pose parameters and a thread count and returns a checked ``PoseBackend``. Each loader
imports its backend module inside the function, so mmpose (and its environment) is needed only by runs
that select it. A new backend adds its module and one entry here.
"""

from __future__ import annotations

from typing import Callable

from mgfm.pose.backends.base import PoseBackend
from mgfm.pose.params import PoseParams


def _onnx(p: PoseParams, threads: int) -> PoseBackend:
    from mgfm.pose.backends.onnx_backend import load_onnx_backend

    return load_onnx_backend(p, threads)


def _mmpose(p: PoseParams, threads: int) -> PoseBackend:
    from mgfm.pose.backends.mmpose_backend import load_mmpose_backend

    return load_mmpose_backend(p, threads)


BACKENDS: dict[str, Callable[[PoseParams, int], PoseBackend]] = {"onnx": _onnx, "mmpose": _mmpose}


def load_backend(p: PoseParams, threads: int) -> PoseBackend:
    """The backend named by ``p.backend``, with every model file checked."""
    try:
        loader = BACKENDS[p.backend]
    except KeyError:
        raise ValueError(f"config key pose.backend: unknown backend {p.backend!r}; "
                         f"expected one of {sorted(BACKENDS)}") from None
    return loader(p, threads)
