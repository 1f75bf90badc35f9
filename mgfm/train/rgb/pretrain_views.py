"""Per-epoch views of packed RGB clips in pretraining, as SMILE (VideoMAE's pretraining loader) takes them: a random
temporal start at the dataset's fixed stride and ``GroupMultiScaleCrop``'s multi-scale crop, the same for every
frame of a clip.

A packed RGB dataset stores per clip F >= T frames at a side S' >= S (``mgfm.core.packed``: the ``views`` layout of
the pretraining dataset; the plain layout is the case F = T, S' = S). A view is
- T consecutive stored frames from a start in [0, ``view_starts``) (the starts whose T frames at the stride lie
  inside the clip's interval; 1 for a clip too short for the stride), and
- a crop of width and height ``int(S' x scale)`` for scales in ``scales`` (a size within 2 px of S becomes S),
  width and height at most ``max_distort`` scale steps apart, at one of 13 fixed positions (corners, centre,
  edge midpoints, quarter points of the free margin), resized to S x S (bilinear, antialiased: PIL's resize).
Each clip's view is drawn from its own generator seeded by (seed, clip id, epoch), so it is the same in any loader
worker, for any number of processes, and after a resume. Without an epoch (feature extraction, the teacher-target
cache) the centre view is read: the middle start and the central S x S pixels, which for the plain layout is the
stored clip itself. Fine-tuning reads the stored clips whole and takes its own windows and test views
(``mgfm.train.rgb.finetune_views``), whose centred single view is this centre view.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mgfm.common.seeding import rng_for
from mgfm.config.sections import section_values

#: GroupMultiScaleCrop snaps a crop size this close to the output size onto it
SNAP_PX = 3


@dataclass(frozen=True)
class ViewAugment:
    """A resolved ``rgb_pretrain.augment`` block (without its ``stages``)."""

    temporal: bool
    scales: tuple[float, ...]
    max_distort: int

    @classmethod
    def from_section(cls, p: dict) -> ViewAugment:
        """From the resolved ``rgb_pretrain.augment`` block (its ``stages`` say when the views apply, not how)."""
        p = section_values(cls, p, "rgb_pretrain.augment", ignored=("stages",))
        if not p["scales"] or any(not 0 < s <= 1 for s in p["scales"]):
            raise ValueError(f"rgb_pretrain.augment.scales must be in (0, 1], got {p['scales']}")
        return cls(temporal=bool(p["temporal"]), scales=tuple(float(s) for s in p["scales"]),
                   max_distort=int(p["max_distort"]))

    def to_dict(self) -> dict:
        return asdict(self)


def crop_sizes(side: int, out: int, scales: tuple[float, ...], max_distort: int) -> list[tuple[int, int]]:
    """The (width, height) pairs GroupMultiScaleCrop chooses from on a ``side`` x ``side`` frame."""
    sizes = [int(side * s) for s in scales]
    sizes = [out if abs(x - out) < SNAP_PX else x for x in sizes]
    return [(w, h) for i, h in enumerate(sizes) for j, w in enumerate(sizes) if abs(i - j) <= max_distort]


def crop_offsets(side: int, w: int, h: int) -> list[tuple[int, int]]:
    """GroupMultiScaleCrop's 13 fixed (x, y) positions of a w x h crop (``more_fix_crop``)."""
    sx, sy = (side - w) // 4, (side - h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(i * sx, j * sy) for i, j in grid]


def draw_views(clip_ids, starts: np.ndarray, side: int, out: int, aug: ViewAugment, seed: int, epoch: int
               ) -> np.ndarray:
    """(n, 5) int views (start, x, y, w, h), one per clip, from generators seeded by (seed, clip id, epoch)."""
    sizes = crop_sizes(side, out, aug.scales, aug.max_distort)
    views = np.empty((len(starts), 5), np.int64)
    for i, (cid, n) in enumerate(zip(clip_ids, starts)):
        rng = rng_for(seed, "rgb view", cid, epoch)
        w, h = sizes[rng.integers(len(sizes))]
        offsets = crop_offsets(side, w, h)
        x, y = offsets[rng.integers(len(offsets))]
        start = int(rng.integers(n)) if aug.temporal else (int(n) - 1) // 2
        views[i] = (start, x, y, w, h)
    return views


def centre_views(starts: np.ndarray, side: int, out: int) -> np.ndarray:
    """The centre view of every clip: the middle start, the central ``out`` x ``out`` pixels."""
    c = (side - out) // 2
    return np.stack([(np.asarray(starts, np.int64) - 1) // 2, *[np.full(len(starts), v, np.int64)
                                                                 for v in (c, c, out, out)]], axis=1)


def read_views(data: np.ndarray, rows: np.ndarray, views: np.ndarray, num_frames: int, out: int) -> torch.Tensor:
    """uint8 views (n, T, out, out, 3) of the stored clips ``data[rows]`` (memmap (N, F, S', S', 3)): per clip one
    contiguous read of its T frames, then every clip of one crop size resized together."""
    n = len(rows)
    result = torch.empty(n, num_frames, out, out, 3, dtype=torch.uint8)
    crops: dict[tuple[int, int], list[tuple[int, np.ndarray]]] = {}
    for i in np.argsort(rows, kind="stable"):                       # memmap reads in file order
        start, x, y, w, h = (int(v) for v in views[i])
        frames = np.array(data[rows[i], start:start + num_frames, y:y + h, x:x + w])
        if (w, h) == (out, out):
            result[i] = torch.from_numpy(frames)
        else:
            crops.setdefault((w, h), []).append((i, frames))
    for (w, h), items in crops.items():
        idx = [i for i, _ in items]
        # uint8 in channels-last memory: torch's vectorised uint8 resize, ~20x the float path's speed
        x = torch.from_numpy(np.stack([f for _, f in items])).view(-1, h, w, 3).permute(0, 3, 1, 2)
        y = F.interpolate(x, size=(out, out), mode="bilinear", align_corners=False, antialias=True)
        result[idx] = y.permute(0, 2, 3, 1).reshape(len(idx), num_frames, out, out, 3)
    return result
