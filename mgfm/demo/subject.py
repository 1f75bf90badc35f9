"""Who sits at the table, and where: a subject's body proportions, colours and gesture style, and a venue's
backdrop colours and camera framing. Both are drawn from their own seeds, so a subject looks the same in all
of their videos and adding a subject never changes another."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgfm.common.seeding import rng_for
from mgfm.demo.taxonomy import NUM_CLASSES

SKIN_TONES = np.array([  # BGR-free: RGB, light to dark
    (241, 204, 178), (228, 185, 150), (210, 160, 120), (186, 132, 96), (150, 100, 70), (110, 72, 50), (80, 55, 40),
], dtype=np.float64)
HAIR_COLOURS = np.array([
    (30, 24, 20), (60, 40, 28), (110, 75, 45), (170, 130, 80), (210, 180, 120), (120, 120, 120), (150, 60, 30),
], dtype=np.float64)
SHIRT_COLOURS = np.array([
    (30, 60, 160), (200, 40, 40), (20, 20, 20), (240, 240, 240), (30, 140, 70), (250, 170, 30), (120, 40, 140),
    (20, 160, 200), (90, 90, 100), (230, 90, 160), (0, 90, 90), (160, 120, 80),
], dtype=np.float64)
HAIR_STYLES = ("short", "long", "cap", "buzz")


def _colour(rng: np.random.Generator, palette: np.ndarray, jitter: float) -> tuple[int, int, int]:
    base = palette[rng.integers(len(palette))]
    c = np.clip(base + rng.normal(0.0, jitter, 3), 0, 255)
    return tuple(int(v) for v in c)


@dataclass(frozen=True)
class Subject:
    """A synthetic interviewee. Lengths are in units of the shoulder width (``shoulder_w`` is a fraction of
    the frame height), so the same subject renders consistently at any resolution."""

    subject_id: str
    shoulder_w: float      # shoulder-to-shoulder distance / frame height
    torso_len: float       # shoulder centre to hip centre
    neck_len: float
    head_r: float          # head half-width
    upper_arm: float
    forearm: float
    hand_len: float        # wrist to middle fingertip
    skin: tuple[int, int, int]
    hair: tuple[int, int, int]
    shirt: tuple[int, int, int]
    hair_style: str
    long_sleeves: bool
    right_handed: bool
    posture_roll: float    # habitual sideways lean (rad)
    head_bias: tuple[float, float]  # habitual head yaw, pitch (rad)
    style: tuple[float, ...]        # per-class frequency multipliers: personal habits
    idle_amount: float     # how fidgety the idle motion is


def make_subject(seed: int, subject_id: str) -> Subject:
    """Draw a subject from ``rng_for(seed, "demo", "subject", subject_id)``."""
    rng = rng_for(seed, "demo", "subject", subject_id)
    skin = _colour(rng, SKIN_TONES, 8.0)
    hair = _colour(rng, HAIR_COLOURS, 10.0)
    shirt = _colour(rng, SHIRT_COLOURS, 18.0)
    return Subject(
        subject_id=subject_id,
        shoulder_w=float(rng.uniform(0.27, 0.33)),
        torso_len=float(rng.uniform(1.15, 1.35)),
        neck_len=float(rng.uniform(0.14, 0.22)),
        head_r=float(rng.uniform(0.26, 0.31)),
        upper_arm=float(rng.uniform(0.78, 0.9)),
        forearm=float(rng.uniform(0.7, 0.8)),
        hand_len=float(rng.uniform(0.42, 0.5)),
        skin=skin, hair=hair, shirt=shirt,
        hair_style=HAIR_STYLES[int(rng.integers(len(HAIR_STYLES)))],
        long_sleeves=bool(rng.random() < 0.35),
        right_handed=bool(rng.random() < 0.85),
        posture_roll=float(rng.normal(0.0, 0.04)),
        head_bias=(float(rng.normal(0.0, 0.08)), float(rng.normal(0.0, 0.05))),
        style=tuple(float(v) for v in np.exp(rng.normal(0.0, 0.35, NUM_CLASSES))),
        idle_amount=float(rng.uniform(0.6, 1.4)),
    )


@dataclass(frozen=True)
class Framing:
    """Where the person sits in the frame of one video (fractions of width / height)."""

    centre_x: float     # hip centre x / width
    shoulder_y: float   # rest shoulder height / height
    table_y: float      # back edge of the table top / height
    table_front: float  # front edge of the table top / height
    scale: float        # camera zoom on the subject's shoulder width


def make_framing(rng: np.random.Generator) -> Framing:
    table_y = float(rng.uniform(0.69, 0.74))
    return Framing(
        centre_x=float(rng.uniform(0.42, 0.58)),
        shoulder_y=float(rng.uniform(0.41, 0.47)),
        table_y=table_y,
        table_front=table_y + float(rng.uniform(0.08, 0.11)),
        scale=float(rng.uniform(0.9, 1.1)),
    )


@dataclass(frozen=True)
class Venue:
    """A press-conference room: sponsor-board colours and logo layout, table cloth colour."""

    venue_id: int
    board: tuple[int, int, int]
    logos: tuple[tuple[int, int, int], ...]
    tile: float          # logo tile width / frame width
    text: str
    table: tuple[int, int, int]
    wall: tuple[int, int, int]


VENUE_NAMES = ("OPEN", "MASTERS", "CUP", "TOUR", "CHAMP", "GRAND")


def make_venue(seed: int, venue_id: int) -> Venue:
    rng = rng_for(seed, "demo", "venue", venue_id)
    board = tuple(int(v) for v in rng.integers(20, 235, 3))
    logos = tuple(tuple(int(v) for v in rng.integers(0, 256, 3)) for _ in range(3))
    return Venue(
        venue_id=venue_id, board=board, logos=logos, tile=float(rng.uniform(0.18, 0.3)),
        text=VENUE_NAMES[venue_id % len(VENUE_NAMES)],
        table=tuple(int(v) for v in rng.integers(10, 120, 3)),
        wall=tuple(int(v) for v in rng.integers(60, 200, 3)),
    )
