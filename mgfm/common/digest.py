"""sha256 of a file, streamed (checkpoints and videos are hundreds of MB): the one digest every stage records
and checks (downloads, content records, model files, the dataset's tables)."""

from __future__ import annotations

import hashlib
import os


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
