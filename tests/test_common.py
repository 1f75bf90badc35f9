"""Shared helpers: atomic outputs, seeding, progress, keypoint layout and streams, pose/packed/feature stores."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from mgfm.core.packed import META_COLUMNS, PackedWriter, open_packed, write_packed
from mgfm.common.atomic import atomic_dir, atomic_path, remove_stale_parts
from mgfm.common.logs import Progress
from mgfm.common.seeding import derive_seed, rng_for
from mgfm.core.feature_store import read_feature_info, read_features, write_features
from mgfm.core import layout as L
from mgfm.core.pose_store import PoseFrames, PoseWriter, read_pose, read_pose_meta, read_scores


def test_atomic_path_renames_on_success_and_cleans_on_failure(tmp_path):
    out = tmp_path / "sub" / "a.mp4"
    with atomic_path(out) as tmp:
        assert tmp.suffix == ".mp4" and tmp.parent == out.parent and tmp != out
        tmp.write_text("x")
        assert not out.exists()
    assert out.read_text() == "x"
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "b.txt") as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "ds"
    with atomic_dir(out) as tmp:
        (tmp / "f").write_text("1")
    with pytest.raises(KeyError):
        with atomic_dir(out) as tmp:
            (tmp / "f").write_text("2")
            raise KeyError
    assert (out / "f").read_text() == "1"
    assert [p.name for p in tmp_path.iterdir()] == ["ds"]


def test_stale_temporaries_of_a_killed_job_are_removed_by_the_next_writer(tmp_path):
    import tempfile

    out = tmp_path / "v.b.mp4"
    # what a SIGKILLed atomic_path / atomic_dir / download job leaves: zero-byte parts and a temp folder
    stale = [Path(tempfile.mkstemp(prefix=".v.b.", suffix=".part.mp4", dir=tmp_path)[1]) for _ in range(2)]
    stale_dir = Path(tempfile.mkdtemp(prefix=".v.b.mp4.", suffix=".part", dir=tmp_path))
    (stale_dir / "x").write_text("partial")
    # temporaries of other outputs in the same folder stay: a shorter stem, another extension, a running job
    others = [Path(tempfile.mkstemp(prefix=".v.", suffix=".part.b", dir=tmp_path)[1]),
              Path(tempfile.mkstemp(prefix=".v.b.", suffix=".part.json", dir=tmp_path)[1]),
              Path(tempfile.mkstemp(prefix=".v.b.mp4x.", suffix=".part", dir=tmp_path)[1]),
              tmp_path / "v.b.mp4.part"]
    others[-1].write_text("not ours")
    with atomic_path(out) as tmp:
        assert not any(p.exists() for p in stale) and not stale_dir.exists()
        tmp.write_text("x")
    assert out.read_text() == "x" and all(p.exists() for p in others)
    folder = tmp_path / "ds"
    left = Path(tempfile.mkdtemp(prefix=".ds.", suffix=".part", dir=tmp_path))
    assert remove_stale_parts(folder) == [left] and not left.exists()
    assert remove_stale_parts(tmp_path / "missing" / "x.csv") == []


def test_seeds_depend_only_on_their_keys():
    assert derive_seed(1, "clips", "v1") == derive_seed(1, "clips", "v1")
    assert len({derive_seed(1, "clips", "v1"), derive_seed(2, "clips", "v1"), derive_seed(1, "clips", "v2"),
                derive_seed(1, "pose", "v1")}) == 4
    # key boundaries matter: ("ab", "c") is not ("a", "bc")
    assert derive_seed(0, "ab", "c") != derive_seed(0, "a", "bc")
    assert rng_for(3, "x").integers(1 << 30) == rng_for(3, "x").integers(1 << 30)


def test_derived_seeds_are_pinned():
    """Every stage's randomness comes from derive_seed: a change of its hash or key encoding must show up here
    (and be a deliberate decision), not silently change every sampled clip, split and trained weight."""
    assert derive_seed(0) == 8493733112532773764
    assert derive_seed(0, "clips", "v001") == 2323565265651049584
    assert derive_seed(7, "eval", 3) == 985494084692519149
    assert derive_seed(11, "eval", "finetune", "joint", 0) == 4430094280952928026
    assert rng_for(1, "clips", "v1").integers(1 << 30, size=3).tolist() == [981033092, 764970380, 696596974]


def test_progress_logs_rate_and_eta(caplog):
    caplog.set_level(logging.INFO)
    bar = Progress(10, "frames", unit="frame", interval=0.0)
    bar.update(5)
    bar.close()
    assert "5/10 frame (50%)" in caplog.records[0].message and "ETA" in caplog.records[0].message
    assert "5 frame in" in caplog.records[-1].message


def test_layout_subset_bones_and_anchors():
    assert L.NUM_JOINTS == len(set(L.UPPER_BODY)) == 63
    assert all(0 <= k < L.NUM_KEYPOINTS for k in L.UPPER_BODY)
    assert [L.UPPER_BODY[i] for i in L.SUBSET_FACE_ANCHORS] == list(L.FACE_ANCHORS) == [0, 1, 2, 3, 4]
    assert [L.UPPER_BODY[i] for i in L.SUBSET_SHOULDERS] == [5, 6]
    # the parent graph is a tree rooted at the nose: every joint reaches the root without cycles
    for j in range(L.NUM_JOINTS):
        seen = set()
        while L.PARENTS[j] != j:
            assert j not in seen
            seen.add(j)
            j = L.PARENTS[j]
        assert L.UPPER_BODY[j] == L.NOSE
    assert len(L.BONES) == L.NUM_JOINTS - 1


def test_streams_differ_and_match_between_numpy_and_torch():
    rng = np.random.default_rng(0)
    x = rng.random((2, 3, 6, L.NUM_JOINTS)).astype(np.float32)
    joint, bone, motion = (L.to_stream(x, s) for s in L.STREAMS)
    assert not np.allclose(joint, bone) and not np.allclose(joint, motion) and not np.allclose(bone, motion)
    child, parent = L.BONES[5]
    np.testing.assert_allclose(bone[:, :2, :, child], x[:, :2, :, child] - x[:, :2, :, parent])
    np.testing.assert_allclose(motion[:, :2, 2], x[:, :2, 3] - x[:, :2, 2])
    assert (motion[:, :, -1] == 0).all()
    for s in L.STREAMS:
        np.testing.assert_allclose(L.to_stream(torch.from_numpy(x), s).numpy(), L.to_stream(x, s))
    with pytest.raises(ValueError, match="unknown stream"):
        L.to_stream(x, "velocity")


def _frames(start: int, n: int, rng) -> PoseFrames:
    return PoseFrames(np.arange(start, start + n), rng.random((n, 4)), np.ones(n), rng.random((n, 133, 2)) * 300,
                      rng.random((n, 133)))


def test_pose_store_roundtrip_and_range_reads(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "v.parquet"
    batches = [_frames(s, 500, rng) for s in range(0, 5000, 500)]
    with PoseWriter(path, {"backend": "test", "fps": 25}) as writer:
        for b in batches:
            writer.write(b)
    meta = read_pose_meta(path)
    assert meta["n_frames"] == 5000 and meta["layout"] == L.LAYOUT_NAME and meta["backend"] == "test"
    clip = read_pose(path, 2100, 2199)
    np.testing.assert_array_equal(clip.frame, np.arange(2100, 2200))
    np.testing.assert_allclose(clip.xy, batches[4].xy[100:200].astype(np.float32))  # exact float32 coordinates
    frames, scores = read_scores(path, L.FACE_ANCHORS)
    assert scores.shape == (5000, 5)
    np.testing.assert_allclose(scores[:500], batches[0].score[:, :5].astype(np.float32))


def test_pose_writer_leaves_nothing_on_failure(tmp_path):
    with pytest.raises(RuntimeError):
        with PoseWriter(tmp_path / "v.parquet", {}) as writer:
            writer.write(_frames(0, 3000, np.random.default_rng(0)))
            raise RuntimeError("decoder died")
    assert list(tmp_path.iterdir()) == []


def _meta(n: int) -> pd.DataFrame:
    return pd.DataFrame({c: [f"{c}{i}" for i in range(n)] for c in META_COLUMNS}).assign(label=range(n))


def test_packed_roundtrip_and_errors(tmp_path):
    data = np.random.default_rng(0).random((4, 3, 8, 5)).astype(np.float32)
    write_packed(tmp_path / "a", data, _meta(4), {"T": 8})
    arr, meta = open_packed(tmp_path / "a")
    assert isinstance(arr, np.memmap) and arr.shape == data.shape
    np.testing.assert_array_equal(arr, data)
    with pytest.raises(ValueError, match="metadata"):
        write_packed(tmp_path / "b", data, _meta(3))
    with PackedWriter(tmp_path / "c", (2, 3), np.uint8) as w:
        w.data[:] = 7
        w.finish(_meta(2))
    assert open_packed(tmp_path / "c")[0].sum() == 42
    with pytest.raises(RuntimeError, match="finish"):
        with PackedWriter(tmp_path / "d", (2, 3), np.uint8):
            pass
    assert not (tmp_path / "d").exists() and not (tmp_path / "b").exists()
    with pytest.raises(FileNotFoundError, match="not a packed dataset"):
        open_packed(tmp_path / "d")


def test_feature_store_roundtrip(tmp_path):
    feats = np.random.default_rng(0).random((4, 16)).astype(np.float32)
    write_features(tmp_path / "f.parquet", _meta(4), feats, {"stream": "bone"})
    meta, back = read_features(tmp_path / "f.parquet")
    np.testing.assert_array_equal(back, feats)
    assert list(meta["clip_id"]) == [f"clip_id{i}" for i in range(4)]
    assert read_feature_info(tmp_path / "f.parquet") == {"stream": "bone"}
    with pytest.raises(ValueError):
        write_features(tmp_path / "g.parquet", _meta(3), feats)
