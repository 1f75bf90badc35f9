"""The dataset contract: every validation error names the file, the 1-based data row and the column."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from mgfm.ingest.contract import (
    GROUPS,
    DatasetError,
    check_annotations_in_videos,
    load_annotations,
    load_manifest,
    load_taxonomy,
    validate_dataset,
)

MANIFEST = [
    # video_id, url, sha256, subject_id, outcome, subset, split
    ("v1", "file:///data/v1.mp4", "", "alice", "win", "labeled", "train"),
    ("v2", "https://example.org/v2.mp4", "ab" * 32, "bob", "lose", "labeled", "train"),
    ("v3", "raw/v3.mp4", "", "carol", "lose", "labeled", "test"),
    ("u_1.x-y", "https://www.youtube.com/watch?v=abc", "", "alice", "win", "unlabeled", ""),
]
ANNOTATIONS = [("v1", 3, 0, 10), ("v1", 7, 20, 30), ("v2", 3, 5, 5), ("v3", 12, 100, 140)]
TAXONOMY = [(3, "scratching head", "Head"), (7, "folding arms", "Body"), (12, "rubbing hands", "Hand"),
            (40, "illustrative", "non-MG")]


def write(path: Path, columns: list[str], rows: list[tuple]) -> Path:
    frame = pd.DataFrame(rows, columns=columns)
    if path.suffix == ".parquet":
        frame.to_parquet(path)
    else:
        frame.to_csv(path, index=False)
    return path


def manifest_file(tmp_path: Path, rows=MANIFEST, name="manifest.csv") -> Path:
    return write(tmp_path / name, ["video_id", "url", "sha256", "subject_id", "outcome", "subset", "split"], rows)


def annotations_file(tmp_path: Path, rows=ANNOTATIONS, name="annotations.csv") -> Path:
    return write(tmp_path / name, ["video_id", "class_id", "start_frame", "end_frame"], rows)


def taxonomy_file(tmp_path: Path, rows=TAXONOMY, name="taxonomy.csv") -> Path:
    return write(tmp_path / name, ["class_id", "name", "group"], rows)


def replace(rows, index, field, value):
    rows = [list(r) for r in rows]
    rows[index][field] = value
    return [tuple(r) for r in rows]


def assert_names(err: DatasetError, path: Path, row: int | None, column: str | None, *words: str) -> None:
    text = str(err).splitlines()[0]
    assert str(path) in text
    if row is not None:
        assert f"row {row}," in text or text.split(": ")[0].endswith(f"row {row}")
    if column is not None:
        assert f"column '{column}'" in text
    for word in words:
        assert word in text, (word, text)


# ---- valid tables ---------------------------------------------------------------------------------------


def test_valid_tables_load_with_types(tmp_path):
    manifest = load_manifest(manifest_file(tmp_path))
    taxonomy = load_taxonomy(taxonomy_file(tmp_path))
    annotations = load_annotations(annotations_file(tmp_path), manifest=manifest, taxonomy=taxonomy)
    assert manifest["video_id"].tolist() == ["v1", "v2", "v3", "u_1.x-y"]
    assert manifest["split"].tolist() == ["train", "train", "test", ""]
    assert manifest.loc[1, "sha256"] == "ab" * 32
    assert taxonomy["class_id"].dtype == "int64" and taxonomy["class_id"].tolist() == [3, 7, 12, 40]
    for column in ("class_id", "start_frame", "end_frame"):
        assert annotations[column].dtype == "int64"
    assert annotations["end_frame"].tolist() == [10, 30, 5, 140]


def test_parquet_tables_and_optional_sha256(tmp_path):
    rows = [r[:2] + r[3:] for r in MANIFEST]  # no sha256 column at all
    path = write(tmp_path / "m.parquet", ["video_id", "url", "subject_id", "outcome", "subset", "split"], rows)
    manifest = load_manifest(path)
    assert manifest["sha256"].tolist() == ["", "", "", ""]
    taxonomy = load_taxonomy(taxonomy_file(tmp_path, name="t.parquet"))
    annotations = load_annotations(annotations_file(tmp_path, name="a.parquet"), manifest, taxonomy)
    assert len(annotations) == 4 and annotations["class_id"].tolist() == [3, 7, 3, 12]


def test_class_count_and_names_come_from_the_taxonomy(tmp_path):
    rows = [(i, f"class {i}", GROUPS[i % len(GROUPS)]) for i in range(1, 33)]
    taxonomy = load_taxonomy(taxonomy_file(tmp_path, rows))
    assert len(taxonomy) == 32
    ann = annotations_file(tmp_path, [("v1", 32, 0, 1)])
    assert load_annotations(ann, load_manifest(manifest_file(tmp_path)), taxonomy)["class_id"].tolist() == [32]


def test_validate_dataset_summary(tmp_path):
    summary = validate_dataset(manifest_file(tmp_path), annotations_file(tmp_path), taxonomy_file(tmp_path))
    assert summary["videos"] == 4 and summary["labeled_videos"] == 3 and summary["unlabeled_videos"] == 1
    assert summary["splits"]["train"] == {"videos": 2, "subjects": 2, "instances": 3}
    assert summary["splits"]["test"] == {"videos": 1, "subjects": 1, "instances": 1}
    assert summary["classes"] == 4 and summary["instances"] == 4
    assert summary["outcomes"] == {"win": 2, "lose": 2}
    json.dumps(summary)


# ---- manifest errors -----------------------------------------------------------------------------------

MANIFEST_CASES = [
    # (row index, field index, bad value, column, words in the message)
    (1, 0, "../evil", "video_id", ["invalid id", "'../evil'"]),
    (1, 0, ".hidden", "video_id", ["invalid id"]),
    (2, 0, "a/b", "video_id", ["invalid id"]),
    (0, 0, "has space", "video_id", ["invalid id"]),
    (0, 1, "", "url", ["empty"]),
    (1, 2, "xyz", "sha256", ["SHA-256"]),
    (2, 3, "", "subject_id", ["empty"]),
    (0, 4, "draw", "outcome", ["win, lose", "'draw'"]),
    (1, 5, "half", "subset", ["labeled, unlabeled"]),
    (1, 6, "val", "split", ["train or test"]),
    (1, 6, "", "split", ["train or test"]),
    (3, 6, "train", "split", ["empty for unlabeled"]),
]


@pytest.mark.parametrize("row,field,value,column,words", MANIFEST_CASES)
def test_manifest_errors_name_row_and_column(tmp_path, row, field, value, column, words):
    path = manifest_file(tmp_path, replace(MANIFEST, row, field, value))
    with pytest.raises(DatasetError) as info:
        load_manifest(path)
    assert_names(info.value, path, row + 1, column, *words)


def test_duplicate_video_id(tmp_path):
    path = manifest_file(tmp_path, replace(MANIFEST, 2, 0, "v1"))
    with pytest.raises(DatasetError) as info:
        load_manifest(path)
    assert_names(info.value, path, 3, "video_id", "duplicate", "first in row 1")


def test_train_and_test_subjects_must_be_disjoint(tmp_path):
    path = manifest_file(tmp_path, replace(MANIFEST, 2, 3, "bob"))
    with pytest.raises(DatasetError) as info:
        load_manifest(path)
    assert_names(info.value, path, 3, "subject_id", "'bob'", "row 2", "subject-disjoint")


def test_unlabeled_subjects_may_repeat(tmp_path):
    assert len(load_manifest(manifest_file(tmp_path, replace(MANIFEST, 3, 3, "carol")))) == 4


def test_missing_column_and_empty_table(tmp_path):
    path = write(tmp_path / "m.csv", ["video_id", "url", "subject_id", "outcome", "subset"], [r[:2] + r[3:6] for r in MANIFEST])
    with pytest.raises(DatasetError) as info:
        load_manifest(path)
    assert_names(info.value, path, None, None, "missing column", "'split'")
    empty = manifest_file(tmp_path, [], name="empty.csv")
    with pytest.raises(DatasetError, match="no data rows"):
        load_manifest(empty)


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(DatasetError, match="file not found"):
        load_manifest(tmp_path / "nope.csv")
    other = tmp_path / "m.xlsx"
    other.write_text("x")
    with pytest.raises(DatasetError, match="unsupported table format"):
        load_manifest(other)


def test_all_problems_are_listed(tmp_path):
    rows = replace(replace(MANIFEST, 0, 4, "draw"), 2, 5, "maybe")
    with pytest.raises(DatasetError) as info:
        load_manifest(manifest_file(tmp_path, rows))
    assert len(info.value.problems) == 2
    assert "2 problems" in str(info.value) and "row 3, column 'subset'" in str(info.value)


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


# ---- taxonomy errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize("row,field,value,column,words", [
    (1, 0, "seven", "class_id", ["integer", "'seven'"]),
    (1, 0, "-1", "class_id", [">= 0"]),
    (2, 0, "3", "class_id", ["duplicate", "first in row 1"]),
    (0, 1, "", "name", ["empty"]),
    (3, 1, "folding arms", "name", ["duplicate"]),
    (2, 2, "Legs", "group", ["Head, Body, Hand, Body-Hand, Head-Hand, non-MG", "'Legs'"]),
])
def test_taxonomy_errors(tmp_path, row, field, value, column, words):
    path = taxonomy_file(tmp_path, replace(TAXONOMY, row, field, value))
    with pytest.raises(DatasetError) as info:
        load_taxonomy(path)
    assert_names(info.value, path, row + 1, column, *words)


# ---- annotation errors ---------------------------------------------------------------------------------


@pytest.mark.parametrize("row,field,value,column,words", [
    (0, 0, "v9", "video_id", ["'v9'", "not in the manifest"]),
    (1, 0, "u_1.x-y", "video_id", ["unlabeled", "only labeled"]),
    (2, 0, "../v1", "video_id", ["invalid id"]),
    (3, 1, 99, "class_id", ["class 99", "taxonomy"]),
    (1, 1, "x", "class_id", ["integer"]),
    (2, 2, -4, "start_frame", [">= 0"]),
    (2, 3, "1.5", "end_frame", ["integer"]),
    (3, 2, 150, "end_frame", ["before start_frame 150"]),
])
def test_annotation_errors(tmp_path, row, field, value, column, words):
    manifest = load_manifest(manifest_file(tmp_path))
    taxonomy = load_taxonomy(taxonomy_file(tmp_path))
    path = annotations_file(tmp_path, replace(ANNOTATIONS, row, field, value))
    with pytest.raises(DatasetError) as info:
        load_annotations(path, manifest=manifest, taxonomy=taxonomy)
    assert_names(info.value, path, row + 1, column, *words)


def test_annotations_without_cross_tables_only_check_themselves(tmp_path):
    path = annotations_file(tmp_path, replace(ANNOTATIONS, 0, 0, "v9"))
    assert len(load_annotations(path)) == 4


def test_validate_dataset_reports_cross_table_errors(tmp_path):
    ann = annotations_file(tmp_path, replace(ANNOTATIONS, 3, 1, 5))
    with pytest.raises(DatasetError) as info:
        validate_dataset(manifest_file(tmp_path), ann, taxonomy_file(tmp_path))
    assert_names(info.value, ann, 4, "class_id", "class 5")


# ---- after download ------------------------------------------------------------------------------------


def test_annotations_inside_videos(tmp_path):
    path = annotations_file(tmp_path)
    annotations = load_annotations(path)
    metas = {"v1": {"frames": 31}, "v2": {"frames": 6}, "v3": {"frames": 141}}
    assert check_annotations_in_videos(annotations, metas) == {"v1": 2, "v2": 1, "v3": 1}
    with pytest.raises(DatasetError) as info:
        check_annotations_in_videos(annotations, {**metas, "v3": {"frames": 140}})
    assert_names(info.value, path, 4, "end_frame", "140", "'v3'", "140 frames")
    with pytest.raises(DatasetError) as info:
        check_annotations_in_videos(annotations, {"v1": {"frames": 31}, "v3": {"frames": 141}})
    assert_names(info.value, path, 3, "video_id", "no downloaded metadata", "'v2'")


# ---- command line --------------------------------------------------------------------------------------


def test_cli_validate_writes_summary_or_fails_without_output(tmp_path, capsys):
    from mgfm.cli import main

    out = tmp_path / "ingest" / "validated.json"
    args = ["ingest", "validate", "--manifest", str(manifest_file(tmp_path)),
            "--annotations", str(annotations_file(tmp_path)), "--taxonomy", str(taxonomy_file(tmp_path))]
    assert main([*args, "--out", str(out)]) == 0
    assert json.loads(out.read_text())["instances"] == 4
    bad = taxonomy_file(tmp_path, replace(TAXONOMY, 0, 2, "Feet"), name="bad.csv")
    out2 = tmp_path / "dataset" / "validated2.json"
    assert main([*args[:-1], str(bad), "--out", str(out2)]) == 1
    assert not out2.exists()
    assert "bad.csv, row 1, column 'group'" in capsys.readouterr().err


# ---- ids are taken as written; the labeled set has both splits --------------------------------------------


@pytest.mark.parametrize("column,value", [("video_id", " v1"), ("video_id", "v1 "), ("video_id", "v1\t"),
                                          ("subject_id", " alice"), ("subject_id", "alice ")])
def test_ids_with_surrounding_whitespace_are_rejected_not_stripped(tmp_path, column, value):
    """A stripped id no longer names the same thing as the written one (files, annotation rows)."""
    rows = replace(MANIFEST, 0, 0 if column == "video_id" else 3, value)
    path = tmp_path / "manifest.csv"
    path.write_text("video_id,url,sha256,subject_id,outcome,subset,split\n"
                    + "".join(",".join(r) + "\n" for r in rows))
    with pytest.raises(DatasetError) as err:
        load_manifest(path)
    assert_names(err.value, path, 1, column, "whitespace", repr(value))
    parquet = manifest_file(tmp_path, rows, name="manifest.parquet")
    with pytest.raises(DatasetError, match="whitespace"):
        load_manifest(parquet)


def test_annotation_id_with_whitespace_is_rejected(tmp_path):
    path = annotations_file(tmp_path, replace(ANNOTATIONS, 2, 0, "v2 "))
    with pytest.raises(DatasetError) as err:
        load_annotations(path)
    assert_names(err.value, path, 3, "video_id", "whitespace")


def test_id_with_a_trailing_newline_is_invalid():
    from mgfm.ingest.contract import _id_problem

    assert _id_problem("v1") is None
    assert "whitespace" in _id_problem("v1\n")
    assert "must match" in _id_problem("v/1")


@pytest.mark.parametrize("change,words", [
    (lambda m: [r if r[6] != "train" else r[:6] + ("test",) for r in m], ("split 'train'",)),
    (lambda m: [r if r[6] != "test" else r[:6] + ("train",) for r in m], ("split 'test'",)),
])
def test_labeled_set_needs_both_splits(tmp_path, change, words):
    """Caught by validation, the first job, not at sampling after every download and pose job."""
    rows = [r for r in change(MANIFEST)]
    # keep the subjects disjoint after moving videos between splits
    rows = [r[:3] + (f"{r[3]}_{r[0]}",) + r[4:] if r[5] == "labeled" else r for r in rows]
    manifest = manifest_file(tmp_path, rows)
    with pytest.raises(DatasetError) as err:
        validate_dataset(manifest, annotations_file(tmp_path), taxonomy_file(tmp_path))
    assert_names(err.value, manifest, None, "split", *words)


def test_train_split_needs_instances(tmp_path):
    annotations = annotations_file(tmp_path, [a for a in ANNOTATIONS if a[0] == "v3"])
    with pytest.raises(DatasetError, match="no MG instance of a train-split video"):
        validate_dataset(manifest_file(tmp_path), annotations, taxonomy_file(tmp_path))
