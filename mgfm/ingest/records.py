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

Two ways to the files: the demo's single job writes ``{video_id}.json`` for every video
(``write_video_records``, its manifest is itself an output). A real dataset's records are computed while the
workflow is parsed (``manifest_records``, which writes nothing but the digest cache, and not even that in a dry
run) and written by one small job per video (``write_versioned_record``) under a name that carries a digest of
the content, ``{video_id}.{digest}.json``: a changed row is a new file, so its download (and all after it)
reruns whatever rerun triggers are in use, a dry run shows exactly that, and an unchanged row plans nothing.
A download job runs ``download_record``: the download stage (``mgfm.ingest.download``) on the row a record holds.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

from mgfm.common.atomic import atomic_path, write_version
from mgfm.common.digest import sha256_file
from mgfm.config.sections import from_partial
from mgfm.ingest.contract import load_manifest
from mgfm.ingest.download import DownloadParams, download_row, local_path, source_kind

log = logging.getLogger(__name__)
RECORD_FIELDS = ("video_id", "url", "sha256", "synthetic", "base_dir", "source")
DIGEST_CACHE = "source_digests.json"
DIGEST_CHARS = 16
#: {video_id}.{digest}.json: the id is everything before the last dot-separated 16 hex digits
VERSIONED_NAME = re.compile(rf"^(?P<video_id>.+)\.(?P<digest>[0-9a-f]{{{DIGEST_CHARS}}})\.json$")


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


def record_text(record: dict) -> str:
    """The exact bytes of a record file (sorted keys: equal content, equal text, equal digest)."""
    return json.dumps(record, indent=2, sort_keys=True) + "\n"


def record_digest(text: str) -> str:
    """The content digest a versioned record's name carries."""
    return hashlib.sha256(text.encode()).hexdigest()[:DIGEST_CHARS]


def versioned_record_path(records_dir: str | os.PathLike, video_id: str, text: str) -> Path:
    """``{records_dir}/{video_id}.{digest of text}.json``."""
    return Path(records_dir) / f"{video_id}.{record_digest(text)}.json"


def _load_cache(cache_file: Path) -> dict:
    try:
        return json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}


def _save_cache(cache_file: Path, cache: dict, before: str) -> None:
    if json.dumps(cache, sort_keys=True) != before:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(cache_file) as tmp:
            Path(tmp).write_text(json.dumps(cache, indent=1, sort_keys=True) + "\n")


def manifest_records(manifest_path: str | os.PathLike, records_dir: str | os.PathLike,
                     download_params: dict | None = None, update_cache: bool = True) -> dict[str, str]:
    """video_id -> record text of every manifest row, computed without writing any record.

    Local sources are hashed through the digest cache beside ``records_dir``; ``update_cache`` False (a dry
    run, or a job's own parse of the workflow) writes nothing at all, so new hashes are then not remembered.
    """
    params = from_partial(DownloadParams, "download", download_params)
    manifest = load_manifest(manifest_path)
    manifest_dir = Path(manifest_path).resolve().parent
    cache_file = Path(records_dir).parent / DIGEST_CACHE
    cache = _load_cache(cache_file)
    before = json.dumps(cache, sort_keys=True)
    texts = {}
    for row in manifest.to_dict("records"):
        record = video_record(row, manifest_dir, params.ytdlp_hosts, cache)
        texts[record["video_id"]] = record_text(record)
    if update_cache:
        _save_cache(cache_file, cache, before)
    return texts


def write_versioned_record(path: str | os.PathLike, text: str) -> None:
    """Write one versioned record (its name must carry the digest of ``text``) and remove the video's older
    versions beside it, so the folder holds one record per video."""
    path = Path(path)
    m = VERSIONED_NAME.match(path.name)
    if not m or m["digest"] != record_digest(text):
        raise ValueError(f"{path}: the name must be {{video_id}}.{record_digest(text)}.json for this content")
    record = json.loads(text)
    if record.get("video_id") != m["video_id"]:
        raise ValueError(f"{path}: record of video {record.get('video_id')!r}, expected {m['video_id']!r}")
    write_version(path, text, VERSIONED_NAME, "video_id")


def write_video_records(manifest_path: str | os.PathLike, records_dir: str | os.PathLike,
                        download_params: dict | None = None, backdate_new: bool = False) -> list[str]:
    """Write one record per manifest row into ``records_dir``, each only when its content changed.

    Returns the ids whose record was (re)written. The demo's records job (``mgfm ingest records``) calls it;
    usable on its own. ``backdate_new``: a record that did not
    exist yet gets the manifest's mtime (what the workflow wants, below); a rule's output must not be backdated.
    """
    params = from_partial(DownloadParams, "download", download_params)
    manifest = load_manifest(manifest_path)
    manifest_dir = Path(manifest_path).resolve().parent
    records_dir = Path(records_dir)
    records_dir.mkdir(parents=True, exist_ok=True)
    cache_file = records_dir.parent / DIGEST_CACHE
    cache = _load_cache(cache_file)
    before = json.dumps(cache, sort_keys=True)
    # A record that did not exist yet gets the manifest's mtime, not now: a video downloaded from that row before
    # records existed (newer than the manifest) is not redone, a missing or older one is. A changed record is new.
    manifest_mtime = Path(manifest_path).stat().st_mtime_ns
    changed = []
    for row in manifest.to_dict("records"):
        record = video_record(row, manifest_dir, params.ytdlp_hosts, cache)
        text = record_text(record)
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
    _save_cache(cache_file, cache, before)
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
    versioned = VERSIONED_NAME.match(path.name)
    expected = versioned["video_id"] if versioned and record["video_id"] != path.stem else path.stem
    if record["video_id"] != expected:
        raise ValueError(f"{path}: record of video {record['video_id']!r}, expected {expected!r}")
    return record


def download_record(record_path: str | Path, out_video: str | Path, out_meta: str | Path,
                    params: DownloadParams | dict | None = None, threads: int = 1) -> dict:
    """``download_video`` from a per-video record instead of the whole manifest: what a download job runs."""
    record = read_video_record(record_path)
    return download_row(record, Path(record["base_dir"]).resolve(), out_video, out_meta, params, threads)
