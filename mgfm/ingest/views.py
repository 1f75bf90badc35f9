"""Label-free views of the dataset tables: what sampling, the pretraining datasets and pretraining read.

Why: those stages depend on which videos exist, their subjects, subsets and splits, and where the MG instances
lie (the duration prior, MG-IoD), but not on a video's url or outcome or an instance's class. Given the whole
manifest and annotation table, a corrected win/lose or class reran sampling and every pretraining job, whose
outputs came out byte-identical. They read these two views instead:

- ``videos.csv``: video_id, subject_id, subset, split (manifest order);
- ``intervals.csv``: video_id, start_frame, end_frame (annotation order).

Row order and values are the tables' own, so what reads a view computes exactly what it computed from the
tables.

Two ways to the files, as for the per-video download records (``mgfm.ingest.records``): the demo's tables are
themselves an output, so one job writes ``videos.csv`` and ``intervals.csv`` (``write_views``, which leaves a
view with unchanged content as it is). A real dataset's views are computed while the workflow is parsed
(``view_texts``, which writes nothing) and written by a small job under a name carrying a digest of their
content, ``videos.{digest}.csv`` (``write_versioned_view``): a label edit leaves the names, so nothing is
planned, and a label-free change is a new file that what reads it depends on, which a dry run shows as it is.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
from pathlib import Path

from mgfm.common.atomic import atomic_path, write_version
from mgfm.ingest.contract import INTERVAL_COLUMNS, VIDEO_COLUMNS, load_annotations, load_manifest

log = logging.getLogger(__name__)
VIDEO_VIEW = "videos.csv"
INTERVAL_VIEW = "intervals.csv"
DIGEST_CHARS = 16
#: {view}.{digest}.csv: a versioned view's name
VERSIONED_NAME = re.compile(rf"^(?P<view>videos|intervals)\.(?P<digest>[0-9a-f]{{{DIGEST_CHARS}}})\.csv$")


def view_texts(manifest_path: str | os.PathLike, annotations_path: str | os.PathLike) -> dict[str, str]:
    """File name -> CSV text of each label-free view of the (contract-checked) tables."""
    manifest = load_manifest(manifest_path)
    annotations = load_annotations(annotations_path, manifest=manifest)
    texts = {}
    for name, frame, columns in ((VIDEO_VIEW, manifest, VIDEO_COLUMNS), (INTERVAL_VIEW, annotations, INTERVAL_COLUMNS)):
        buf = io.StringIO()
        frame[list(columns)].to_csv(buf, index=False, lineterminator="\n")
        texts[name] = buf.getvalue()
    return texts


def view_digest(text: str) -> str:
    """The content digest a versioned view's name carries."""
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def versioned_view_path(out_dir: str | os.PathLike, name: str, text: str) -> Path:
    """``{out_dir}/videos.{digest of text}.csv`` for ``name`` ``videos.csv`` (``intervals.csv`` alike)."""
    stem = name.removesuffix(".csv")
    return Path(out_dir) / f"{stem}.{view_digest(text)}.csv"


def write_versioned_view(path: str | os.PathLike, text: str) -> None:
    """Write one versioned view (its name must carry the digest of ``text``) and remove that view's older
    versions beside it, so the folder holds one file per view."""
    path = Path(path)
    m = VERSIONED_NAME.match(path.name)
    if not m or m["digest"] != view_digest(text):
        raise ValueError(f"{path}: the name must be {{videos|intervals}}.{view_digest(text)}.csv for this content")
    write_version(path, text, VERSIONED_NAME, "view")


def write_views(manifest_path: str | os.PathLike, annotations_path: str | os.PathLike,
                out_dir: str | os.PathLike) -> list[str]:
    """Write ``videos.csv`` and ``intervals.csv`` into ``out_dir``, each only when its content changed; return
    the names (re)written."""
    out_dir = Path(out_dir)
    changed = []
    for name, text in view_texts(manifest_path, annotations_path).items():
        path = out_dir / name
        if path.is_file() and path.read_text() == text:
            continue
        changed.append(name)
        out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            Path(tmp).write_text(text)
    if changed:
        log.info("label-free views written: %s in %s", ", ".join(changed), out_dir)
    return changed
