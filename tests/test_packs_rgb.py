"""RGB clip datasets: frame choice, crop geometry, shared clip ids with the skeleton datasets."""

from __future__ import annotations

import numpy as np
import pytest

from mgfm.core.packed import open_packed
from mgfm.packs.rgb import build_rgb_pack, clip_boxes, crop_resize, frame_boxes, sample_indices
from mgfm.clips.sample import sample_clips
from mgfm.packs.skeleton import build_skeleton_pack
from mgfm.core.layout import LEFT_SHOULDER, LEFT_WRIST, NUM_KEYPOINTS, RIGHT_SHOULDER, RIGHT_WRIST, UPPER_BODY

from tests.support.clips import write_corpus


def test_sample_indices_spread_over_the_interval():
    idx = sample_indices(np.array([100, 0]), np.array([131, 2]), 8)
    assert idx[0].tolist() == [102, 106, 110, 114, 118, 122, 126, 130]
    assert idx[1].tolist() == [0, 0, 0, 1, 1, 2, 2, 2]  # short clip: frames repeat, all inside


def test_crop_resize_pads_outside_the_image_with_black():
    img = np.zeros((40, 60, 3), np.uint8)
    img[:, :, 0] = np.arange(60)[None, :]
    out = crop_resize(img, np.array([10, 0, 20, 20]), 20)  # inside: an exact copy
    np.testing.assert_array_equal(out, img[0:20, 10:30])
    out = crop_resize(img, np.array([-10, -10, 20, 20]), 20)  # top-left quarter outside
    assert not out[:10].any() and not out[:, :10].any()
    np.testing.assert_array_equal(out[10:, 10:], img[0:10, 0:10])


def test_clip_box_is_the_median_square_with_margin_and_falls_back_to_full():
    n = 30
    xy = np.zeros((n, NUM_KEYPOINTS, 2))
    score = np.zeros((n, NUM_KEYPOINTS))
    sub = list(UPPER_BODY)
    xy[:, sub[0]] = (100, 50)
    xy[:, sub[1]] = (140, 70)
    xy[:, sub[2]] = (120, 90)
    score[:, sub[:3]] = 0.9
    xy[5, sub[0]] = (0, 0)  # one jittery frame: the median ignores it
    score[20:, :] = 0.0  # no keypoints from frame 20 on
    boxes, ok = frame_boxes(xy, score, np.zeros((n, 4)), np.zeros(n), "keypoints", 0.3)
    assert ok[:20].all() and not ok[20:].any()
    crops, used = clip_boxes(boxes, ok, np.array([0, 20]), np.array([19, 29]), 1.5, (320, 240), "person",
                             "keypoints")
    # box 100..140 x 50..90 -> centre (120, 70), side 40 * 1.5 = 60
    assert crops[0].tolist() == [90, 40, 60, 60] and used.tolist() == ["keypoints", "full"]
    assert crops[1].tolist() == [40, 0, 240, 240]
    crops, used = clip_boxes(boxes, ok, np.array([0]), np.array([19]), 1.5, (320, 240), "full", "keypoints")
    assert crops[0].tolist() == [40, 0, 240, 240] and used.tolist() == ["full"]


def test_keypoint_box_grows_to_the_upper_body_the_shoulders_imply():
    """Arms scored below the threshold must not shrink the crop to the face: with ``upper_body`` the box covers
    ``upper_body`` shoulder widths around the shoulders (shoulder line at 35 % of the height); frames without both
    shoulders keep the keypoint box; 0 turns it off."""
    n = 4
    xy = np.zeros((n, NUM_KEYPOINTS, 2))
    score = np.zeros((n, NUM_KEYPOINTS))
    xy[:, 0] = (120, 40)                       # nose
    xy[:, 1], xy[:, 2] = (115, 35), (125, 35)  # eyes
    xy[:, LEFT_SHOULDER], xy[:, RIGHT_SHOULDER] = (140, 80), (100, 80)   # shoulder width 40
    xy[:, LEFT_WRIST], xy[:, RIGHT_WRIST] = (150, 150), (90, 150)       # hands on the table, scored low
    score[:, [0, 1, 2, LEFT_SHOULDER, RIGHT_SHOULDER]] = 0.9
    score[:, [LEFT_WRIST, RIGHT_WRIST]] = 0.1
    score[3, RIGHT_SHOULDER] = 0.1             # one frame without both shoulders
    tight, ok = frame_boxes(xy, score, np.zeros((n, 4)), np.zeros(n), "keypoints", 0.3)
    grown, ok2 = frame_boxes(xy, score, np.zeros((n, 4)), np.zeros(n), "keypoints", 0.3, upper_body=2.0)
    assert ok.all() and ok2.all()
    np.testing.assert_allclose(tight[0], [100, 35, 140, 80])
    # 2 x 40 = 80 px: x 120 +- 40, y from 80 - 0.35 * 80 = 52 to 80 + 0.65 * 80 = 132; union with the keypoints
    np.testing.assert_allclose(grown[0], [80, 35, 160, 132])
    np.testing.assert_allclose(grown[3], tight[3])
    assert grown[0, 3] > 120, "the grown box reaches down to where the hands are"


def test_rgb_dataset_reads_the_right_frames_and_shares_clip_ids(tmp_path):
    corpus = write_corpus(tmp_path, n_labeled=2, n_unlabeled=2, seed=6, frames_range=(300, 500), with_video=True,
                          width=96, height=72)
    sample_clips(corpus["pose_dir"], corpus["manifest"], corpus["annotations"], tmp_path / "clips.parquet",
                 tmp_path / "stats.csv", seed=1, params={"retry_budget": 200})
    for name in ("pretrain", "mg_test"):
        build_rgb_pack(name, tmp_path / "rgb" / name, corpus["video_dir"], corpus["pose_dir"], corpus["manifest"],
                          corpus["annotations"], tmp_path / "clips.parquet",
                          {"num_frames": 6, "size": 32, "crop": "full", "views": {"datasets": []}})
        build_skeleton_pack(name, tmp_path / "skel" / name, corpus["pose_dir"], corpus["manifest"],
                               corpus["annotations"], tmp_path / "clips.parquet", {"num_frames": 16})
        data, meta = open_packed(tmp_path / "rgb" / name)
        _, smeta = open_packed(tmp_path / "skel" / name)
        assert data.shape == (len(meta), 6, 32, 32, 3) and data.dtype == np.uint8 and len(meta) > 0
        assert meta.clip_id.tolist() == smeta.clip_id.tolist()
        assert (meta.valid_len == np.minimum(meta.end_frame - meta.start_frame + 1, 6)).all()
        # the synthetic video encodes its frame index in red (7 * f mod 256): check every sampled frame
        idx = sample_indices(meta.start_frame.to_numpy(), meta.end_frame.to_numpy(), 6)
        red = data[..., 8:24, 8:24, 0].reshape(len(meta), 6, -1).mean(axis=-1)
        expect = (idx * 7) % 256
        near_wrap = (expect < 12) | (expect > 243)  # codec blur around the 255 -> 0 jump
        assert np.abs(red - expect)[~near_wrap].max() < 8
        # the green ramp shows the central square: columns 12..84 of a 96-wide frame
        green = data[0, 0, 16, :, 1].astype(float)
        assert green[0] == pytest.approx(12 * 255 / 95, abs=8) and green[-1] == pytest.approx(83 * 255 / 95, abs=8)


def test_missing_video_is_an_error_before_work(tmp_path):
    corpus = write_corpus(tmp_path, n_labeled=2, n_unlabeled=0, seed=6, frames_range=(100, 200))
    with pytest.raises(FileNotFoundError, match="v000"):
        build_rgb_pack("mg_train", tmp_path / "rgb", tmp_path / "novideos", corpus["pose_dir"],
                          corpus["manifest"], corpus["annotations"], params={"size": 16, "num_frames": 2})
    assert not (tmp_path / "rgb").exists()
