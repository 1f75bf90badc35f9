"""Forward kinematics of the demo body: per-frame motion parameters -> 133 COCO-WholeBody keypoints.

The body is a small 3-D puppet (torso, head, two-link arms, 2-D hands) seen by a weak-perspective camera, so
nods, head shakes and leaning back change the projected geometry the way they do on video. Everything is
vectorised over frames: one call per video.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mgfm.core import layout as L
from mgfm.demo.subject import Framing, Subject

# ---- face template (head-local, units of the head half-width; x image-right, y down, z toward camera) ----


def _face_template() -> np.ndarray:
    """68 iBUG landmarks of a frontal face; point 0 is the jaw end on the image left (the person's right)."""
    pts = np.zeros((68, 2))
    t = np.linspace(0.0, 1.0, 17)
    pts[0:17, 0] = -0.92 * np.cos(np.pi * t) * (1.0 - 0.28 * np.sin(np.pi * t))
    pts[0:17, 1] = -0.15 + 1.2 * np.sin(np.pi * t) ** 0.7
    bx = np.linspace(-0.75, -0.15, 5)
    pts[17:22, 0] = bx
    pts[17:22, 1] = -0.42 - 0.1 * np.sin(np.linspace(0.2, np.pi - 0.2, 5))
    pts[22:27, 0] = -bx[::-1]
    pts[22:27, 1] = pts[17:22, 1][::-1]
    pts[27:31, 0] = 0.0
    pts[27:31, 1] = np.linspace(-0.28, 0.17, 4)
    pts[31:36, 0] = np.linspace(-0.2, 0.2, 5)
    pts[31:36, 1] = 0.25 + 0.04 * np.cos(np.linspace(-1.2, 1.2, 5))
    eye = np.array([(-0.6, -0.2), (-0.5, -0.27), (-0.35, -0.27), (-0.24, -0.2), (-0.35, -0.14), (-0.5, -0.14)])
    pts[36:42] = eye
    right = eye.copy()
    right[:, 0] *= -1
    pts[42:48] = right[[3, 2, 1, 0, 5, 4]]
    mouth_x = np.array([-0.36, -0.24, -0.1, 0.0, 0.1, 0.24, 0.36, 0.24, 0.1, 0.0, -0.1, -0.24])
    mouth_y = np.array([0.55, 0.49, 0.46, 0.48, 0.46, 0.49, 0.55, 0.62, 0.66, 0.67, 0.66, 0.62])
    pts[48:60, 0], pts[48:60, 1] = mouth_x, mouth_y
    inner_x = np.array([-0.3, -0.1, 0.0, 0.1, 0.3, 0.1, 0.0, -0.1])
    inner_y = np.array([0.55, 0.53, 0.535, 0.53, 0.55, 0.57, 0.575, 0.57])
    pts[60:68, 0], pts[60:68, 1] = inner_x, inner_y
    z = 0.9 * np.sqrt(np.clip(1.0 - (pts[:, 0] / 1.05) ** 2, 0.0, None))
    z[27:31] += np.linspace(0.05, 0.35, 4)
    z[31:36] += 0.15
    z[36:48] -= 0.06
    return np.concatenate([pts, z[:, None]], axis=1)


FACE_TEMPLATE = _face_template()
#: COCO head points 0-4 (nose, left eye, right eye, left ear, right ear) in the same frame.
HEAD5_TEMPLATE = np.array([
    FACE_TEMPLATE[30],
    FACE_TEMPLATE[42:48].mean(0),
    FACE_TEMPLATE[36:42].mean(0),
    (1.0, -0.12, -0.1),
    (-1.0, -0.12, -0.1),
])
#: Mouth points that move down when the mouth opens (lower lip, inner lower lip) and the chin region.
LOWER_LIP = np.array([55, 56, 57, 58, 59, 65, 66, 67])
CHIN = np.arange(5, 12)
HEAD_HEIGHT = 1.2  # head half-height / half-width (the ellipse the renderer draws)

# ---- hand template (units of hand length; u along the hand, v toward the thumb side) ----
_MCP_V = np.array([0.17, 0.05, -0.07, -0.17])
_FINGER_LEN = np.array([0.5, 0.55, 0.5, 0.4])
_SEG = np.array([0.45, 0.3, 0.25])
_SPREAD = np.array([0.14, 0.0, -0.12, -0.24])


def hand_points(wrist: np.ndarray, direction: np.ndarray, length: np.ndarray, thumb_sign: float,
                curl: np.ndarray, spread: np.ndarray) -> np.ndarray:
    """21 hand keypoints (N, 21, 2) from the wrist (N, 2), unit direction (N, 2), length (N,), per-finger curl
    (N, 5; thumb first) and spread (N,). A curled finger folds back over the palm in projection."""
    n = wrist.shape[0]
    u = direction
    v = thumb_sign * np.stack([-u[:, 1], u[:, 0]], axis=1)
    out = np.zeros((n, 21, 2))
    out[:, 0] = wrist
    # thumb: CMC, MCP, IP, tip; curling sweeps the tip across the palm
    thumb_open = np.array([(0.12, 0.15), (0.25, 0.28), (0.36, 0.36), (0.45, 0.42)])
    thumb_shut = np.array([(0.12, 0.13), (0.24, 0.18), (0.33, 0.1), (0.36, 0.0)])
    c0 = curl[:, 0][:, None, None]
    th = (1 - c0) * thumb_open[None] + c0 * thumb_shut[None]
    out[:, 1:5] = wrist[:, None] + (th[..., 0:1] * u[:, None] + th[..., 1:2] * v[:, None]) * length[:, None, None]
    for f in range(4):
        base = wrist + (0.45 * u + _MCP_V[f] * v) * length[:, None]
        ang = _SPREAD[f] * (0.4 + spread)
        ca, sa = np.cos(ang), np.sin(ang)
        # finger axis rotated toward the thumb side by ang
        fu = u * ca[:, None] + v * sa[:, None]
        pos = base
        out[:, 5 + 4 * f] = base
        bend = np.zeros(n)
        for k in range(3):
            bend = bend + curl[:, f + 1] * (np.pi / 2) * (0.9 if k == 0 else 1.0)
            seg = _FINGER_LEN[f] * _SEG[k] * length * np.cos(bend)
            pos = pos + fu * seg[:, None]
            out[:, 6 + 4 * f + k] = pos
    return out


# ---- motion parameters ----
PARAM_KEYS = ("root_dx", "root_dy", "torso_roll", "torso_pitch", "shoulder_lift",
              "head_yaw", "head_pitch", "head_roll", "mouth", "blink")
HANDS = ("l", "r")  # l: the person's left hand (image right), r: right hand (image left)
HAND_SIGN = {"l": 1.0, "r": -1.0}


@dataclass
class WristTask:
    """Move one wrist toward ``anchor + offset`` (offset in shoulder widths) with weight ``w`` on frames ``idx``."""

    hand: str
    idx: np.ndarray
    w: np.ndarray
    anchor: str
    offset: np.ndarray  # (len(idx), 3)


@dataclass
class Motion:
    """Per-frame parameters of one person over ``n`` frames, plus wrist targets resolved after the head pose."""

    n: int
    p: dict[str, np.ndarray] = field(default_factory=dict)
    hand_dir: dict[str, np.ndarray] = field(default_factory=dict)   # (n, 2) unit image directions
    curl: dict[str, np.ndarray] = field(default_factory=dict)       # (n, 5)
    spread: dict[str, np.ndarray] = field(default_factory=dict)     # (n,)
    hand_scale: dict[str, np.ndarray] = field(default_factory=dict)  # (n,) foreshortening
    tasks: list[WristTask] = field(default_factory=list)

    @classmethod
    def zeros(cls, n: int) -> Motion:
        m = cls(n)
        for k in PARAM_KEYS:
            m.p[k] = np.zeros(n)
        for h in HANDS:
            m.hand_dir[h] = np.tile([0.0, 1.0], (n, 1))
            m.curl[h] = np.full((n, 5), 0.35)
            m.spread[h] = np.zeros(n)
            m.hand_scale[h] = np.ones(n)
        return m


@dataclass
class Pose:
    """Keypoints of one person over frames plus what the renderer needs beyond them."""

    xy: np.ndarray            # (n, 133, 2) pixels
    z: np.ndarray             # (n, 133) depth toward the camera (pixels)
    visible: np.ndarray       # (n, 133) bool
    head_centre: np.ndarray   # (n, 2)
    head_axes: np.ndarray     # (n, 2) ellipse half-axes in pixels
    head_angle: np.ndarray    # (n,) degrees (image roll)
    head_yaw: np.ndarray      # (n,)
    neck: np.ndarray          # (n, 2) neck top (chin-side end of the neck)
    unit: float               # pixels per shoulder width


def _rot_x(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, s], -1), np.stack([z, -s, c], -1)], -2)


def _rot_y(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, z, s], -1), np.stack([z, o, z], -1), np.stack([-s, z, c], -1)], -2)


def _rot_z(a: np.ndarray) -> np.ndarray:
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _apply(r: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate vectors: r (n,3,3), v (n,3) or (n,k,3)."""
    if v.ndim == 2:
        return np.einsum("nij,nj->ni", r, v)
    return np.einsum("nij,nkj->nki", r, v)


def _ik_elbow(shoulder: np.ndarray, wrist: np.ndarray, l1: float, l2: float, pole: np.ndarray
              ) -> tuple[np.ndarray, np.ndarray]:
    """Two-link IK in 3-D: elbow position (bent toward ``pole``) and the reachable wrist."""
    d = wrist - shoulder
    dist = np.linalg.norm(d, axis=1)
    direction = d / np.maximum(dist, 1e-6)[:, None]
    dist_c = np.clip(dist, abs(l1 - l2) + 1e-3, l1 + l2 - 1e-3)
    wrist = shoulder + direction * dist_c[:, None]
    a = (l1 ** 2 - l2 ** 2 + dist_c ** 2) / (2 * dist_c)
    h = np.sqrt(np.clip(l1 ** 2 - a ** 2, 0.0, None))
    perp = pole[None, :] - (direction @ pole)[:, None] * direction
    perp /= np.maximum(np.linalg.norm(perp, axis=1), 1e-6)[:, None]
    elbow = shoulder + a[:, None] * direction + h[:, None] * perp
    return elbow, wrist


def _torso(motion: Motion, subject: Subject, framing: Framing, width: int, height: int, sw: float
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """3-D keypoints (n, 133, 3) with shoulders, hips, seated legs and feet filled; also the root (hip centre),
    the shoulder centre and the torso's up direction per frame."""
    n = motion.n
    p = motion.p
    rest_shoulder_y = framing.shoulder_y * height
    root = np.stack([
        np.full(n, framing.centre_x * width) + p["root_dx"] * sw,
        np.full(n, rest_shoulder_y + subject.torso_len * sw) + p["root_dy"] * sw,
        np.zeros(n),
    ], axis=1)
    r_torso = _rot_z(p["torso_roll"] + subject.posture_roll) @ _rot_x(-p["torso_pitch"])
    up = _apply(r_torso, np.tile([0.0, -1.0, 0.0], (n, 1)))
    across = _apply(r_torso, np.tile([1.0, 0.0, 0.0], (n, 1)))
    sh_centre = root + up * (subject.torso_len * sw) - np.stack([np.zeros(n), p["shoulder_lift"] * sw,
                                                                 np.zeros(n)], 1)
    kp = np.zeros((n, L.NUM_KEYPOINTS, 3))
    kp[:, L.LEFT_SHOULDER] = sh_centre + across * (sw / 2)
    kp[:, L.RIGHT_SHOULDER] = sh_centre - across * (sw / 2)
    kp[:, L.LEFT_HIP] = root + across * (0.42 * sw)
    kp[:, L.RIGHT_HIP] = root - across * (0.42 * sw)
    # legs: seated, knees forward, hidden behind the table (kept plausible for completeness)
    for side, hip, knee, ankle in ((1.0, 11, 13, 15), (-1.0, 12, 14, 16)):
        kp[:, knee] = kp[:, hip] + np.array([side * 0.08, 0.12, 1.1]) * sw
        kp[:, ankle] = kp[:, knee] + np.array([side * 0.05, 1.2, 0.05]) * sw
    for j, (ankle, dx, dy, dz) in enumerate(((15, 0.08, 0.12, 0.35), (15, 0.18, 0.1, 0.3), (15, 0.0, 0.12, -0.1),
                                             (16, -0.08, 0.12, 0.35), (16, -0.18, 0.1, 0.3), (16, 0.0, 0.12, -0.1))):
        kp[:, 17 + j] = kp[:, ankle] + np.array([dx, dy, dz]) * sw
    return kp, root, sh_centre, up


def _head(kp: np.ndarray, motion: Motion, subject: Subject, sh_centre: np.ndarray, up: np.ndarray, sw: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Fill the face (mouth opening, blinks) and the five COCO head points; returns the head centre, the neck
    top, the head rotation and the head radius in pixels."""
    n = motion.n
    p = motion.p
    neck_top = sh_centre + up * (subject.neck_len * sw)
    r_head = (_rot_z(p["torso_roll"] + subject.posture_roll + p["head_roll"])
              @ _rot_y(p["head_yaw"] + subject.head_bias[0])
              @ _rot_x(p["head_pitch"] + subject.head_bias[1] - 0.6 * p["torso_pitch"]))
    hr = subject.head_r * sw
    head_centre = neck_top + _apply(r_head, np.tile([0.0, -0.95 * hr, 0.0], (n, 1)))
    face = np.broadcast_to(FACE_TEMPLATE, (n, 68, 3)).copy()
    open_ = np.clip(p["mouth"], 0, 1)[:, None]
    face[:, LOWER_LIP, 1] += 0.12 * open_
    face[:, CHIN, 1] += 0.06 * open_
    blink = np.clip(p["blink"], 0, 1)[:, None]
    for upper, lower in (((37, 38), (41, 40)), ((43, 44), (47, 46))):
        for a, b in zip(upper, lower):
            mid = 0.5 * (face[:, a, 1] + face[:, b, 1])
            face[:, a, 1] += (mid - face[:, a, 1]) * blink[:, 0] * 0.9
            face[:, b, 1] += (mid - face[:, b, 1]) * blink[:, 0] * 0.9
    kp[:, L.FACE] = head_centre[:, None] + _apply(r_head, face * hr)
    kp[:, 0:5] = head_centre[:, None] + _apply(r_head, np.broadcast_to(HEAD5_TEMPLATE, (n, 5, 3)) * hr)
    return head_centre, neck_top, r_head, hr


def _arms(kp: np.ndarray, motion: Motion, subject: Subject, framing: Framing, height: int, sw: float,
          root: np.ndarray, sh_centre: np.ndarray, head_centre: np.ndarray, r_head: np.ndarray, hr: float) -> None:
    """Wrists follow the motion's tasks towards body/table anchors; elbows by two-bone IK; fills ``kp``."""
    n = motion.n
    anchors = {
        "table": np.stack([sh_centre[:, 0], np.full(n, framing.table_y * height + 0.1 * sw),
                           np.full(n, 0.6 * sw)], 1),
        "lap": np.stack([root[:, 0], root[:, 1] + 0.15 * sw, np.full(n, 0.45 * sw)], 1),
        "shoulders": sh_centre,
        "nose": kp[:, L.NOSE],
        "chin": kp[:, L.FACE.start + 8],
        "mouth": kp[:, L.FACE.start + 62],
        "face": head_centre + _apply(r_head, np.tile([0.0, 0.1 * hr, 0.9 * hr], (n, 1))),
        "head_l": head_centre + _apply(r_head, np.tile([0.65 * hr, -1.2 * hr, 0.1 * hr], (n, 1))),
        "head_r": head_centre + _apply(r_head, np.tile([-0.65 * hr, -1.2 * hr, 0.1 * hr], (n, 1))),
        "shoulder_l": kp[:, L.LEFT_SHOULDER],
        "shoulder_r": kp[:, L.RIGHT_SHOULDER],
    }
    wrist = {h: anchors["table"] + np.array([HAND_SIGN[h] * 0.38, 0.0, 0.0]) * sw for h in HANDS}
    for task in motion.tasks:
        target = anchors[task.anchor][task.idx] + task.offset * sw
        w = task.w[:, None]
        wrist[task.hand][task.idx] = (1 - w) * wrist[task.hand][task.idx] + w * target
    l1, l2 = subject.upper_arm * sw, subject.forearm * sw
    for h, sh, el, wr, hand in (("l", L.LEFT_SHOULDER, L.LEFT_ELBOW, L.LEFT_WRIST, L.LEFT_HAND),
                                ("r", L.RIGHT_SHOULDER, L.RIGHT_ELBOW, L.RIGHT_WRIST, L.RIGHT_HAND)):
        pole = np.array([HAND_SIGN[h] * 1.0, 0.7, -0.5])
        kp[:, el], kp[:, wr] = _ik_elbow(kp[:, sh], wrist[h], l1, l2, pole)
        kp[:, hand, 2] = kp[:, wr, 2][:, None]


def _project(kp: np.ndarray, motion: Motion, subject: Subject, sw: float, width: int, height: int
             ) -> tuple[np.ndarray, np.ndarray, float]:
    """Weak perspective about the frame centre (nearer points spread out), then the 2-D hands attached to the
    projected wrists; returns the image points (n, 133, 2), the frame centre and the focal length."""
    focal = 5.0 * height
    centre = np.array([width / 2, height / 2])
    s = focal / (focal - kp[..., 2])
    xy = centre + (kp[..., :2] - centre) * s[..., None]
    # hands are 2-D in the image plane, attached to the projected wrist
    for h, wr, hand in (("l", L.LEFT_WRIST, L.LEFT_HAND), ("r", L.RIGHT_WRIST, L.RIGHT_HAND)):
        d = motion.hand_dir[h]
        d = d / np.maximum(np.linalg.norm(d, axis=1), 1e-6)[:, None]
        length = subject.hand_len * sw * motion.hand_scale[h] * s[:, wr]
        xy[:, hand] = hand_points(xy[:, wr], d, length, HAND_SIGN[h], motion.curl[h], motion.spread[h])
    return xy, centre, focal


def _visibility(xy: np.ndarray, yaw: np.ndarray, framing: Framing, width: int, height: int) -> np.ndarray:
    """Inside the frame, not behind the table (torso and legs behind its top, arms behind its front edge), and
    the far ear hidden when the head turns."""
    n = len(xy)
    visible = np.ones((n, L.NUM_KEYPOINTS), dtype=bool)
    inside = (xy[..., 0] >= 0) & (xy[..., 0] <= width - 1) & (xy[..., 1] >= 0) & (xy[..., 1] <= height - 1)
    behind_top = xy[..., 1] >= framing.table_y * height        # torso and legs sit behind the table top
    behind_front = xy[..., 1] >= framing.table_front * height  # arms and hands pass over it
    lower_body = np.zeros(L.NUM_KEYPOINTS, dtype=bool)
    lower_body[11:23] = True
    visible &= inside & ~np.where(lower_body[None], behind_top, behind_front)
    visible[:, L.LEFT_EAR] &= yaw < 0.45    # turning right hides the left ear
    visible[:, L.RIGHT_EAR] &= yaw > -0.45
    return visible


def forward(motion: Motion, subject: Subject, framing: Framing, width: int, height: int) -> Pose:
    """Keypoints of ``subject`` performing ``motion`` in a ``width`` x ``height`` frame."""
    n = motion.n
    p = motion.p
    sw = subject.shoulder_w * framing.scale * height          # pixels per shoulder width
    kp, root, sh_centre, up = _torso(motion, subject, framing, width, height, sw)
    head_centre, neck_top, r_head, hr = _head(kp, motion, subject, sh_centre, up, sw)
    _arms(kp, motion, subject, framing, height, sw, root, sh_centre, head_centre, r_head, hr)
    xy, centre, focal = _project(kp, motion, subject, sw, width, height)
    yaw = p["head_yaw"] + subject.head_bias[0]
    visible = _visibility(xy, yaw, framing, width, height)

    hc = centre + (head_centre[:, :2] - centre) * (focal / (focal - head_centre[:, 2]))[:, None]
    nt = centre + (neck_top[:, :2] - centre) * (focal / (focal - neck_top[:, 2]))[:, None]
    roll = p["torso_roll"] + subject.posture_roll + p["head_roll"]
    pitch = p["head_pitch"] + subject.head_bias[1] - 0.6 * p["torso_pitch"]
    axes = np.stack([np.full(n, hr), hr * HEAD_HEIGHT * (1 - 0.12 * np.abs(np.sin(pitch)))], 1)
    return Pose(xy=xy.astype(np.float32), z=kp[..., 2].astype(np.float32), visible=visible, head_centre=hc,
                head_axes=axes, head_angle=np.degrees(roll), head_yaw=yaw, neck=nt, unit=sw)
