"""Content records: what a workflow step reads of a large artifact is its content, never its modification time.

Snakemake reruns a job when an input is newer than its outputs, and compares content only for files under
1 MB. A pose file, a video, a packed dataset or an encoder that is rewritten with the same bytes (a rerun that
came out identical, a copy, a restore, a touch) therefore reran everything after it: pretraining included.

So a large artifact gets a small record ``{results}/content/<artifact path>.json`` holding its sha256 (a folder:
the sha256 of its files' names and digests), and a step that reads the artifact declares the artifact as
``ancient`` (its time never triggers anything) plus the record (its time does):

- the job that makes the artifact writes the record too (``mgfm content record``), so rerunning that job
  reruns what reads it, as before;
- when the workflow is parsed, ``refresh_records`` compares each artifact with its record. Only an artifact
  whose size or mtime differs from the recorded one is hashed again. Same content: the record's stat is
  updated and its mtime kept, so nothing reruns. Other content (the file was changed outside the workflow), or
  no record at all (results made before records existed, or a removed record): the record is written as new,
  so every reader reruns (nothing says what they read). An unreadable record (an empty one of
  ``snakemake --touch``, which marks everything up to date) is rewritten with its mtime kept.

``refresh_record(write=False)`` writes nothing and says what a write would do (a dry run plans with that).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path

from mgfm.common.digest import sha256_file

log = logging.getLogger(__name__)

#: Files inside a folder artifact that are not its content (Snakemake's own marker of directory outputs).
IGNORED = frozenset({".snakemake_timestamp"})
FORMAT = "mgfm-content/1"


def record_path(artifact: str, results: str) -> str:
    """Where the record of ``artifact`` (a path under ``results``, possibly with wildcards) lives."""
    rel = os.path.relpath(artifact, results)
    if rel.startswith(".."):
        raise ValueError(f"{artifact}: a content record covers artifacts under {results} only")
    return os.path.join(results, "content", rel + ".json")


def _files(artifact: Path) -> list[tuple[str, Path]]:
    """(name, path) of every content file of an artifact, sorted: the file itself, or a folder's files."""
    if artifact.is_file():
        return [(".", artifact)]
    out = []
    for dirpath, dirnames, filenames in os.walk(artifact):
        dirnames.sort()
        for name in filenames:
            if name in IGNORED:
                continue
            path = Path(dirpath) / name
            out.append((path.relative_to(artifact).as_posix(), path))
    return sorted(out)


def describe(artifact: str | os.PathLike, known: dict | None = None) -> dict:
    """The record of ``artifact``: its digest and each file's (name, bytes, mtime_ns, sha256). ``known``: the
    files of an earlier record, whose sha256 is reused where a file's bytes and mtime are unchanged."""
    artifact = Path(artifact)
    known = {f[0]: f for f in (known or {}).get("files", [])}
    files = []
    for name, path in _files(artifact):
        st = path.stat()
        old = known.get(name)
        same = old is not None and old[1] == st.st_size and old[2] == st.st_mtime_ns
        files.append([name, st.st_size, st.st_mtime_ns, old[3] if same else sha256_file(path)])
    if artifact.is_file():
        digest = files[0][3]
    else:
        digest = hashlib.sha256("".join(f"{f[0]}\0{f[3]}\n" for f in files).encode()).hexdigest()
    return {"format": FORMAT, "sha256": digest, "files": files}


def _stat(record: dict) -> list:
    return [f[:3] for f in record.get("files", [])]


def _current_stat(artifact: Path) -> list:
    return [[name, (st := path.stat()).st_size, st.st_mtime_ns] for name, path in _files(artifact)]


def _write(record_file: Path, record: dict, mtime_ns: int | None = None) -> None:
    record_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = record_file.with_name(f".{record_file.name}.{os.getpid()}.part")
    try:
        tmp.write_text(json.dumps(record, indent=1) + "\n")
        if mtime_ns is not None:
            os.utime(tmp, ns=(mtime_ns, mtime_ns))
        os.replace(tmp, record_file)
    finally:
        tmp.unlink(missing_ok=True)


def write_record(artifact: str | os.PathLike, record_file: str | os.PathLike) -> dict:
    """Hash ``artifact`` and write its record (the job that made the artifact calls this)."""
    artifact = Path(artifact)
    if not artifact.exists():
        raise FileNotFoundError(f"{artifact}: no such artifact to record")
    record = describe(artifact)
    _write(Path(record_file), record)
    return record


def _read(record_file: Path) -> dict | None:
    try:
        record = json.loads(record_file.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and record.get("format") == FORMAT else None


def refresh_record(artifact: str | os.PathLike, record_file: str | os.PathLike, write: bool = True) -> str | None:
    """Bring one record up to date with its artifact (see the module docstring); return what happened: None
    (nothing to do), "restat" (same content, the record's time kept), "repaired" (an unreadable record
    rewritten, its time kept), "created" (no record: a new one) or "changed" (other content: a new record).
    "created" and "changed" make the record newer than anything that read the artifact. ``write=False``
    writes nothing and returns what a write would do."""
    artifact, record_file = Path(artifact), Path(record_file)
    if not artifact.exists():
        return None                          # the job that makes it runs, and writes the record
    if not record_file.exists():
        if write:
            _write(record_file, describe(artifact))
        return "created"
    record = _read(record_file)
    if record is None:                       # e.g. `snakemake --touch` made it empty: kept as up to date
        if write:
            _write(record_file, describe(artifact), record_file.stat().st_mtime_ns)
        return "repaired"
    if _current_stat(artifact) == _stat(record):
        return None
    new = describe(artifact, record)
    if new["sha256"] == record["sha256"]:
        if write:                            # same content: only the stat, and the record keeps its time
            _write(record_file, new, record_file.stat().st_mtime_ns)
        return "restat"
    if write:                                # changed outside the workflow: newer than anything that read it
        _write(record_file, new, _newer_than(record_file))
    return "changed"


def _newer_than(record_file: Path) -> int:
    """A record time after now and after the record's present one (clocks of network file systems may lag)."""
    return max(time.time_ns(), record_file.stat().st_mtime_ns + 1)


def refresh_records(pairs: Iterable[tuple[str, str]], write: bool = True) -> dict[str, list[str]]:
    """``refresh_record`` for every (artifact, record) pair; returns the artifacts per outcome."""
    done: dict[str, list[str]] = {}
    for artifact, record_file in pairs:
        outcome = refresh_record(artifact, record_file, write)
        if outcome is not None:
            done.setdefault(outcome, []).append(str(artifact))
    for outcome, why in (("changed", "changed outside the workflow"), ("created", "have no content record")):
        if done.get(outcome):
            shown = ", ".join(done[outcome][:5]) + (" ..." if len(done[outcome]) > 5 else "")
            log.warning("%d artifact(s) %s, so what reads them reruns: %s", len(done[outcome]), why, shown)
    return done
