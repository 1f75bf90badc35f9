"""Frozen-feature tables: clip metadata plus one fixed-length float32 vector per clip, in one Parquet file.

Written once per (encoder, packed dataset) by feature extraction and read by every evaluation protocol,
so no protocol runs an encoder again. Columns: the packed dataset's metadata columns (clip_id, video_id,
subject_id, split, label, valid_len, start_frame, end_frame) and ``feature`` (fixed_size_list<float32>[D]).
File metadata ``mgfm``: JSON with the encoder's card (modality, stream, ...) and the dataset name.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mgfm.common.atomic import atomic_path


def write_features(path: str | os.PathLike, meta: pd.DataFrame, features: np.ndarray, info: dict | None = None) -> None:
    """Write ``features`` (N, D) with their ``meta`` rows atomically."""
    features = np.ascontiguousarray(features, dtype=np.float32)
    if features.ndim != 2 or len(features) != len(meta):
        raise ValueError(f"{path}: features {features.shape} do not match {len(meta)} metadata rows")
    table = pa.Table.from_pandas(meta.reset_index(drop=True), preserve_index=False)
    col = pa.FixedSizeListArray.from_arrays(pa.array(features.reshape(-1)), features.shape[1])
    table = table.append_column("feature", col)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), b"mgfm": json.dumps(info or {}).encode()})
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def read_features(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray]:
    """Return (meta, features (N, D) float32)."""
    table = pq.read_table(path)
    if "feature" not in table.column_names:
        raise ValueError(f"{path}: not a feature table (no 'feature' column)")
    feat = table.column("feature").combine_chunks()
    dim = feat.type.list_size
    features = feat.values.to_numpy(zero_copy_only=False).reshape(-1, dim)
    meta = table.drop_columns(["feature"]).to_pandas()
    return meta, features


def read_feature_info(path: str | os.PathLike) -> dict:
    """The ``mgfm`` metadata of a feature table."""
    md = pq.read_schema(path).metadata or {}
    return json.loads(md.get(b"mgfm", b"{}"))
