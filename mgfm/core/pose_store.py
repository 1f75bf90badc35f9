"""The per-video pose Parquet file: one primary person per frame, 133 keypoints, streamed writes.

Schema (one row per decoded frame, in frame order):
    frame      int32                          frame index at the normalised fps
    bbox       fixed_size_list<float32>[4]     primary person's box x0, y0, x1, y1 (pixels)
    det_score  float32                        detector score of that box (1.0 with no detector, 0 if nobody)
    x, y       fixed_size_list<float32>[133]   keypoint coordinates in pixels
    score      fixed_size_list<float32>[133]   keypoint confidences (SimCC score scale)
File metadata under the key ``mgfm``: JSON with backend, model, model_sha256, layout, fps, width, height,
n_frames. Row groups hold ``ROW_GROUP_FRAMES`` frames and carry min/max statistics of ``frame``, so reading
one clip touches only the row groups that overlap it.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mgfm.common.atomic import atomic_path
from mgfm.core.layout import LAYOUT_NAME, NUM_KEYPOINTS

ROW_GROUP_FRAMES = 2048
META_KEY = b"mgfm"

SCHEMA = pa.schema([
    ("frame", pa.int32()),
    ("bbox", pa.list_(pa.float32(), 4)),
    ("det_score", pa.float32()),
    ("x", pa.list_(pa.float32(), NUM_KEYPOINTS)),
    ("y", pa.list_(pa.float32(), NUM_KEYPOINTS)),
    ("score", pa.list_(pa.float32(), NUM_KEYPOINTS)),
])


@dataclass
class PoseFrames:
    """Arrays of a run of frames: ``frame`` (N,), ``bbox`` (N, 4), ``det_score`` (N,), ``xy`` (N, 133, 2), ``score`` (N, 133)."""

    frame: np.ndarray
    bbox: np.ndarray
    det_score: np.ndarray
    xy: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def _fixed(values: np.ndarray, width: int) -> pa.FixedSizeListArray:
    flat = pa.array(np.ascontiguousarray(values, dtype=np.float32).reshape(-1), type=pa.float32())
    return pa.FixedSizeListArray.from_arrays(flat, width)


class PoseWriter:
    """Streams batches of frames into a pose Parquet file, atomically: nothing appears until ``close``.

    Use as a context manager; an exception inside the block removes the partial file.
    """

    def __init__(self, path: str | os.PathLike, meta: dict) -> None:
        self.path = Path(path)
        self.meta = {"layout": LAYOUT_NAME, **meta}
        self._ctx = atomic_path(self.path)
        self._writer: pq.ParquetWriter | None = None
        self.n_frames = 0

    def __enter__(self) -> PoseWriter:
        tmp = self._ctx.__enter__()
        self._tmp = tmp
        self._buffer: list[pa.Table] = []
        self._buffered = 0
        return self

    def write(self, frames: PoseFrames) -> None:
        """Append a batch of consecutive frames."""
        n = len(frames)
        if n == 0:
            return
        table = pa.Table.from_arrays([
            pa.array(np.asarray(frames.frame, dtype=np.int32)),
            _fixed(frames.bbox, 4),
            pa.array(np.asarray(frames.det_score, dtype=np.float32)),
            _fixed(frames.xy[..., 0], NUM_KEYPOINTS),
            _fixed(frames.xy[..., 1], NUM_KEYPOINTS),
            _fixed(frames.score, NUM_KEYPOINTS),
        ], schema=SCHEMA)
        self._buffer.append(table)
        self._buffered += n
        self.n_frames += n
        if self._buffered >= ROW_GROUP_FRAMES:
            self._flush()

    def _flush(self) -> None:
        if not self._buffer:
            return
        if self._writer is None:
            schema = SCHEMA.with_metadata({META_KEY: json.dumps(self.meta).encode()})
            self._writer = pq.ParquetWriter(self._tmp, schema, compression="zstd", write_statistics=True)
        table = pa.concat_tables(self._buffer)
        self._writer.write_table(table.replace_schema_metadata(self._writer.schema.metadata),
                                 row_group_size=ROW_GROUP_FRAMES)
        self._buffer, self._buffered = [], 0

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                # the frame count is only known at the end: the footer metadata carries it
                self.meta["n_frames"] = self.n_frames
                self._flush()
                if self._writer is None:  # zero frames: still a valid, empty file
                    schema = SCHEMA.with_metadata({META_KEY: json.dumps(self.meta).encode()})
                    self._writer = pq.ParquetWriter(self._tmp, schema)
                self._writer.add_key_value_metadata({META_KEY: json.dumps(self.meta).encode()})
                self._writer.close()
            elif self._writer is not None:
                self._writer.close()
        finally:
            return self._ctx.__exit__(exc_type, exc, tb)


def read_pose_meta(path: str | os.PathLike) -> dict:
    """The ``mgfm`` metadata of a pose file (backend, model, fps, width, height, n_frames, ...)."""
    md = pq.read_metadata(path).metadata or {}
    if META_KEY not in md:
        raise ValueError(f"{path}: not an mgfm pose file (no '{META_KEY.decode()}' metadata)")
    return json.loads(md[META_KEY])


def _to_frames(table: pa.Table) -> PoseFrames:
    def fixed(col: str, width: int) -> np.ndarray:
        arr = table.column(col).combine_chunks()
        return arr.values.to_numpy(zero_copy_only=False).reshape(-1, width)

    x, y = fixed("x", NUM_KEYPOINTS), fixed("y", NUM_KEYPOINTS)
    return PoseFrames(
        frame=table.column("frame").to_numpy(),
        bbox=fixed("bbox", 4),
        det_score=table.column("det_score").to_numpy(),
        xy=np.stack([x, y], axis=-1),
        score=fixed("score", NUM_KEYPOINTS),
    )


def read_pose(path: str | os.PathLike, start: int | None = None, end: int | None = None,
              columns: list[str] | None = None) -> PoseFrames:
    """Read frames ``start..end`` (inclusive; all frames when both are None), touching only overlapping row groups."""
    filters = []
    if start is not None:
        filters.append(("frame", ">=", int(start)))
    if end is not None:
        filters.append(("frame", "<=", int(end)))
    table = pq.read_table(path, filters=filters or None, columns=columns)
    if columns is not None:
        missing = [c for c in SCHEMA.names if c not in table.column_names]
        for c in missing:
            width = 4 if c == "bbox" else NUM_KEYPOINTS
            fill = pa.array(np.zeros(table.num_rows, np.int32)) if c == "frame" else (
                pa.array(np.zeros(table.num_rows, np.float32)) if c == "det_score"
                else _fixed(np.zeros((table.num_rows, width), np.float32), width))
            table = table.append_column(c, fill)
    return _to_frames(table)


def read_scores(path: str | os.PathLike, keypoints: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (N,) and confidences (N, len(keypoints)) of selected keypoints, reading only two columns."""
    table = pq.read_table(path, columns=["frame", "score"])
    score = table.column("score").combine_chunks().values.to_numpy(zero_copy_only=False).reshape(-1, NUM_KEYPOINTS)
    return table.column("frame").to_numpy(), score[:, list(keypoints)]
