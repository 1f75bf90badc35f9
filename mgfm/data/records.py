"""Per-video download records: ``{results}/dataset/videos/{video_id}.json``, one small JSON per manifest row.

Why: the download and pose jobs of a video must depend on that video's source only. With the whole manifest
as their input, one edited row (or a new label, a new split) reran every download and every pose job. A
record holds only what fetching needs (url, expected sha256, the folder relative urls resolve against, the
``synthetic`` flag) and, for a local source, the sha256 of the file itself, so a source replaced in place
changes its record. Records are rewritten only when their content changes (compared before writing), so
an unchanged record keeps its mtime and Snakemake reruns exactly the videos whose record changed.

Local sources are hashed once and then remembered by (size, mtime_ns) in ``source_digests.json`` beside the
records folder; a copy of the work folder whose files got new mtimes re-hashes them, finds the same digests
and changes no record.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from mgfm.common.atomic import atomic_path
from mgfm.data.contract import load_manifest
from mgfm.data.download import DownloadParams, local_path, sha256_file, source_kind

log = logging.getLogger(__name__)
RECORD_FIELDS = ("video_id", "url", "sha256", "synthetic", "base_dir", "source")
DIGEST_CACHE = "source_digests.json"


def record_path(records_dir: str | os.PathLike, video_id: str) -> Path:
    return Path(records_dir) / f"{video_id}.json"


def _cached_sha256(path: Path, cache: dict) -> str:
    """sha256 of a local file, from ``cache`` when its size and mtime are unchanged."""
    st = path.stat()
    key = str(path)
    hit = cache.get(key)
    if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
        return hit[2]
    digest = sha256_file(path)
    cache[key] = [st.st_size, st.st_mtime_ns, digest]
    return digest


def video_record(row: dict, manifest_dir: Path, ytdlp_hosts: tuple[str, ...], cache: dict) -> dict:
    """The download record of one manifest row (``cache``: the local-source digest cache, updated)."""
    url = str(row["url"])
    base = os.path.relpath(manifest_dir.resolve(), Path.cwd())   # relative: a moved work folder keeps its records
    record = {"video_id": str(row["video_id"]), "url": url, "sha256": str(row.get("sha256") or ""),
              "synthetic": str(row.get("synthetic", "")).lower() == "true", "base_dir": base, "source": None}
    if source_kind(url, ytdlp_hosts) == "file":
        src = local_path(url, manifest_dir)
        if src.is_file():
            real = src.resolve()
            record["source"] = {"bytes": real.stat().st_size, "sha256": _cached_sha256(real, cache)}
        else:   # the download job names the missing file; the record changes once it appears
            record["source"] = {"missing": True}
    return record


def write_video_records(manifest_path: str | os.PathLike, records_dir: str | os.PathLike,
                        download_params: dict | None = None, backdate_new: bool = False) -> list[str]:
    """Write one record per manifest row into ``records_dir``, each only when its content changed.

    Returns the ids whose record was (re)written. Called by the workflow while it parses (so an unchanged
    record is never touched, not even by a job) and usable on its own. ``backdate_new``: a record that did not
    exist yet gets the manifest's mtime (what the workflow wants, below); a rule's output must not be backdated.
    """
    params = DownloadParams.from_config(download_params or {})
    manifest = load_manifest(manifest_path)
    manifest_dir = Path(manifest_path).resolve().parent
    records_dir = Path(records_dir)
    records_dir.mkdir(parents=True, exist_ok=True)
    cache_file = records_dir.parent / DIGEST_CACHE
    try:
        cache = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        cache = {}
    before = json.dumps(cache, sort_keys=True)
    # A record that did not exist yet gets the manifest's mtime, not now: a video downloaded from that row before
    # records existed (newer than the manifest) is not redone, a missing or older one is. A changed record is new.
    manifest_mtime = Path(manifest_path).stat().st_mtime_ns
    changed = []
    for row in manifest.to_dict("records"):
        record = video_record(row, manifest_dir, params.ytdlp_hosts, cache)
        text = json.dumps(record, indent=2, sort_keys=True) + "\n"
        path = record_path(records_dir, record["video_id"])
        existed = path.is_file()
        if existed and path.read_text() == text:
            continue
        # written to a temporary sibling and renamed (atomic_path rescans the folder for stale parts on every
        # call, quadratic over thousands of records)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
        try:
            tmp.write_text(text)
            if backdate_new and not existed:    # a first record is as old as the row it comes from
                os.utime(tmp, ns=(manifest_mtime, manifest_mtime))
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
        changed.append(record["video_id"])
    if json.dumps(cache, sort_keys=True) != before:
        with atomic_path(cache_file) as tmp:
            Path(tmp).write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")
    if changed:
        log.info("video records: %d of %d written to %s", len(changed), len(manifest), records_dir)
    return changed


def read_video_record(path: str | os.PathLike) -> dict:
    """A record written by ``write_video_records``, checked for the fields a download needs."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ValueError(f"{path}: unreadable video record ({err})") from err
    missing = [k for k in RECORD_FIELDS if k not in record]
    if missing:
        raise ValueError(f"{path}: video record lacks {missing}")
    if record["video_id"] != path.stem:
        raise ValueError(f"{path}: record of video {record['video_id']!r}, expected {path.stem!r}")
    return record
