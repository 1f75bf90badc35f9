"""Skeleton clip datasets: catalog and ids, fixed length and valid_len, normalisation, packed output, errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mgfm.packs.catalog import dataset_clips
from mgfm.core.packed import META_COLUMNS, open_packed, read_info
from mgfm.clips.sample import sample_clips
from mgfm.packs.skeleton import build_skeleton_pack, clip_tensors, frame_rows
from mgfm.core.layout import LEFT_SHOULDER, NUM_JOINTS, NUM_KEYPOINTS, RIGHT_SHOULDER, SUBSET_SHOULDERS, UPPER_BODY
from mgfm.core.pose_store import read_pose

from tests.support.clips import write_corpus


def test_frame_rows_pad_short_resample_or_truncate_long():
    rows, valid = frame_rows(np.array([10, 100]), np.array([12, 139]), 8, "resample")
    assert rows[0].tolist() == [10, 11, 12, 0, 0, 0, 0, 0] and valid[0].tolist() == [True] * 3 + [False] * 5
    # 40 frames into 8 steps: one frame from the middle of each fifth
    assert rows[1].tolist() == [102, 107, 112, 117, 122, 127, 132, 137] and valid[1].all()
    rows, valid = frame_rows(np.array([100]), np.array([139]), 8, "truncate")
    assert rows[0].tolist() == list(range(100, 108)) and valid.all()
    rows, valid = frame_rows(np.array([5]), np.array([12]), 8, "resample")  # exactly T frames: unchanged
    assert rows[0].tolist() == list(range(5, 13))


def still_person(n, shoulder_l=(200.0, 100.0), shoulder_r=(100.0, 100.0), score=0.9):
    xy = np.zeros((n, NUM_KEYPOINTS, 2), np.float32)
    xy[:] = np.arange(NUM_KEYPOINTS)[None, :, None] * np.array([1.0, 2.0])  # distinct positions
    xy[:, LEFT_SHOULDER] = shoulder_l
    xy[:, RIGHT_SHOULDER] = shoulder_r
    return xy, np.full((n, NUM_KEYPOINTS), score, np.float32)


SHOULDER = {"scale": "shoulder_width"}


def test_normalisation_centres_on_shoulders_and_scales_by_their_width():
    xy, score = still_person(50)
    data, valid_len, source = clip_tensors(xy, score, np.array([0, 40]), np.array([19, 44]),
                                           {"num_frames": 16, **SHOULDER}, (320, 240))
    assert data.shape == (2, 3, 16, NUM_JOINTS) and data.dtype == np.float32
    assert valid_len.tolist() == [16, 5] and source.tolist() == ["clip", "clip"]
    ls, rs = SUBSET_SHOULDERS
    assert np.allclose(data[:, 0, :5, ls], 0.5) and np.allclose(data[:, 0, :5, rs], -0.5)
    assert np.allclose(data[:, 1, :5, [ls, rs]], 0.0)
    # joint 0 (nose, raw (0, 0)) relative to midpoint (150, 100) / width 100
    assert np.allclose(data[0, :2, 0, 0], [-1.5, -1.0])
    j = UPPER_BODY.index(100)
    assert np.allclose(data[0, :2, 3, j], [(100 - 150) / 100, (200 - 100) / 100])
    # padding of the short clip: zeros everywhere, score included
    assert not data[1, :, 5:].any() and np.allclose(data[1, 2, :5], 0.9)


def test_reference_is_robust_to_bad_frames_and_falls_back():
    xy, score = still_person(100)
    # a few frames with wild, low-confidence shoulders do not move the clip's reference (median, confident only)
    xy[10:13, LEFT_SHOULDER] = (900, 900)
    score[10:13, LEFT_SHOULDER] = 0.1
    xy[13, RIGHT_SHOULDER] = (-500, 0)  # confident outlier: the median ignores one frame
    # clip 2 has no confident shoulders at all: uses the video's reference
    score[60:80, [LEFT_SHOULDER, RIGHT_SHOULDER]] = 0.04
    data, _, source = clip_tensors(xy, score, np.array([0, 60]), np.array([29, 79]), {"num_frames": 30, **SHOULDER},
                                   (320, 240))
    assert source.tolist() == ["clip", "video"]
    ls = SUBSET_SHOULDERS[0]
    assert np.allclose(data[0, 0, 20, ls], 0.5) and np.allclose(data[1, 0, 0, 0], -1.5)
    # low-scored joints (< joint_min_score) sit at the reference point, their score still says why
    assert data[1, 0, 0, ls] == 0 and data[1, 2, 0, ls] == pytest.approx(0.04)
    # no confident shoulder anywhere in the video: image centre and a third of the shorter side
    score[:, [LEFT_SHOULDER, RIGHT_SHOULDER]] = 0.0
    data, _, source = clip_tensors(xy, score, np.array([0]), np.array([9]), {"num_frames": 10, **SHOULDER},
                                   (320, 240))
    assert source.tolist() == ["image"] and np.allclose(data[0, :2, 0, 0], [(0 - 160) / 80, (0 - 120) / 80])


def test_default_scale_is_the_image_centred_on_the_shoulders():
    """The paper's reading (schema default): centred on the shoulder midpoint, divided by the frame's longer side,
    so the same framing gives the same numbers at any resolution; without a frame size it is an error."""
    xy, score = still_person(50)
    data, _, source = clip_tensors(xy, score, np.array([0]), np.array([19]), {"num_frames": 16}, (320, 240))
    ls, rs = SUBSET_SHOULDERS
    assert source.tolist() == ["clip"]
    assert np.allclose(data[0, 0, :, ls], 50 / 320) and np.allclose(data[0, 0, :, rs], -50 / 320)
    assert np.allclose(data[0, :2, 0, 0], [(0 - 150) / 320, (0 - 100) / 320])
    big, _, _ = clip_tensors(xy * 4, score, np.array([0]), np.array([19]), {"num_frames": 16}, (1280, 960))
    np.testing.assert_allclose(big, data, atol=1e-6)
    # no confident shoulder anywhere: the image centre, still the image's scale
    score[:, [LEFT_SHOULDER, RIGHT_SHOULDER]] = 0.0
    data, _, source = clip_tensors(xy, score, np.array([0]), np.array([9]), {"num_frames": 10}, (320, 240))
    assert source.tolist() == ["image"] and np.allclose(data[0, :2, 0, 0], [-160 / 320, -120 / 320])
    with pytest.raises(ValueError, match="frame size unknown.*skeleton.scale"):
        clip_tensors(xy, score, np.array([0]), np.array([9]), {"num_frames": 10}, (0, 0))


def test_default_long_clips_are_truncated():
    xy, score = still_person(200)
    xy[:, LEFT_SHOULDER, 1] = np.arange(200)        # the left shoulder's y counts frames
    xy[:, RIGHT_SHOULDER, 1] = np.arange(200)
    data, vl, _ = clip_tensors(xy, score, np.array([10]), np.array([109]), {"num_frames": 8, **SHOULDER}, (320, 240))
    ls = SUBSET_SHOULDERS[0]
    # the first 8 of 100 frames, relative to the median midpoint of those 8 (frame 13.5), in shoulder widths
    assert vl.tolist() == [8] and np.allclose(data[0, 1, :, ls], (np.arange(10, 18) - 13.5) / 100)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("skel")
    corpus = write_corpus(root, n_labeled=4, n_unlabeled=3, seed=4)
    sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], root / "clips.parquet",
                 root / "stats.csv", seed=9, params={"retry_budget": 300})
    out = {}
    for name in ("pretrain", "mg_train", "mg_test", "video_clips"):
        build_skeleton_pack(name, root / "ds" / name, corpus["pose_dir"], corpus["manifest"],
                               corpus["annotations"], root / "clips.parquet", {"num_frames": 24})
        out[name] = open_packed(root / "ds" / name)
    return corpus, root, out


def test_datasets_have_the_contracted_shapes_ids_and_labels(built):
    corpus, root, out = built
    manifest, ann = corpus["manifest_df"], corpus["annotations_df"]
    clips = pd.read_parquet(root / "clips.parquet")
    for name, (data, meta) in out.items():
        assert data.shape[1:] == (3, 24, NUM_JOINTS) and data.dtype == np.float32 and len(data) == len(meta) > 0
        assert set(META_COLUMNS) <= set(meta.columns) and meta.clip_id.is_unique
        assert (meta.valid_len == np.minimum(meta.end_frame - meta.start_frame + 1, 24)).all()
        assert read_info(root / "ds" / name)["joints"] == list(UPPER_BODY)
        subjects = dict(zip(manifest.video_id, manifest.subject_id))
        assert (meta.subject_id == meta.video_id.map(subjects)).all()
    pre = out["pretrain"][1]
    unlabeled = set(manifest.query("subset == 'unlabeled'").video_id)
    assert set(pre.video_id) <= unlabeled and (pre.split == "unlabeled").all() and (pre.label == -1).all()
    assert len(pre) == clips.video_id.isin(unlabeled).sum()
    assert pre.clip_id.str.fullmatch(r"v\d{3}_c\d{3}").all()
    vc = out["video_clips"][1]
    assert set(vc.split) <= {"train", "test"} and (vc.label == -1).all()
    assert len(vc) + len(pre) == len(clips)
    for split in ("train", "test"):
        meta = out[f"mg_{split}"][1]
        vids = set(manifest.query("split == @split").video_id)
        expect = ann[ann.video_id.isin(vids)]
        assert len(meta) == len(expect) and (meta.split == split).all()
        assert sorted(meta.label) == sorted(expect.class_id)
        assert meta.clip_id.str.fullmatch(r"v\d{3}_mg\d{4}").all()


def test_packed_rows_equal_the_single_clip_path(built):
    corpus, root, out = built
    rng = np.random.default_rng(0)
    for name, (data, meta) in out.items():
        for i in rng.choice(len(meta), size=min(5, len(meta)), replace=False):
            row = meta.iloc[i]
            pose = read_pose(corpus["pose_dir"] / f"{row.video_id}.parquet")
            one, vl, _ = clip_tensors(pose.xy, pose.score, np.array([row.start_frame]), np.array([row.end_frame]),
                                      {"num_frames": 24}, (320, 240))
            np.testing.assert_array_equal(data[i], one[0])
            assert vl[0] == row.valid_len
            # the score channel is the raw confidence of the subset joints on the clip's frames
            if row.end_frame - row.start_frame + 1 <= 24:
                raw = pose.score[row.start_frame:row.end_frame + 1][:, list(UPPER_BODY)]
                np.testing.assert_allclose(data[i, 2, :len(raw)], raw)


def test_annotation_outside_the_pose_frames_is_an_error_naming_it(tmp_path):
    corpus = write_corpus(tmp_path, n_labeled=2, n_unlabeled=0, seed=2)
    ann = corpus["annotations_df"].copy()
    ann.loc[len(ann)] = dict(video_id="v000", class_id=1, start_frame=10, end_frame=100_000)
    ann.to_csv(corpus["annotations"], index=False)
    with pytest.raises(ValueError, match=rf"annotation row {len(ann)} \(video v000, frames 10..100000\)"):
        build_skeleton_pack("mg_train", tmp_path / "ds", corpus["pose_dir"], corpus["manifest"],
                               corpus["annotations"], params={"num_frames": 8})
    assert not (tmp_path / "ds").exists()
    with pytest.raises(ValueError, match="long_clips"):
        build_skeleton_pack("mg_train", tmp_path / "ds", corpus["pose_dir"], corpus["manifest"],
                               corpus["annotations"], params={"long_clips": "crop"})


def test_catalog_orders_mg_instances_and_rejects_unknown_names():
    manifest = pd.DataFrame(dict(video_id=["b", "a"], subject_id=["s1", "s2"], subset=["labeled"] * 2,
                                 split=["train", "train"]))
    ann = pd.DataFrame(dict(video_id=["a", "b", "a"], class_id=[3, 1, 2], start_frame=[50, 0, 5],
                            end_frame=[60, 9, 9]))
    cat = dataset_clips("mg_train", manifest, ann)
    assert cat.clip_id.tolist() == ["b_mg0000", "a_mg0000", "a_mg0001"]
    assert cat.label.tolist() == [1, 2, 3] and cat._row.tolist() == [1, 2, 0]
    with pytest.raises(ValueError, match="unknown dataset"):
        dataset_clips("train", manifest, ann)


def test_training_loader_batches_equal_the_array(built):
    """The packed dataset through the loader the pipeline runs (``mgfm.train.skeleton_clips.PackedClips``, batched by a
    BatchSampler as ``mgfm.train.loop.fit`` does): every clip exactly once per epoch, rows equal to the array."""
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    from mgfm.train.skeleton_clips import PackedClips

    corpus, root, out = built
    ds = PackedClips(root / "ds" / "pretrain", num_joints=NUM_JOINTS, num_channels=3)
    data, meta = out["pretrain"]
    assert len(ds) == len(meta) > 7 and ds.meta.clip_id.tolist() == meta.clip_id.tolist()
    sampler = RandomSampler(ds, generator=torch.Generator().manual_seed(0))
    seen = []
    for batch in DataLoader(ds, sampler=BatchSampler(sampler, 7, drop_last=False), batch_size=None):
        idx = batch["index"].numpy()
        np.testing.assert_array_equal(batch["x"].numpy(), data[idx])
        np.testing.assert_array_equal(batch["valid_len"].numpy(), meta.valid_len.to_numpy()[idx])
        seen += idx.tolist()
    assert sorted(seen) == list(range(len(ds)))
    one = ds[3]
    np.testing.assert_array_equal(one["x"].numpy(), data[3:4])
    assert one["index"].tolist() == [3] and one["valid_len"].tolist() == [meta.valid_len.iloc[3]]
