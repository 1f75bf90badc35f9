"""Drawing the demo with OpenCV: press-conference backdrop, the person from their keypoints, cut-in scenes.

The person is drawn from the very keypoints that become ground truth (face outline from the jaw landmarks,
fingers from the hand joints, limbs from the body joints), so a pose model can learn to read them back and
an RGB model sees the gestures. Frames are RGB uint8. ``render_training_samples`` is the entry point for
pose-model training.
"""

from __future__ import annotations

import cv2
import numpy as np

from mgfm.common.seeding import derive_seed, rng_for
from mgfm.demo.motion import Gesture, acting_hand, build_motion
from mgfm.demo.skeleton import Pose, forward
from mgfm.demo.subject import Framing, Subject, Venue, make_framing, make_subject, make_venue
from mgfm.demo.taxonomy import NUM_CLASSES, class_probabilities
from mgfm.core import layout as L

SHIFT = 4                # fixed-point bits for sub-pixel drawing
_ONE = 1 << SHIFT
AA = cv2.LINE_AA


def _pt(xy) -> tuple[int, int]:
    return int(round(float(xy[0]) * _ONE)), int(round(float(xy[1]) * _ONE))


def _pts(xy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xy) * _ONE).astype(np.int32)


def _shade(colour, k: float) -> tuple[int, int, int]:
    return tuple(int(np.clip(c * k, 0, 255)) for c in colour)


def _thick(v: float) -> int:
    return max(1, int(round(v)))


# ---- static scenes -------------------------------------------------------------------------------------


def draw_backdrop(venue: Venue, framing: Framing, subject: Subject, width: int, height: int,
                  rng: np.random.Generator) -> np.ndarray:
    """Sponsor board, the chair back behind the seat, and the table (top and front panel)."""
    img = np.empty((height, width, 3), np.uint8)
    img[:] = venue.board
    tile = max(8, int(venue.tile * width))
    tile_h = max(8, int(tile * 0.6))
    ox, oy = int(rng.integers(0, tile)), int(rng.integers(0, tile_h))
    font_scale = tile / 140.0
    for row, y in enumerate(range(-oy, height, tile_h)):
        for col, x in enumerate(range(-ox, width, tile)):
            k = (row + col) % 3
            colour = venue.logos[k]
            cx, cy = x + tile // 2, y + tile_h // 2
            if k == 0:
                cv2.circle(img, (cx, cy), tile_h // 3, colour, -1, AA)
            elif k == 1:
                cv2.rectangle(img, (x + tile // 5, y + tile_h // 3), (x + 4 * tile // 5, y + 2 * tile_h // 3),
                              colour, -1)
            else:
                cv2.putText(img, venue.text, (x + tile // 10, cy + tile_h // 8), cv2.FONT_HERSHEY_SIMPLEX,
                            font_scale, colour, _thick(font_scale * 2), AA)
    sw = subject.shoulder_w * framing.scale * height
    cx = framing.centre_x * width
    top = framing.shoulder_y * height - 0.1 * sw
    cv2.rectangle(img, _pt((cx - 0.85 * sw, top)), _pt((cx + 0.85 * sw, height)), (35, 35, 40), -1, AA, SHIFT)
    t0, t1 = int(framing.table_y * height), int(framing.table_front * height)
    img[t0:t1] = _shade(venue.table, 1.6)
    img[t0:t0 + max(1, height // 120)] = _shade(venue.table, 1.9)
    img[t1:] = venue.table
    cv2.putText(img, venue.text, (int(width * 0.3), min(height - 4, t1 + int((height - t1) * 0.65))),
                cv2.FONT_HERSHEY_SIMPLEX, height / 400.0, (235, 235, 235), _thick(height / 200), AA)
    # a microphone on its stand, off to one side
    mx = int(width * (0.5 + rng.choice([-1, 1]) * rng.uniform(0.25, 0.35)))
    cv2.line(img, (mx, t0 + (t1 - t0) // 2), (mx, t0 - height // 12), (30, 30, 30), _thick(height / 120), AA)
    cv2.circle(img, (mx, t0 - height // 12), _thick(height / 60), (50, 50, 50), -1, AA)
    return img


def draw_cut_in(width: int, height: int, rng: np.random.Generator, venue: Venue) -> np.ndarray:
    """Another scene: the reporters' room seen from the back, or a tournament graphic card. No posed person."""
    img = np.empty((height, width, 3), np.uint8)
    if rng.random() < 0.6:
        img[:] = venue.wall
        img[: height // 3] = _shade(venue.wall, 1.2)
        for row in range(3):
            y = int(height * (0.55 + 0.2 * row))
            r = int(height * (0.06 + 0.025 * row))
            for x in np.sort(rng.uniform(0, width, int(rng.integers(4, 8)))):
                body = tuple(int(v) for v in rng.integers(20, 230, 3))
                cv2.ellipse(img, (int(x), y + 2 * r), (int(2.2 * r), int(1.6 * r)), 0, 180, 360, body, -1, AA)
                hair = tuple(int(v) for v in rng.integers(10, 120, 3))
                cv2.circle(img, (int(x), y), r, hair, -1, AA)
    else:
        a, b = np.array(venue.board, float), np.array(venue.logos[0], float)
        ramp = np.linspace(0, 1, height)[:, None, None]
        img[:] = (a * (1 - ramp) + b * ramp).astype(np.uint8)
        cv2.circle(img, (width // 2, height // 2 - height // 10), height // 6, venue.logos[1], -1, AA)
        cv2.putText(img, venue.text, (width // 4, int(height * 0.8)), cv2.FONT_HERSHEY_SIMPLEX, height / 160.0,
                    (250, 250, 250), _thick(height / 80), AA)
    return img


# ---- the person ----------------------------------------------------------------------------------------


def _draw_head(img: np.ndarray, pose: Pose, i: int, subject: Subject) -> None:
    xy = pose.xy[i]
    hc, axes, ang = pose.head_centre[i], pose.head_axes[i], float(pose.head_angle[i])
    hr = float(axes[0])
    skin, hair = subject.skin, subject.hair
    dark = _shade(skin, 0.72)
    ax = (int(axes[0] * _ONE), int(axes[1] * _ONE))
    for ear, visible in ((L.LEFT_EAR, pose.visible[i, L.LEFT_EAR]), (L.RIGHT_EAR, pose.visible[i, L.RIGHT_EAR])):
        if visible:
            cv2.ellipse(img, _pt(xy[ear]), (int(0.2 * hr * _ONE), int(0.32 * hr * _ONE)), ang, 0, 360, dark, -1,
                        AA, SHIFT)
    cv2.ellipse(img, _pt(hc), ax, ang, 0, 360, skin, -1, AA, SHIFT)
    jaw = xy[L.FACE.start:L.FACE.start + 17]
    cv2.fillPoly(img, [_pts(jaw)], skin, AA, SHIFT)
    cv2.polylines(img, [_pts(jaw)], False, dark, 1, AA, SHIFT)
    # hair on top, following the yaw a little
    yaw_shift = np.array([-np.sin(pose.head_yaw[i]) * 0.25 * hr, 0])
    top = hc + yaw_shift - np.array([0, 0.25 * hr])
    if subject.hair_style in ("short", "long"):
        cv2.ellipse(img, _pt(top), (int(1.05 * hr * _ONE), int(1.05 * hr * _ONE)), ang, 180, 360, hair, -1,
                    AA, SHIFT)
    elif subject.hair_style == "buzz":
        cv2.ellipse(img, _pt(top), (int(1.0 * hr * _ONE), int(0.95 * hr * _ONE)), ang, 190, 350,
                    _shade(hair, 1.1), -1, AA, SHIFT)
    else:  # cap with a brim, above the brows
        cap = _shade(subject.shirt, 0.8)
        top = top - np.array([0, 0.3 * hr])
        cv2.ellipse(img, _pt(top), (int(1.06 * hr * _ONE), int(0.95 * hr * _ONE)), ang, 180, 360, cap, -1, AA,
                    SHIFT)
        brim = top + yaw_shift * 1.5 + np.array([0, 0.02 * hr])
        cv2.ellipse(img, _pt(brim), (int(1.1 * hr * _ONE), int(0.22 * hr * _ONE)), ang, 0, 360,
                    _shade(cap, 0.7), -1, AA, SHIFT)
    f = L.FACE.start
    line = _thick(hr / 12)
    for a, b in ((17, 22), (22, 27)):
        cv2.polylines(img, [_pts(xy[f + a:f + b])], False, _shade(hair, 0.8), line, AA, SHIFT)
    for a in (36, 42):
        eye = xy[f + a:f + a + 6]
        cv2.fillPoly(img, [_pts(eye)], (245, 245, 245), AA, SHIFT)
        centre = eye.mean(0)
        opening = np.linalg.norm(eye[1] - eye[5])
        if opening > 0.06 * hr:
            cv2.circle(img, _pt(centre), int(max(opening * 0.45, 0.8) * _ONE), (40, 30, 25), -1, AA, SHIFT)
        cv2.polylines(img, [_pts(eye)], True, _shade(skin, 0.5), 1, AA, SHIFT)
    cv2.polylines(img, [_pts(xy[f + 27:f + 31]), _pts(xy[f + 31:f + 36])], False, _shade(skin, 0.6), 1, AA, SHIFT)
    lip = (int(skin[0] * 0.75 + 40), int(skin[1] * 0.5), int(skin[2] * 0.5))
    cv2.fillPoly(img, [_pts(xy[f + 48:f + 60])], lip, AA, SHIFT)
    cv2.fillPoly(img, [_pts(xy[f + 60:f + 68])], (60, 20, 25), AA, SHIFT)


def _draw_long_hair(img: np.ndarray, pose: Pose, i: int, subject: Subject) -> None:
    """Long hair falls behind the neck and shoulders, so it is drawn before the body."""
    hc, hr, ang = pose.head_centre[i], float(pose.head_axes[i, 0]), float(pose.head_angle[i])
    cv2.ellipse(img, _pt(hc + np.array([0, 0.55 * hr])), (int(1.2 * hr * _ONE), int(1.75 * hr * _ONE)), ang,
                0, 360, subject.hair, -1, AA, SHIFT)


def _draw_hand(img: np.ndarray, hand: np.ndarray, subject: Subject, unit: float) -> None:
    skin = subject.skin
    outline = _shade(skin, 0.55)
    w = _thick(0.075 * unit)
    fingers = [_pts(hand[[0, 1, 2, 3, 4]])] + [_pts(hand[[5 + 4 * k, 6 + 4 * k, 7 + 4 * k, 8 + 4 * k]])
                                              for k in range(4)]
    palm = _pts(hand[[0, 1, 5, 9, 13, 17]])
    cv2.polylines(img, fingers, False, outline, w + 2, AA, SHIFT)
    cv2.fillPoly(img, [palm], outline, AA, SHIFT)
    cv2.polylines(img, [palm], True, outline, 2, AA, SHIFT)
    cv2.fillPoly(img, [palm], skin, AA, SHIFT)
    cv2.polylines(img, fingers, False, skin, w, AA, SHIFT)


def draw_person(img: np.ndarray, base: np.ndarray, pose: Pose, i: int, subject: Subject, framing: Framing) -> None:
    """Draw frame ``i`` of ``pose`` onto ``img`` (a copy of ``base``, the backdrop with the table)."""
    xy = pose.xy[i]
    u = pose.unit
    height = img.shape[0]
    shirt = subject.shirt
    shirt_dark = _shade(shirt, 0.6) if sum(shirt) > 150 else (90, 90, 90)
    ls, rs = xy[L.LEFT_SHOULDER], xy[L.RIGHT_SHOULDER]
    lh, rh = xy[L.LEFT_HIP], xy[L.RIGHT_HIP]
    across = (ls - rs) / max(np.linalg.norm(ls - rs), 1e-6)
    down = np.array([-across[1], across[0]])
    if subject.hair_style == "long":
        _draw_long_hair(img, pose, i, subject)
    cv2.line(img, _pt(pose.neck[i]), _pt((ls + rs) / 2), subject.skin, _thick(0.3 * u), AA, SHIFT)
    torso = np.array([ls + across * 0.12 * u + down * 0.08 * u, lh + across * 0.12 * u,
                      rh - across * 0.12 * u, rs - across * 0.12 * u + down * 0.08 * u,
                      (ls + rs) / 2 - down * 0.02 * u])
    cv2.fillPoly(img, [_pts(torso)], shirt, AA, SHIFT)
    collar = np.array([(ls + rs) / 2 - across * 0.16 * u, (ls + rs) / 2 + down * 0.14 * u,
                       (ls + rs) / 2 + across * 0.16 * u])
    cv2.polylines(img, [_pts(collar)], False, shirt_dark, _thick(0.04 * u), AA, SHIFT)
    t0 = int(framing.table_y * height)
    img[t0:] = base[t0:]
    _draw_head(img, pose, i, subject)
    forearm = shirt if subject.long_sleeves else subject.skin
    for sh, el, wr in ((L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST), (L.RIGHT_SHOULDER, L.RIGHT_ELBOW,
                                                                      L.RIGHT_WRIST)):
        a, b, c = _pt(xy[sh]), _pt(xy[el]), _pt(xy[wr])
        cv2.line(img, a, b, shirt_dark, _thick(0.3 * u) + 2, AA, SHIFT)
        cv2.line(img, a, b, shirt, _thick(0.3 * u), AA, SHIFT)
        cv2.line(img, b, c, _shade(forearm, 0.6), _thick(0.22 * u) + 2, AA, SHIFT)
        cv2.line(img, b, c, forearm, _thick(0.22 * u), AA, SHIFT)
        if not subject.long_sleeves:
            cv2.circle(img, b, int(0.14 * u * _ONE), shirt, -1, AA, SHIFT)
    for hand in (L.LEFT_HAND, L.RIGHT_HAND):
        _draw_hand(img, xy[hand], subject, u)
    t1 = int(framing.table_front * height)
    img[t1:] = base[t1:]


# ---- a rendered shot: backdrop, pose, cut-ins ----------------------------------------------------------


class Shot:
    """Everything needed to draw the frames of one continuous camera setup."""

    def __init__(self, subject: Subject, framing: Framing, venue: Venue, pose: Pose, cut_in: np.ndarray,
                 width: int, height: int, rng: np.random.Generator) -> None:
        self.subject, self.framing, self.pose = subject, framing, pose
        self.base = draw_backdrop(venue, framing, subject, width, height, rng)
        self.cut_in = cut_in
        self.width, self.height = width, height
        # one scene per cut-in run
        self.cut_scene = np.full(len(cut_in), -1)
        self.scenes: list[np.ndarray] = []
        starts = np.flatnonzero(cut_in & ~np.r_[False, cut_in[:-1]])
        for k, s in enumerate(starts):
            e = s
            while e < len(cut_in) and cut_in[e]:
                e += 1
            self.cut_scene[s:e] = k
            self.scenes.append(draw_cut_in(width, height, rng, venue))

    def frame(self, i: int, out: np.ndarray | None = None) -> np.ndarray:
        img = out if out is not None else np.empty((self.height, self.width, 3), np.uint8)
        if self.cut_in[i]:
            img[:] = self.scenes[self.cut_scene[i]]
        else:
            img[:] = self.base
            draw_person(img, self.base, self.pose, i, self.subject, self.framing)
        return img


def ground_truth(pose: Pose, cut_in: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GT keypoints (N, 133, 2) float32 and visibility (N, 133) uint8; cut-in frames are zero."""
    xy = pose.xy.copy()
    vis = pose.visible.astype(np.uint8)
    xy[cut_in] = 0.0
    vis[cut_in] = 0
    return xy, vis


# ---- training samples for the pose model ---------------------------------------------------------------


def render_training_samples(n: int, seed: int, width: int = 320, height: int = 240, cut_in_fraction: float = 0.06,
                            frames_per_person: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render ``n`` random demo-style frames with their ground truth, for training the demo pose model.

    Each group of ``frames_per_person`` frames shows a freshly drawn subject (random proportions, colours,
    framing, venue) caught at random moments of a short clip holding a random gesture, so poses cover idle and
    every gesture class. About ``cut_in_fraction`` of the frames are cut-in scenes without a person (all-zero
    keypoints and visibility). Returns frames uint8 (n, H, W, 3) RGB, xy float32 (n, 133, 2) in pixels,
    visible uint8 (n, 133). Deterministic in ``seed``; the subjects are not those of the demo corpus.
    """
    if n < 0 or width < 32 or height < 32:
        raise ValueError(f"render_training_samples: need n >= 0 and width, height >= 32 (got {n}, {width}, {height})")
    fps = 25.0
    frames = np.empty((n, height, width, 3), np.uint8)
    xy = np.zeros((n, L.NUM_KEYPOINTS, 2), np.float32)
    vis = np.zeros((n, L.NUM_KEYPOINTS), np.uint8)
    group = 0
    done = 0
    while done < n:
        rng = rng_for(seed, "demo", "pose-train", group)
        subject = make_subject(derive_seed(seed, "pose-train-subject"), f"t{group}")
        framing = make_framing(rng)
        venue = make_venue(seed, int(rng.integers(0, 1000)))
        clip = int(3 * fps)
        gestures = []
        if rng.random() < 0.85:
            probs = class_probabilities(str(rng.choice(["win", "lose"])))
            probs = 0.5 * probs + 0.5 / NUM_CLASSES   # flatten the long tail: rare poses matter for pose training
            cls = int(rng.choice(NUM_CLASSES, p=probs / probs.sum()))
            start = int(rng.integers(0, 15))
            gestures.append(Gesture(cls, start, int(rng.integers(start + 30, clip)), acting_hand(rng, subject)))
        motion = build_motion(clip, fps, subject, gestures, rng)
        pose = forward(motion, subject, framing, width, height)
        k = min(frames_per_person, n - done)
        pick = np.sort(rng.choice(clip, size=k, replace=False))
        cut = np.zeros(clip, dtype=bool)
        cut[pick[rng.random(k) < cut_in_fraction]] = True
        shot = Shot(subject, framing, venue, pose, cut, width, height, rng)
        gt_xy, gt_vis = ground_truth(pose, cut)
        for j, f in enumerate(pick):
            shot.frame(int(f), frames[done + j])
            xy[done + j], vis[done + j] = gt_xy[f], gt_vis[f]
        done += k
        group += 1
    return frames, xy, vis
