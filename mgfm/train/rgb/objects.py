"""Stage I objects from a folder of RGBA crops, SMILE's layout: ``<folder>/<category>/<image>``, every image with an
alpha channel (SMILE pastes about 60 k such crops of real object instances).

The images are packed once into a bank: uint8 (M, P, P, 4) RGBA, each image resized to P x P (SMILE resizes an
object to its box, whatever its own aspect: the box is drawn first), memory-mapped so a step reads only the objects
it pastes and the processes of a run share one file. The bank is keyed by the folder's content (every file's
relative path and sha256) and the size, so an edited folder is repacked, never read stale.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np

from mgfm.common.atomic import atomic_path
from mgfm.common.logs import Progress
from mgfm.train.checkpoint import file_digest

#: image formats that can carry an alpha channel
SUFFIXES = (".png", ".webp", ".tif", ".tiff")


def object_files(folder: str | os.PathLike) -> list[Path]:
    """The object images of ``folder`` (one subfolder per category), sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: objects folder not found (config key rgb_pretrain.motion.objects_dir)")
    files = sorted(f for f in root.glob("*/*") if f.is_file() and f.suffix.lower() in SUFFIXES)
    if not files:
        raise ValueError(f"{root}: no object images (expected <category>/<image>{'|'.join(SUFFIXES)} with alpha; "
                         "config key rgb_pretrain.motion.objects_dir)")
    return files


def bank_key(folder: str | os.PathLike, files: list[Path], size: int) -> str:
    """sha256 over the template size and every file's relative path and content digest."""
    h = hashlib.sha256(f"size={size}\n".encode())
    for f in files:
        h.update(f"{f.relative_to(folder).as_posix()}\0{file_digest(f)}\n".encode())
    return h.hexdigest()


def read_rgba(path: Path, size: int) -> np.ndarray:
    """One object image as uint8 RGBA (size, size, 4); an image without alpha is an error naming it."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ValueError(f"{path}: not a readable image (rgb_pretrain.motion.objects_dir)")
    if img.ndim != 3 or img.shape[2] != 4:
        raise ValueError(f"{path}: has no alpha channel; Stage I objects are RGBA crops whose alpha is their shape "
                         "(rgb_pretrain.motion.objects_dir)")
    if img.dtype != np.uint8:
        img = (img.astype(np.float64) * 255 / np.iinfo(img.dtype).max).round().astype(np.uint8)
    rgba = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    h, w = rgba.shape[:2]
    interp = cv2.INTER_AREA if max(h, w) > size else cv2.INTER_LINEAR
    return cv2.resize(rgba, (size, size), interpolation=interp)


def open_bank(path: Path, key: str) -> np.ndarray | None:
    """The bank at ``path`` (memory-mapped) when its ``.json`` says it was made for ``key``, else None."""
    try:
        if path.is_file() and json.loads(path.with_suffix(".json").read_text()).get("key") == key:
            return np.load(path, mmap_mode="r")
    except (OSError, ValueError):
        return None
    return None


def build_bank(files: list[Path], size: int, path: Path, key: str) -> np.ndarray:
    """Pack ``files`` into ``path`` (then its key file); returns the memory-mapped bank."""
    path.parent.mkdir(parents=True, exist_ok=True)
    bar = Progress(len(files), "stage 1 objects", unit="image")
    with atomic_path(path) as tmp:
        out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(len(files), size, size, 4))
        for i, f in enumerate(files):
            out[i] = read_rgba(f, size)
            bar.update()
        out.flush()
        del out
    bar.close()
    with atomic_path(path.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps({"key": key, "objects": len(files), "size": size}) + "\n")
    return np.load(path, mmap_mode="r")
