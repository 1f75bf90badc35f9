"""Safetensors weights read as untrusted data: the header first, then tensors only when they fit.

A safetensors file is an 8-byte little-endian header length, a JSON header (tensor name -> dtype, shape, byte
offsets) and the raw bytes. ``read_header`` parses and checks that header without touching the tensors, so a
model's expected shapes can be compared with the file's before any tensor (or a model of the file's claimed
size) is allocated; ``load_weights`` then loads them. Every failure (a truncated or corrupt file, a header that
does not describe its bytes, a shape the model does not have) is a ``ValueError`` naming the file.
"""

from __future__ import annotations

import json
import math
import os
import struct
from collections.abc import Mapping
from pathlib import Path

import torch

#: The largest header we read (safetensors itself caps it at 100 MB).
MAX_HEADER_BYTES = 100_000_000
DTYPE_BYTES = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I16": 2, "I8": 1, "U8": 1,
               "BOOL": 1, "U16": 2, "U32": 4, "U64": 8, "F8_E4M3": 1, "F8_E5M2": 1}


def read_header(path: str | os.PathLike) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Tensor name -> (dtype, shape) of a safetensors file, checked against the file's size; reads only the
    header."""
    path = Path(path)
    try:
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(8)
            if len(head) < 8:
                raise ValueError(f"{path}: not a safetensors file ({size} bytes, shorter than its header length)")
            (n,) = struct.unpack("<Q", head)
            if n > min(MAX_HEADER_BYTES, size - 8):
                raise ValueError(f"{path}: not a safetensors file (header length {n} does not fit its {size} bytes)")
            raw = fh.read(n)
    except OSError as err:
        raise ValueError(f"{path}: cannot read: {err.strerror or err}") from err
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a safetensors file (its header is not JSON: {err})") from err
    if not isinstance(header, dict):
        raise ValueError(f"{path}: not a safetensors file (its header is not a JSON object)")
    tensors, end = {}, 0
    for name, info in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (start, stop) = info["dtype"], tuple(info["shape"]), info["data_offsets"]
            ok = (dtype in DTYPE_BYTES and all(isinstance(d, int) and d >= 0 for d in shape)
                  and isinstance(start, int) and isinstance(stop, int)
                  and stop - start == math.prod(shape) * DTYPE_BYTES[dtype] and 0 <= start <= stop)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"{path}: tensor {name!r} has a malformed header entry {_short(info)}")
        tensors[name] = (dtype, shape)
        end = max(end, stop)
    if 8 + n + end != size:
        raise ValueError(f"{path}: truncated or padded: its header describes {8 + n + end} bytes, the file has {size}")
    return tensors


def _short(value: object, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def check_shapes(path: str | os.PathLike, header: Mapping[str, tuple[str, tuple[int, ...]]],
                 expected: Mapping[str, tuple[int, ...]], what: str) -> None:
    """The file holds exactly the tensors ``expected`` names, with those shapes; else a ValueError naming the
    file, ``what`` expects them, and the first differences."""
    missing = sorted(set(expected) - set(header))
    extra = sorted(set(header) - set(expected))
    wrong = [f"{k} {list(header[k][1])} (expected {list(expected[k])})" for k in sorted(set(expected) & set(header))
             if tuple(header[k][1]) != tuple(expected[k])]
    if missing or extra or wrong:
        parts = ([f"missing {missing[:3]}" + (" ..." if len(missing) > 3 else "")] if missing else []) + \
                ([f"unexpected {extra[:3]}" + (" ..." if len(extra) > 3 else "")] if extra else []) + \
                ([f"shapes {'; '.join(wrong[:3])}" + (" ..." if len(wrong) > 3 else "")] if wrong else [])
        raise ValueError(f"{path}: does not fit {what}: {', '.join(parts)}")


def load_weights(path: str | os.PathLike, expected: Mapping[str, tuple[int, ...]] | None = None,
                 what: str = "the model") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file on the CPU, after its header was checked (and its shapes against
    ``expected``, when given); errors name the file."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: {'a folder, not a weights file' if path.is_dir() else 'file not found'}")
    header = read_header(path)
    if expected is not None:
        check_shapes(path, header, expected, what)
    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(f"{path}: unreadable safetensors file: {err}") from err


def meta_shapes(module: torch.nn.Module) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in ``module``'s state dict (works on the meta device: nothing allocated)."""
    return {k: tuple(v.shape) for k, v in module.state_dict().items()}
