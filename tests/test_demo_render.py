"""Demo body, gestures and renderer: keypoints follow the gestures, pixels follow the keypoints."""

from __future__ import annotations

import numpy as np
import pytest

from mgfm.common.seeding import rng_for
from mgfm.demo.motion import Gesture, build_motion
from mgfm.demo.render import Shot, ground_truth, render_training_samples
from mgfm.demo.skeleton import forward
from mgfm.demo.subject import make_framing, make_subject, make_venue
from mgfm.demo.taxonomy import CLASS_NAMES
from mgfm.core import layout as L

W, H, FPS, N = 320, 240, 25.0, 75


def _pose(name: str | None, hand: str = "r", seed: int = 0):
    subject = make_subject(seed, "subjA")
    framing = make_framing(rng_for(seed, "framing"))
    gestures = [] if name is None else [Gesture(CLASS_NAMES.index(name), 5, 70, hand)]
    motion = build_motion(N, FPS, subject, gestures, rng_for(seed, "motion"))
    return forward(motion, subject, framing, W, H), subject, framing


def _unit(pose):
    return float(np.linalg.norm(pose.xy[:, L.LEFT_SHOULDER] - pose.xy[:, L.RIGHT_SHOULDER], axis=1).mean())


MID = slice(30, 46)  # frames where every gesture is at full strength


def test_idle_pose_is_a_seated_upper_body_with_hidden_legs():
    pose, _, framing = _pose(None)
    xy, vis = pose.xy, pose.visible
    assert xy.shape == (N, 133, 2) and vis.shape == (N, 133)
    assert vis[:, :11].all(), "head, shoulders, arms must be visible at rest"
    assert not vis[:, 13:23].any(), "knees, ankles and feet sit behind the table"
    assert (xy[:, L.NOSE, 1] < xy[:, L.LEFT_SHOULDER, 1]).all()
    # the person's left is on the image right (COCO convention for a person facing the camera)
    assert (xy[:, L.LEFT_SHOULDER, 0] > xy[:, L.RIGHT_SHOULDER, 0]).all()
    assert (xy[:, L.LEFT_EYE, 0] > xy[:, L.RIGHT_EYE, 0]).all()
    assert (xy[:, L.FACE.start + 16, 0] > xy[:, L.FACE.start, 0]).all()
    # resting hands lie at table height
    assert np.abs(xy[:, L.LEFT_WRIST, 1] / H - framing.table_y).max() < 0.12


def _dist(pose, a, b):
    return np.linalg.norm(pose.xy[MID, a] - pose.xy[MID, b], axis=-1).mean() / _unit(pose)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_hand_to_face_gestures_reach_their_targets(seed):
    pose, _, _ = _pose("touch_nose", "r", seed=seed)
    index_tip = L.RIGHT_HAND.start + 8
    assert _dist(pose, index_tip, L.NOSE) < 0.15
    rest, _, _ = _pose(None, seed=seed)
    assert _dist(rest, index_tip, L.NOSE) > 1.0
    cover, _, _ = _pose("cover_face", seed=seed)
    for hand in (L.LEFT_HAND, L.RIGHT_HAND):
        palm = hand.start + 9  # middle-finger knuckle
        assert _dist(cover, palm, L.NOSE) < 0.45
    chin, _, _ = _pose("touch_chin", "l", seed=seed)
    assert _dist(chin, L.LEFT_HAND.start + 9, L.FACE.start + 8) < 0.35
    scratch, _, _ = _pose("scratch_head", "l", seed=seed)
    assert (scratch.xy[MID, L.LEFT_HAND.start + 9, 1] < scratch.xy[MID, L.LEFT_EYE, 1]).mean() > 0.9


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_head_gestures_move_the_head_not_the_hands(seed):
    rest, _, _ = _pose(None, seed=seed)
    nod, _, _ = _pose("nod", seed=seed)
    shake, _, _ = _pose("shake_head", seed=seed)

    def nose_rel(pose):
        c = (pose.xy[:, L.LEFT_EYE] + pose.xy[:, L.RIGHT_EYE]) / 2
        return (pose.xy[:, L.NOSE] - c) / _unit(pose)

    assert np.ptp(nose_rel(nod)[MID, 1]) > 2 * np.ptp(nose_rel(rest)[MID, 1])
    assert np.ptp(nose_rel(shake)[MID, 0]) > 3 * np.ptp(nose_rel(rest)[MID, 0])
    assert np.abs(nod.xy[:, L.RIGHT_WRIST] - rest.xy[:, L.RIGHT_WRIST]).max() < 1e-3


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_body_gestures_are_distinct_in_the_skeleton(seed):
    rest, _, _ = _pose(None, seed=seed)
    fold, _, _ = _pose("fold_arms", seed=seed)
    mid_x = (fold.xy[MID, L.LEFT_SHOULDER, 0] + fold.xy[MID, L.RIGHT_SHOULDER, 0]) / 2
    assert (fold.xy[MID, L.LEFT_WRIST, 0] < mid_x).all() and (fold.xy[MID, L.RIGHT_WRIST, 0] > mid_x).all()
    lean, _, _ = _pose("lean_back", seed=seed)
    drop = (lean.xy[MID, L.LEFT_SHOULDER, 1] - rest.xy[MID, L.LEFT_SHOULDER, 1]).mean()
    assert drop > 0.1 * _unit(rest)
    assert not lean.visible[MID, L.LEFT_WRIST].any(), "leaning back drops the hands below the table edge"
    shrug, _, _ = _pose("shrug_shoulders", seed=seed)
    lift = (rest.xy[:, L.LEFT_SHOULDER, 1] - shrug.xy[:, L.LEFT_SHOULDER, 1]).max()
    assert lift > 0.1 * _unit(rest)
    wave, _, _ = _pose("wave_hand", "r", seed=seed)
    assert (wave.xy[MID, L.RIGHT_WRIST, 1] < wave.xy[MID, L.RIGHT_SHOULDER, 1]).all()
    rub, _, _ = _pose("rub_hands", seed=seed)
    assert _dist(rub, L.LEFT_WRIST, L.RIGHT_WRIST) < 0.45


def test_person_is_drawn_where_the_keypoints_are():
    pose, subject, framing = _pose(None)
    rng = rng_for(0, "render")
    cut = np.zeros(N, dtype=bool)
    cut[60:] = True
    shot = Shot(subject, framing, make_venue(0, 0), pose, cut, W, H, rng)
    frame = shot.frame(10)
    assert frame.shape == (H, W, 3) and frame.dtype == np.uint8
    changed = np.abs(frame.astype(int) - shot.base.astype(int)).sum(-1) > 0
    for k in (L.NOSE, L.LEFT_EYE, L.LEFT_SHOULDER, L.RIGHT_ELBOW, L.LEFT_HAND.start + 9):
        x, y = np.round(pose.xy[10, k]).astype(int)
        assert changed[y - 1:y + 2, x - 1:x + 2].any(), f"keypoint {k} not drawn"
    # a cut-in frame shows another scene, and its ground truth is empty
    assert not np.array_equal(shot.frame(65)[: H // 2], frame[: H // 2])
    xy, vis = ground_truth(pose, cut)
    assert (vis[60:] == 0).all() and (xy[60:] == 0).all() and vis[:60].any()


def test_render_training_samples_api_and_determinism():
    frames, xy, vis = render_training_samples(24, seed=5, width=160, height=120, cut_in_fraction=0.3)
    assert frames.shape == (24, 120, 160, 3) and frames.dtype == np.uint8
    assert xy.shape == (24, 133, 2) and xy.dtype == np.float32
    assert vis.shape == (24, 133) and vis.dtype == np.uint8
    empty = vis.sum(1) == 0
    assert 0 < empty.sum() < 24, "some cut-in frames, mostly people"
    assert (xy[empty] == 0).all()
    inside = vis.astype(bool)
    assert (xy[..., 0][inside] >= 0).all() and (xy[..., 0][inside] <= 159).all()
    assert (xy[..., 1][inside] >= 0).all() and (xy[..., 1][inside] <= 119).all()
    again = render_training_samples(24, seed=5, width=160, height=120, cut_in_fraction=0.3)
    assert np.array_equal(frames, again[0]) and np.array_equal(xy, again[1])
    other = render_training_samples(24, seed=6, width=160, height=120, cut_in_fraction=0.3)
    assert not np.array_equal(xy, other[1])
    with pytest.raises(ValueError, match="width"):
        render_training_samples(2, seed=0, width=8, height=8)
