"""Label-free views of the dataset tables: what sampling, the pretraining datasets and pretraining read.

Why: those stages depend on which videos exist, their subjects, subsets and splits, and where the MG instances
lie (the duration prior, MG-IoD), but not on a video's url or outcome or an instance's class. Given the whole
manifest and annotation table, a corrected win/lose or class reran sampling and every pretraining job, whose
outputs came out byte-identical. They read these two views instead:

- ``videos.csv``: video_id, subject_id, subset, split (manifest order);
- ``intervals.csv``: video_id, start_frame, end_frame (annotation order).

A view is rewritten only when its content changes (compared before writing), so a label edit leaves it, and
everything that reads it, untouched. Row order and values are the tables' own, so what reads a view computes
exactly what it computed from the tables.
"""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from mgfm.data.contract import INTERVAL_COLUMNS, VIDEO_COLUMNS, load_annotations, load_manifest

log = logging.getLogger(__name__)
VIDEO_VIEW = "videos.csv"
INTERVAL_VIEW = "intervals.csv"


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


def write_views(manifest_path: str | os.PathLike, annotations_path: str | os.PathLike, out_dir: str | os.PathLike,
                backdate_new: bool = False, write: bool = True) -> list[str]:
    """Write the views into ``out_dir``, each only when its content changed; return the names (re)written.

    ``backdate_new``: a view that did not exist yet gets the tables' mtime (the workflow writes them while it
    parses: outputs made from the tables before the views existed are not redone). ``write=False`` writes
    nothing and returns the names a write would change (a dry run).
    """
    out_dir = Path(out_dir)
    texts = view_texts(manifest_path, annotations_path)
    changed = []
    for name, text in texts.items():
        path = out_dir / name
        existed = path.is_file()
        if existed and path.read_text() == text:
            continue
        changed.append(name)
        if not write:
            continue
        out_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{name}.{os.getpid()}.part")
        try:
            tmp.write_text(text)
            if backdate_new and not existed:
                mtime = max(Path(p).stat().st_mtime_ns for p in (manifest_path, annotations_path))
                os.utime(tmp, ns=(mtime, mtime))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    if changed and write:
        log.info("label-free views written: %s in %s", ", ".join(changed), out_dir)
    return changed
