"""Download a model file and verify its sha256 before it appears (used by the ``fetch_pose_model`` rule only)."""

from __future__ import annotations

import os
import shutil
import urllib.request
from pathlib import Path

from mgfm.common.atomic import atomic_path
from mgfm.common.digest import sha256_file


def fetch_file(url: str, sha256: str, out: str | os.PathLike) -> Path:
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
        else:
            with urllib.request.urlopen(url, timeout=60) as resp, open(tmp, "wb") as fh:  # noqa: S310 (pinned URL)
                shutil.copyfileobj(resp, fh, 1 << 20)
        digest = sha256_file(tmp)
        if len(sha256) < 8 or not digest.startswith(sha256.lower()):
            raise ValueError(f"{url}: sha256 {digest} does not match the pinned {sha256}")
    return out
