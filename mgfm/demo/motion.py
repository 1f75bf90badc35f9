"""Motion of the demo person: idle behaviour (breathing, sway, blinks, talking, resting hands) and one motion
primitive per gesture class, composed into per-frame parameters for ``skeleton.forward``.

Each gesture blends its targets in with a smooth envelope (ramp in, hold with a class-specific oscillation,
ramp out), so an instance's start and end frames are where the motion leaves and returns to rest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from mgfm.demo.skeleton import HAND_SIGN, Motion, WristTask
from mgfm.demo.subject import Subject
from mgfm.demo.taxonomy import CLASSES


def smooth_noise(rng: np.random.Generator, n: int, fps: float, max_hz: float, amp: float) -> np.ndarray:
    """Band-limited noise: a sum of random sinusoids below ``max_hz`` (cheap, smooth, stationary)."""
    t = np.arange(n) / fps
    freqs = rng.uniform(0.03, max_hz, 4)
    phases = rng.uniform(0, 2 * np.pi, 4)
    weights = rng.normal(0, 1, 4)
    x = (weights[:, None] * np.sin(2 * np.pi * freqs[:, None] * t[None] + phases[:, None])).sum(0)
    return amp * x / np.sqrt(np.maximum((weights ** 2).sum() / 2, 1e-9))


def _unit(angle_deg: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array([np.cos(a), np.sin(a)])


def idle_motion(n: int, fps: float, subject: Subject, rng: np.random.Generator) -> Motion:
    """Rest behaviour over ``n`` frames: breathing, sway, small head motion, blinks, talking spells and slow
    switches between resting the hands apart and clasped on the table."""
    m = Motion.zeros(n)
    k = subject.idle_amount
    t = np.arange(n) / fps
    p = m.p
    p["root_dx"] = smooth_noise(rng, n, fps, 0.15, 0.04 * k)
    p["root_dy"] = smooth_noise(rng, n, fps, 0.1, 0.01 * k)
    p["torso_roll"] = smooth_noise(rng, n, fps, 0.1, 0.025 * k)
    p["torso_pitch"] = smooth_noise(rng, n, fps, 0.1, 0.03 * k)
    breath_hz = rng.uniform(0.2, 0.33)
    p["shoulder_lift"] = 0.012 * np.sin(2 * np.pi * breath_hz * t + rng.uniform(0, 6.3))
    p["head_yaw"] = smooth_noise(rng, n, fps, 0.3, 0.08 * k)
    p["head_pitch"] = smooth_noise(rng, n, fps, 0.3, 0.04 * k)
    p["head_roll"] = smooth_noise(rng, n, fps, 0.2, 0.03 * k)
    # talking spells: mouth moves at syllable rate while answering
    talking = np.zeros(n)
    i = int(rng.integers(0, max(1, int(2 * fps))))
    while i < n:
        length = int(rng.uniform(2, 9) * fps)
        talking[i:i + length] = 1.0
        i += length + int(rng.uniform(1, 5) * fps)
    syll = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(3, 5) * t + smooth_noise(rng, n, fps, 1.0, 2.0))
    p["mouth"] = talking * syll * 0.8
    # blinks every 2-6 s, 3-5 frames each
    i = int(rng.uniform(0.5, 3) * fps)
    while i < n:
        length = int(rng.integers(3, 6))
        shape = np.sin(np.linspace(0, np.pi, length)) ** 0.5
        p["blink"][i:i + length] = shape[: n - i]
        i += int(rng.uniform(2, 6) * fps)
    # resting hands: apart or clasped, switching every 5-15 s with a smooth transition
    mode = np.zeros(n)
    i, state = 0, float(rng.random() < 0.4)
    while i < n:
        length = int(rng.uniform(5, 15) * fps)
        mode[i:i + length] = state
        state = 1.0 - state
        i += length
    kernel = np.ones(int(0.6 * fps)) / int(0.6 * fps)
    mode = np.convolve(np.pad(mode, (len(kernel), len(kernel)), mode="edge"), kernel, "same")[len(kernel):-len(kernel)]
    idx = np.arange(n)
    for h in ("l", "r"):
        s = HAND_SIGN[h]
        apart = np.array([s * 0.4, 0.0, 0.0])
        clasped = np.array([s * 0.07, -0.02, 0.1])
        off = (1 - mode)[:, None] * apart + mode[:, None] * clasped
        off = off + np.stack([smooth_noise(rng, n, fps, 0.3, 0.02 * k), smooth_noise(rng, n, fps, 0.3, 0.01 * k),
                              np.zeros(n)], 1)
        m.tasks.append(WristTask(h, idx, np.ones(n), "table", off))
        d_apart, d_clasp = _unit(90 + s * 25), _unit(90 + s * 75)
        m.hand_dir[h] = (1 - mode)[:, None] * d_apart + mode[:, None] * d_clasp
        m.hand_scale[h] = np.full(n, 0.8)
        m.curl[h] = np.clip(0.35 + 0.2 * mode[:, None] + smooth_noise(rng, n, fps, 0.5, 0.08)[:, None], 0, 1) \
            * np.ones((1, 5))
    return m


def envelope(length: int, fps: float, rng: np.random.Generator) -> np.ndarray:
    """Weight of a gesture over its frames: smoothstep ramps of ~0.3 s (at most a third each), hold at 1."""
    ramp = int(np.clip(round(0.3 * fps * rng.uniform(0.7, 1.3)), 1, max(1, length // 3)))
    w = np.ones(length)
    x = (np.arange(1, ramp + 1)) / (ramp + 1)
    up = x * x * (3 - 2 * x)
    w[:ramp] = up
    w[length - ramp:] = up[::-1]
    return w


@dataclass
class _Ctx:
    m: Motion
    idx: np.ndarray       # frames of the instance
    t: np.ndarray         # seconds since the instance start
    w: np.ndarray         # envelope
    rng: np.random.Generator
    subject: Subject
    hand: str             # the acting hand for one-handed gestures

    def add(self, key: str, delta: np.ndarray | float) -> None:
        self.m.p[key][self.idx] += self.w * delta

    def wrist(self, hand: str, anchor: str, offset: np.ndarray, weight: np.ndarray | None = None) -> None:
        off = np.broadcast_to(np.asarray(offset, dtype=np.float64), (len(self.idx), 3)).copy()
        self.m.tasks.append(WristTask(hand, self.idx, self.w if weight is None else weight, anchor, off))

    def hand_shape(self, hand: str, direction: np.ndarray, curl, spread: float = 0.0, scale: float = 1.0) -> None:
        w = self.w[:, None]
        d = np.broadcast_to(np.asarray(direction, dtype=np.float64), (len(self.idx), 2))
        self.m.hand_dir[hand][self.idx] = (1 - w) * self.m.hand_dir[hand][self.idx] + w * d
        c = np.broadcast_to(np.asarray(curl, dtype=np.float64), (len(self.idx), 5)) if np.ndim(curl) else curl
        self.m.curl[hand][self.idx] = (1 - w) * self.m.curl[hand][self.idx] + w * c
        self.m.spread[hand][self.idx] = (1 - self.w) * self.m.spread[hand][self.idx] + self.w * spread
        self.m.hand_scale[hand][self.idx] = (1 - self.w) * self.m.hand_scale[hand][self.idx] + self.w * scale

    def osc(self, hz: float, phase: float | None = None) -> np.ndarray:
        ph = self.rng.uniform(0, 2 * np.pi) if phase is None else phase
        return np.sin(2 * np.pi * hz * self.t + ph)


def _fingertip_offset(c: _Ctx, direction: np.ndarray, reach: float) -> np.ndarray:
    """Wrist offset (shoulder widths) that puts a point ``reach`` hand-lengths along ``direction`` on the anchor."""
    d = np.asarray(direction, dtype=np.float64)
    d = d / np.linalg.norm(d)
    return -reach * c.subject.hand_len * np.array([d[0], d[1], 0.0])


# ---- motion primitives, one per class (names match taxonomy.CLASSES) ----


def nod(c: _Ctx) -> None:
    hz, amp = c.rng.uniform(1.5, 2.4), c.rng.uniform(0.2, 0.32)
    c.add("head_pitch", amp * 0.5 * (1 - np.cos(2 * np.pi * hz * c.t)))


def shake_head(c: _Ctx) -> None:
    hz, amp = c.rng.uniform(1.3, 2.1), c.rng.uniform(0.3, 0.45)
    c.add("head_yaw", amp * np.sin(2 * np.pi * hz * c.t))


def scratch_head(c: _Ctx) -> None:
    h, s = c.hand, HAND_SIGN[c.hand]
    d = np.array([-s * 0.45, -0.9])
    off = _fingertip_offset(c, d, 0.7)[None] + np.outer(0.05 * c.osc(c.rng.uniform(3, 5)), [0.3 * s, 1.0, 0.0])
    c.wrist(h, f"head_{h}", off)
    curl = 0.45 + 0.25 * c.osc(c.rng.uniform(3, 5))
    c.hand_shape(h, d / np.linalg.norm(d), np.stack([np.full(len(c.idx), 0.3)] + [curl] * 4, 1), scale=0.95)
    c.add("head_roll", -s * 0.12)
    c.add("head_pitch", 0.08)


def touch_nose(c: _Ctx) -> None:
    h, s = c.hand, HAND_SIGN[c.hand]
    d = np.array([-s * 0.35, -0.94])
    off = _fingertip_offset(c, d, 0.95) + np.array([s * 0.03, 0.02, 0.12])
    c.wrist(h, "nose", off[None] + np.outer(0.015 * c.osc(2.5), [1, 0, 0]))
    c.hand_shape(h, d / np.linalg.norm(d), [0.7, 0.0, 0.9, 0.9, 0.9], scale=0.95)
    c.add("head_pitch", 0.08)


def touch_chin(c: _Ctx) -> None:
    h, s = c.hand, HAND_SIGN[c.hand]
    d = np.array([-s * 0.15, -1.0])
    off = _fingertip_offset(c, d, 0.5) + np.array([0.0, 0.03, 0.1])
    c.wrist(h, "chin", off[None] + np.outer(0.03 * c.osc(c.rng.uniform(0.8, 1.6)), [1, 0, 0]))
    c.hand_shape(h, d / np.linalg.norm(d), [0.6, 0.8, 0.85, 0.85, 0.85])
    c.add("head_roll", s * 0.1)
    c.add("head_pitch", 0.06)


def cover_face(c: _Ctx) -> None:
    c.add("head_pitch", 0.25 + 0.04 * c.osc(0.7))
    for h in ("l", "r"):
        s = HAND_SIGN[h]
        d = np.array([-s * 0.25, -1.0])
        off = _fingertip_offset(c, d, 0.75) + np.array([s * 0.17, 0.08, 0.1])
        c.wrist(h, "face", off[None] + np.outer(0.015 * c.osc(1.2, 0.0), [s, 0, 0]))
        c.hand_shape(h, d / np.linalg.norm(d), [0.2, 0.05, 0.05, 0.05, 0.05], spread=0.1)


def rub_hands(c: _Ctx) -> None:
    hz = c.rng.uniform(2.0, 3.2)
    rub = c.osc(hz)
    for h in ("l", "r"):
        s = HAND_SIGN[h]
        off = np.array([s * 0.13, -0.18, 0.05])[None] + np.outer(rub * s * 0.05, [0.3, 1.0, 0.0])
        c.wrist(h, "table", off)
        c.hand_shape(h, np.array([-s, -0.3]) / np.hypot(1, 0.3), [0.3, 0.25, 0.25, 0.25, 0.25], scale=0.9)


def fold_arms(c: _Ctx) -> None:
    c.add("torso_pitch", 0.05)
    for h in ("l", "r"):
        s = HAND_SIGN[h]
        c.wrist(h, "shoulders", np.array([-s * 0.33, 0.6 + (0.06 if h == "r" else 0.0), 0.34]))
        c.hand_shape(h, np.array([-s * 0.85, -0.5]), [0.5, 0.6, 0.6, 0.6, 0.6], scale=0.8)


def lean_back(c: _Ctx) -> None:
    c.add("torso_pitch", c.rng.uniform(0.32, 0.45))
    c.add("root_dy", 0.12)
    c.add("head_pitch", -0.12)
    for h in ("l", "r"):
        s = HAND_SIGN[h]
        c.wrist(h, "lap", np.array([s * 0.45, 0.0, 0.0]))
        c.hand_shape(h, np.array([s * 0.2, 1.0]), 0.4)


def shrug_shoulders(c: _Ctx) -> None:
    pulses = 1 if c.t[-1] < 1.2 else 2
    bump = np.sin(np.pi * np.clip(c.t / max(c.t[-1], 1e-3), 0, 1) * pulses) ** 2
    c.add("shoulder_lift", 0.16 * bump)
    c.add("head_roll", 0.06 * c.rng.choice([-1, 1]) * bump)
    for h in ("l", "r"):
        s = HAND_SIGN[h]
        c.wrist(h, "table", np.array([s * 0.62, -0.2, 0.1]))
        c.hand_shape(h, np.array([s * 1.0, -0.25]), 0.05, spread=0.4)


def wave_hand(c: _Ctx) -> None:
    h, s = c.hand, HAND_SIGN[c.hand]
    hz = c.rng.uniform(1.8, 2.6)
    osc = c.osc(hz, 0.0)
    c.wrist(h, f"shoulder_{h}", np.array([s * 0.3, -0.75, 0.3])[None] + np.outer(0.12 * osc, [1, 0.1, 0]))
    ang = -np.pi / 2 + 0.35 * osc
    d = np.stack([np.cos(ang), np.sin(ang)], 1)
    c.hand_shape(h, d, 0.0, spread=0.6)
    c.add("mouth", 0.3)


PRIMITIVES: dict[str, Callable[[_Ctx], None]] = {
    "nod": nod, "scratch_head": scratch_head, "rub_hands": rub_hands, "touch_nose": touch_nose,
    "shake_head": shake_head, "fold_arms": fold_arms, "cover_face": cover_face, "lean_back": lean_back,
    "touch_chin": touch_chin, "shrug_shoulders": shrug_shoulders, "wave_hand": wave_hand,
}
assert set(PRIMITIVES) == {c.name for c in CLASSES}, "every taxonomy class needs a motion primitive"


@dataclass(frozen=True)
class Gesture:
    """One gesture instance: class id, first and last frame (inclusive), acting hand."""

    class_id: int
    start: int
    end: int
    hand: str


def apply_gesture(m: Motion, g: Gesture, fps: float, subject: Subject, rng: np.random.Generator) -> None:
    """Blend one gesture instance into ``m`` (in place)."""
    idx = np.arange(g.start, g.end + 1)
    ctx = _Ctx(m=m, idx=idx, t=(idx - g.start) / fps, w=envelope(len(idx), fps, rng), rng=rng,
               subject=subject, hand=g.hand)
    PRIMITIVES[CLASSES[g.class_id].name](ctx)


def build_motion(n: int, fps: float, subject: Subject, gestures: list[Gesture],
                 rng: np.random.Generator) -> Motion:
    """Idle behaviour over ``n`` frames with ``gestures`` blended in, in order."""
    m = idle_motion(n, fps, subject, rng)
    for g in gestures:
        apply_gesture(m, g, fps, subject, rng)
    return m


def acting_hand(rng: np.random.Generator, subject: Subject) -> str:
    """The dominant hand three times out of four."""
    dominant = "r" if subject.right_handed else "l"
    other = "l" if dominant == "r" else "r"
    return dominant if rng.random() < 0.75 else other
