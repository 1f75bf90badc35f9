"""Seeds derived from (global seed, item keys), so adding one item never changes another's randomness."""

from __future__ import annotations

import hashlib

import numpy as np


def derive_seed(global_seed: int, *keys: object) -> int:
    """Return a 63-bit seed that depends only on ``global_seed`` and ``keys`` (e.g. a stage name and a video id)."""
    h = hashlib.blake2b(digest_size=8)
    h.update(str(int(global_seed)).encode())
    for key in keys:
        h.update(b"\x1f")
        h.update(str(key).encode())
    return int.from_bytes(h.digest(), "little") & ((1 << 63) - 1)


def rng_for(global_seed: int, *keys: object) -> np.random.Generator:
    """A numpy Generator seeded from ``derive_seed(global_seed, *keys)``."""
    return np.random.default_rng(derive_seed(global_seed, *keys))
