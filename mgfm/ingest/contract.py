"""The dataset contract: the manifest, annotation and taxonomy tables, loaded and checked.

Every stage reads the tables through these loaders, so a malformed release fails here, before any job
starts, with one message naming the file, the 1-based data row (header not counted) and the column.
Nothing about the classes is hard-coded: their ids, names and count come from the taxonomy table.

Tables are CSV or Parquet. Columns beyond the contract's are kept (and ignored).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from mgfm.core.constants import VIDEO_ID_PATTERN

# An id names files (results/videos/{video_id}.mp4): it can never contain a separator or start with a dot.
ID_PATTERN = VIDEO_ID_PATTERN
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")

OUTCOMES = ("win", "lose")
SUBSETS = ("labeled", "unlabeled")
SPLITS = ("train", "test")
GROUPS = ("Head", "Body", "Hand", "Body-Hand", "Head-Hand", "non-MG")

MANIFEST_REQUIRED = ("video_id", "url", "subject_id", "outcome", "subset", "split")
MANIFEST_OPTIONAL = ("sha256",)
ANNOTATION_REQUIRED = ("video_id", "class_id", "start_frame", "end_frame")
#: The tables' columns without labels (no url, outcome or class): what the label-free stages read
#: (``mgfm.ingest.views``), so a corrected outcome or class reruns none of them.
VIDEO_COLUMNS = ("video_id", "subject_id", "subset", "split")
INTERVAL_COLUMNS = ("video_id", "start_frame", "end_frame")
TAXONOMY_REQUIRED = ("class_id", "name", "group")

#: Schemes a manifest url may have besides none (a local path): the ingest stage fetches nothing else.
URL_SCHEMES = ("file", "http", "https")
URL_HELP = "use a local path, file://, http:// or https://"

# At most this many problems are listed in one error; the first one always leads the message.
MAX_LISTED_ERRORS = 20


class DatasetError(ValueError):
    """A dataset table breaks the contract; ``problems`` lists every finding (file, row, column, what)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        shown = self.problems[:MAX_LISTED_ERRORS]
        text = shown[0]
        if len(self.problems) > 1:
            more = len(self.problems) - len(shown)
            text += f"\n({len(self.problems)} problems in all" + (f", first {len(shown)} listed" if more else "")
            text += "):\n  " + "\n  ".join(shown)
        super().__init__(text)


class _Problems:
    """Collects findings with a uniform ``file: row N, column 'c': what`` prefix."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[str] = []

    def add(self, row: int | None, column: str | None, what: str) -> None:
        where = [self.source]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        self.items.append(", ".join(where) + f": {what}")

    def raise_if_any(self) -> None:
        if self.items:
            raise DatasetError(self.items)


# ---- reading -------------------------------------------------------------------------------------------


#: Columns whose cells are kept exactly as written: an id with surrounding whitespace is an invalid id, not
#: silently another one (it would no longer match the file names and tables that use the written id).
ID_COLUMNS = ("video_id", "subject_id")


def _cell_text(value: object, strip: bool = True) -> str:
    """One cell as text (stripped unless ``strip`` is False): missing -> '', integral floats -> '12'."""
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isnan(value):
            return ""
        if value.is_integer():
            return str(int(value))
    if value is pd.NA or value is pd.NaT:
        return ""
    return str(value).strip() if strip else str(value)


def _id_problem(value: str) -> str | None:
    """Why ``value`` is not a valid id, or None."""
    if value != value.strip():
        return f"invalid id {value!r}: leading or trailing whitespace"
    if not ID_PATTERN.fullmatch(value):
        return f"invalid id {value!r}: must match {ID_PATTERN.pattern}"
    return None


def read_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet table as text cells (no type guessing: the loaders parse each column)."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError([f"{path}: file not found"])
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        elif suffix in (".parquet", ".pq"):
            frame = pd.read_parquet(path)
        else:
            raise DatasetError([f"{path}: unsupported table format '{suffix}' (use .csv or .parquet)"])
    except DatasetError:
        raise
    except Exception as err:  # pandas/pyarrow raise many types for unreadable files
        raise DatasetError([f"{path}: cannot read table: {err}"]) from err
    frame.columns = [str(c).strip() for c in frame.columns]
    text = pd.DataFrame({c: [_cell_text(v, strip=c not in ID_COLUMNS) for v in frame[c].tolist()]
                         for c in frame.columns},
                        index=pd.RangeIndex(len(frame)), dtype=object)
    return text


def _require_columns(frame: pd.DataFrame, required: Iterable[str], problems: _Problems) -> None:
    missing = [c for c in required if c not in frame.columns]
    if missing:
        problems.add(None, None, f"missing column(s) {', '.join(repr(c) for c in missing)} "
                                 f"(found: {', '.join(frame.columns) or 'none'})")
        problems.raise_if_any()
    if frame.empty:
        problems.add(None, None, "the table has no data rows")
        problems.raise_if_any()


def _parse_int(text: str, row: int, column: str, problems: _Problems, minimum: int = 0) -> int | None:
    try:
        value = int(text)
    except ValueError:
        problems.add(row, column, f"expected an integer, got {text!r}")
        return None
    if value < minimum:
        problems.add(row, column, f"must be >= {minimum}, got {value}")
        return None
    return value


def _check_unique(values: list, column: str, problems: _Problems) -> None:
    """Report every repeat of a value (``None`` = unparsable, already reported) with its first row."""
    first_row: dict[object, int] = {}
    for i, value in enumerate(values, start=1):
        if value is None:
            continue
        if value in first_row:
            problems.add(i, column, f"duplicate {value!r} (first in row {first_row[value]})")
        else:
            first_row.setdefault(value, i)


def url_problem(url: str) -> str | None:
    """Why a manifest ``url`` cannot be fetched, or None: an unsupported scheme, a control character, or
    whitespace in an http(s) url (it must be percent-encoded there; a local file name may hold spaces)."""
    bad = [c for c in url if not c.isprintable()]
    if bad:
        return f"holds a control character ({', '.join(f'U+{ord(c):04X}' for c in bad[:3])})"
    scheme = urlsplit(url).scheme.lower()
    if len(scheme) == 1 and url[1:3] in (":\\", ":/"):      # C:\ on Windows: a local path
        return None
    if scheme and scheme not in URL_SCHEMES:
        return f"unsupported url scheme {scheme!r} ({URL_HELP})"
    if scheme in ("http", "https") and any(c.isspace() for c in url):
        return "holds whitespace (percent-encode it in an http(s) url: %20)"
    return None


def _finish(frame: pd.DataFrame, path: Path) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame.attrs["source"] = str(path)  # index + 1 is the data row in that file
    return frame


# ---- the three tables ----------------------------------------------------------------------------------


def load_manifest(path: str | Path, labels: bool = True) -> pd.DataFrame:
    """Load and check the manifest: one row per video, string columns, ``sha256`` '' when not given.

    ``labels=False`` loads only the label-free columns (``VIDEO_COLUMNS``; a full manifest or its label-free view
    written by ``mgfm.ingest.views``), for the stages that must not depend on sources or outcomes.
    """
    path = Path(path)
    frame = read_table(path)
    problems = _Problems(str(path))
    _require_columns(frame, MANIFEST_REQUIRED if labels else VIDEO_COLUMNS, problems)
    if labels:
        if "sha256" not in frame.columns:
            frame["sha256"] = ""
        frame["sha256"] = frame["sha256"].str.lower()

    for i, rec in enumerate(frame.to_dict("records"), start=1):
        if (why := _id_problem(rec["video_id"])) is not None:
            problems.add(i, "video_id", why)
        if labels and not rec["url"]:
            problems.add(i, "url", "empty")
        elif labels and (why := url_problem(rec["url"])) is not None:
            problems.add(i, "url", why)
        if labels and rec["sha256"] and not SHA256_PATTERN.match(rec["sha256"]):
            problems.add(i, "sha256", f"not a 64-digit hex SHA-256: {rec['sha256']!r}")
        if not rec["subject_id"].strip():
            problems.add(i, "subject_id", "empty")
        elif rec["subject_id"] != rec["subject_id"].strip():
            problems.add(i, "subject_id", f"invalid id {rec['subject_id']!r}: leading or trailing whitespace")
        if labels and rec["outcome"] not in OUTCOMES:
            problems.add(i, "outcome", f"must be one of {', '.join(OUTCOMES)}, got {rec['outcome']!r}")
        if rec["subset"] not in SUBSETS:
            problems.add(i, "subset", f"must be one of {', '.join(SUBSETS)}, got {rec['subset']!r}")
        elif rec["subset"] == "labeled" and rec["split"] not in SPLITS:
            problems.add(i, "split", f"labeled videos need split train or test, got {rec['split']!r}")
        elif rec["subset"] == "unlabeled" and rec["split"]:
            problems.add(i, "split", f"must be empty for unlabeled videos, got {rec['split']!r}")
    _check_unique(frame["video_id"].tolist(), "video_id", problems)

    # subject-disjoint splits: name the first row of each subject on the test side that is also in train
    train_rows: dict[str, int] = {}
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        if rec["subset"] == "labeled" and rec["split"] == "train":
            train_rows.setdefault(rec["subject_id"], i)
    reported: set[str] = set()
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        subject = rec["subject_id"]
        if rec["subset"] == "labeled" and rec["split"] == "test" and subject in train_rows \
                and subject not in reported:
            reported.add(subject)
            problems.add(i, "subject_id", f"subject {subject!r} is in the test split and in the train split "
                                          f"(row {train_rows[subject]}): splits must be subject-disjoint")
    problems.raise_if_any()
    return _finish(frame, path)


def load_taxonomy(path: str | Path) -> pd.DataFrame:
    """Load and check the taxonomy: unique integer ``class_id``, non-empty ``name``, a known body-part ``group``."""
    path = Path(path)
    frame = read_table(path)
    problems = _Problems(str(path))
    _require_columns(frame, TAXONOMY_REQUIRED, problems)
    ids: list[int | None] = []
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        ids.append(_parse_int(rec["class_id"], i, "class_id", problems))
        if not rec["name"]:
            problems.add(i, "name", "empty")
        if rec["group"] not in GROUPS:
            problems.add(i, "group", f"must be one of {', '.join(GROUPS)}, got {rec['group']!r}")
    _check_unique(ids, "class_id", problems)
    _check_unique(frame["name"].tolist(), "name", problems)
    problems.raise_if_any()
    frame["class_id"] = pd.Series(ids, dtype="int64")
    return _finish(frame, path)


def load_annotations(path: str | Path, manifest: pd.DataFrame | None = None,
                     taxonomy: pd.DataFrame | None = None, labels: bool = True) -> pd.DataFrame:
    """Load and check the MG instances (frames inclusive, at the normalised frame rate).

    With ``manifest``, every video id must be a labeled video of it; with ``taxonomy``, every class id
    must be one of its classes. Frame columns and ``class_id`` become int64. ``labels=False`` loads only the
    intervals (``INTERVAL_COLUMNS``; an annotation table or its label-free view), without ``class_id``.
    """
    path = Path(path)
    frame = read_table(path)
    problems = _Problems(str(path))
    _require_columns(frame, ANNOTATION_REQUIRED if labels else INTERVAL_COLUMNS, problems)
    if not labels:
        frame = frame[list(INTERVAL_COLUMNS)].copy()
    subset_of = dict(zip(manifest["video_id"], manifest["subset"])) if manifest is not None else None
    classes = set(int(c) for c in taxonomy["class_id"]) if taxonomy is not None else None
    parsed: dict[str, list[int | None]] = {"class_id": [], "start_frame": [], "end_frame": []}
    if not labels:
        del parsed["class_id"]
    for i, rec in enumerate(frame.to_dict("records"), start=1):
        video = rec["video_id"]
        if (why := _id_problem(video)) is not None:
            problems.add(i, "video_id", why)
        elif subset_of is not None:
            if video not in subset_of:
                problems.add(i, "video_id", f"video {video!r} is not in the manifest")
            elif subset_of[video] != "labeled":
                problems.add(i, "video_id", f"video {video!r} is {subset_of[video]} in the manifest; "
                                            "only labeled videos have annotations")
        for column in parsed:
            parsed[column].append(_parse_int(rec[column], i, column, problems))
        cls = parsed["class_id"][-1] if labels else None
        start, end = parsed["start_frame"][-1], parsed["end_frame"][-1]
        if classes is not None and cls is not None and cls not in classes:
            problems.add(i, "class_id", f"class {cls} is not in the taxonomy")
        if start is not None and end is not None and start > end:
            problems.add(i, "end_frame", f"end_frame {end} is before start_frame {start}")
    problems.raise_if_any()
    for column, values in parsed.items():
        frame[column] = pd.Series(values, dtype="int64")
    return _finish(frame, path)


# ---- whole-dataset checks ------------------------------------------------------------------------------


def validate_dataset(manifest_path: str | Path, annotations_path: str | Path,
                     taxonomy_path: str | Path) -> dict:
    """Load the three tables with their cross-checks; return summary counts (the validated.json content)."""
    manifest = load_manifest(manifest_path)
    taxonomy = load_taxonomy(taxonomy_path)
    annotations = load_annotations(annotations_path, manifest=manifest, taxonomy=taxonomy)
    labeled = manifest[manifest["subset"] == "labeled"]
    check_splits(manifest, annotations)
    per_split = {}
    for split in SPLITS:
        videos = labeled[labeled["split"] == split]
        per_split[split] = {
            "videos": len(videos),
            "subjects": int(videos["subject_id"].nunique()),
            "instances": len(annotations[annotations["video_id"].isin(videos["video_id"])]),
        }
    unlabeled = manifest[manifest["subset"] == "unlabeled"]
    return {
        "manifest": str(manifest_path),
        "annotations": str(annotations_path),
        "taxonomy": str(taxonomy_path),
        "videos": len(manifest),
        "subjects": int(manifest["subject_id"].nunique()),
        "labeled_videos": len(labeled),
        "unlabeled_videos": len(unlabeled),
        "outcomes": {o: len(manifest[manifest["outcome"] == o]) for o in OUTCOMES},
        "splits": per_split,
        "classes": len(taxonomy),
        "groups": {g: len(taxonomy[taxonomy["group"] == g]) for g in GROUPS},
        "instances": len(annotations),
        "labeled_videos_without_instances": sorted(set(labeled["video_id"]) - set(annotations["video_id"])),
    }


def check_splits(manifest: pd.DataFrame, annotations: pd.DataFrame) -> None:
    """The labeled set needs both splits, and MG instances in its train split.

    Sampling draws clip durations from the train split's instances and evaluation trains on the train split
    and tests on the test split; without this check a release lacking one fails only at sampling, after
    every download and pose job.
    """
    problems = _Problems(manifest.attrs.get("source", "manifest"))
    labeled = manifest[manifest["subset"] == "labeled"]
    if labeled.empty:
        problems.add(None, "subset", "no labeled videos: evaluation and the duration prior need labeled "
                                     "videos with split train and test")
        problems.raise_if_any()
    for split in SPLITS:
        if not (labeled["split"] == split).any():
            problems.add(None, "split", f"none of the {len(labeled)} labeled videos has split {split!r}; "
                                        "the labeled set needs both train and test videos")
    train_ids = set(labeled.loc[labeled["split"] == "train", "video_id"])
    if train_ids and not annotations["video_id"].isin(train_ids).any():
        source = annotations.attrs.get("source", "annotations")
        problems.add(None, None, f"{source} has no MG instance of a train-split video: the clips stage's "
                                 "duration prior (clips.prior: train_split) is made of them")
    problems.raise_if_any()


def check_annotations_in_videos(annotations: pd.DataFrame, video_meta: Mapping[str, Mapping]) -> dict:
    """After download: every annotated interval must lie inside its normalised video (frames 0..frames-1).

    ``video_meta`` maps video id -> the ingest stage's metadata (needs ``frames``). Errors name the
    annotation row; returns per-video counts of checked instances.
    """
    problems = _Problems(annotations.attrs.get("source", "annotations"))
    checked: dict[str, int] = {}
    for index, rec in zip(annotations.index, annotations.to_dict("records")):
        row = int(index) + 1
        video = rec["video_id"]
        meta = video_meta.get(video)
        if meta is None:
            problems.add(row, "video_id", f"no downloaded metadata for video {video!r}")
            continue
        frames = int(meta["frames"])
        for column in ("start_frame", "end_frame"):
            if int(rec[column]) >= frames:
                problems.add(row, column, f"{column} {int(rec[column])} is outside video {video!r}, "
                                          f"which has {frames} frames (0..{frames - 1})")
        checked[video] = checked.get(video, 0) + 1
    problems.raise_if_any()
    return checked
