"""Affine crop maths, SimCC decoding and normalisation against hand-computed cases (mmpose conventions)."""

import numpy as np
import pytest

from mgfm.pose.affine import (bbox_xyxy_to_cs, boxes_to_cs, crop_batch, crop_to_image, fix_aspect_ratio,
                              get_warp_matrix)
from mgfm.pose.preprocess import normalize_crops
from mgfm.pose.simcc import decode_simcc, get_simcc_maximum


def test_bbox_to_center_scale_with_padding():
    c, s = bbox_xyxy_to_cs(np.array([10, 20, 110, 220]), padding=1.25)
    np.testing.assert_allclose(c, [60, 120])
    np.testing.assert_allclose(s, [125, 250])


def test_fix_aspect_ratio_grows_the_short_side():
    # model input 192x256 (w/h = 0.75): a tall box gets wider, a wide box gets taller
    np.testing.assert_allclose(fix_aspect_ratio(np.array([[125.0, 250.0]]), 0.75), [[187.5, 250.0]])
    np.testing.assert_allclose(fix_aspect_ratio(np.array([[300.0, 100.0]]), 0.75), [[300.0, 400.0]])


def test_warp_matrix_hand_computed():
    # center (60, 120), scale (187.5, 250) onto 192x256: uniform zoom 1.024, crop center = box center
    m = get_warp_matrix(np.array([60.0, 120.0]), np.array([187.5, 250.0]), 0.0, (192, 256))
    np.testing.assert_allclose(m, [[1.024, 0, 96 - 60 * 1.024], [0, 1.024, 128 - 120 * 1.024]], atol=1e-4)


def test_warp_matrix_rotation_90():
    # rot 90: image "up" maps to crop "left": x' = s (y - cy) + w/2, y' = -s (x - cx) + h/2
    c, s = np.array([50.0, 40.0]), np.array([100.0, 100.0])
    m = get_warp_matrix(c, s, 90.0, (200, 200))
    np.testing.assert_allclose(m, [[0, 2, 100 - 2 * 40], [-2, 0, 100 + 2 * 50]], atol=1e-4)


def test_inverse_matrix_and_crop_to_image_agree():
    boxes = np.array([[10, 20, 110, 220], [0, 0, 320, 240]], np.float32)
    centers, scales = boxes_to_cs(boxes, (192, 256))
    pts = np.array([[[0, 0], [96, 128], [191.5, 10.25]]] * 2, np.float32)
    got = crop_to_image(pts, centers, scales, (192, 256))
    for i in range(2):
        fwd = get_warp_matrix(centers[i], scales[i], 0.0, (192, 256))
        inv = get_warp_matrix(centers[i], scales[i], 0.0, (192, 256), inv=True)
        want = pts[i] @ inv[:, :2].T + inv[:, 2]
        np.testing.assert_allclose(got[i], want, atol=1e-3)
        back = want @ fwd[:, :2].T + fwd[:, 2]  # forward(inverse(p)) == p
        np.testing.assert_allclose(back, pts[i], atol=1e-3)
    # the crop centre maps to the box centre
    np.testing.assert_allclose(got[:, 1], centers, atol=1e-4)


def test_crop_batch_samples_the_box():
    frame = np.zeros((240, 320, 3), np.uint8)
    frame[100:140, 150:170] = 255  # a bright block around (160, 120)
    centers, scales = boxes_to_cs(np.array([[0, 0, 320, 240]]), (128, 96), padding=1.0)
    crop = crop_batch(frame[None], centers, scales, (128, 96))
    assert crop.shape == (1, 96, 128, 3)
    ys, xs = np.nonzero(crop[0, :, :, 0] > 128)
    # whole frame at scale 0.4: block centre (160, 120) -> (64, 48)
    assert abs(xs.mean() - 63.5) < 1.0 and abs(ys.mean() - 47.5) < 1.0


def test_simcc_maximum_hand_computed():
    sx = np.zeros((1, 3, 20), np.float32)
    sy = np.zeros((1, 3, 30), np.float32)
    sx[0, 0, 7], sy[0, 0, 11] = 0.9, 0.6   # visible: score = min(0.9, 0.6)
    sx[0, 1, 3], sy[0, 1, 25] = 0.2, 0.8   # score 0.2
    # keypoint 2: all zeros -> score 0, location -1 (mmpose's convention)
    locs, scores = get_simcc_maximum(sx, sy)
    np.testing.assert_allclose(locs[0], [[7, 11], [3, 25], [-1, -1]])
    np.testing.assert_allclose(scores[0], [0.6, 0.2, 0.0])
    kpts, _ = decode_simcc(sx, sy, split_ratio=2.0)
    np.testing.assert_allclose(kpts[0], [[3.5, 5.5], [1.5, 12.5], [-0.5, -0.5]])


def test_simcc_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="SimCC"):
        get_simcc_maximum(np.zeros((1, 3, 5)), np.zeros((1, 4, 5)))


def test_normalize_rgb_and_bgr():
    px = np.zeros((1, 1, 1, 3), np.uint8)
    px[..., :] = [182, 116, 104]  # R, G, B
    rgb = normalize_crops(px, color="rgb")
    assert rgb.shape == (1, 3, 1, 1)
    np.testing.assert_allclose(rgb[0, :, 0, 0], [(182 - 123.675) / 58.395, (116 - 116.28) / 57.12,
                                                 (104 - 103.53) / 57.375], rtol=1e-5)
    bgr = normalize_crops(px, color="bgr")  # channel 0 now holds blue
    np.testing.assert_allclose(bgr[0, 0, 0, 0], (104 - 123.675) / 58.395, rtol=1e-5)
    with pytest.raises(ValueError, match="color"):
        normalize_crops(px, color="hsv")
