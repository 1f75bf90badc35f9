"""Download a model file and verify its sha256 before it appears (the ``fetch_pose_model`` rule's pose
checkpoints, and the CLIP teacher of RGB pretraining)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from mgfm.common.atomic import atomic_path
from mgfm.common.digest import sha256_file
from mgfm.common.fetch import FetchError, stream_url

#: Far above any checkpoint the config pins (a few hundred MB each): a url that serves more is not the pinned
#: file, and is stopped before it fills the disk.
MAX_MODEL_BYTES = 4 << 30
TIMEOUT_S = 60


def fetch_file(url: str, sha256: str, out: str | os.PathLike, max_bytes: int = MAX_MODEL_BYTES) -> Path:
    """Stream ``url`` to ``out``; a checksum mismatch raises and leaves nothing behind.

    ``sha256`` is the full hash or at least its first 8 hex digits (OpenMMLab publishes checkpoints with
    ``sha256[:8]`` in the file name, which is what can be pinned without downloading them).
    """
    if not sha256:
        raise ValueError(f"no sha256 given for {url}: pin it in config (pose.mmpose.checkpoint_sha256)")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if url.startswith("file://"):
            shutil.copyfile(url[len("file://"):], tmp)
            digest = sha256_file(tmp)
        else:
            try:
                digest = stream_url(url, tmp, timeout_s=TIMEOUT_S, max_bytes=max_bytes).sha256
            except FetchError as err:
                raise FetchError(f"{url}: {err}") from err
        if len(sha256) < 8 or not digest.startswith(sha256.lower()):
            raise ValueError(f"{url}: sha256 {digest} does not match the pinned {sha256}")
    return out
