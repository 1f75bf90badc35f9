"""The demo's micro-gesture classes: name, body-part group, how often they occur and how the match outcome
shifts that. The motion of each class lives in ``motion.py`` under the same name."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass(frozen=True)
class GestureClass:
    """One class of the demo taxonomy.

    ``weight`` is the base frequency (long-tailed across classes); ``win`` / ``lose`` multiply it for videos
    of that outcome, so gesture statistics carry the emotion signal; ``duration`` scales the class's typical
    length (nods are short, folded arms last).
    """

    name: str
    group: str
    weight: float
    win: float
    lose: float
    duration: float


#: Ordered by base frequency: class_id is the position. Frequencies span ~8x (long tail), and the outcome
#: multipliers follow the paper's intuition: losers cover the face, rub hands, touch the nose and shake the
#: head more; winners nod, lean back, shrug and use illustrative hand waves more.
CLASSES: tuple[GestureClass, ...] = (
    GestureClass("nod", "Head", 0.20, 1.5, 0.7, 0.55),
    GestureClass("scratch_head", "Head-Hand", 0.15, 0.8, 1.3, 1.0),
    GestureClass("rub_hands", "Hand", 0.13, 0.6, 1.8, 1.1),
    GestureClass("touch_nose", "Head-Hand", 0.11, 0.8, 1.4, 0.6),
    GestureClass("shake_head", "Head", 0.09, 0.7, 1.5, 0.6),
    GestureClass("fold_arms", "Body-Hand", 0.08, 1.1, 1.0, 1.7),
    GestureClass("cover_face", "Head-Hand", 0.06, 0.4, 2.5, 1.2),
    GestureClass("lean_back", "Body", 0.05, 2.4, 0.5, 1.5),
    GestureClass("touch_chin", "Head-Hand", 0.045, 1.0, 1.1, 1.4),
    GestureClass("shrug_shoulders", "Body", 0.03, 1.3, 0.9, 0.6),
    GestureClass("wave_hand", "non-MG", 0.025, 2.0, 0.5, 1.0),
)

CLASS_NAMES = tuple(c.name for c in CLASSES)
NUM_CLASSES = len(CLASSES)


def class_probabilities(outcome: str, style: np.ndarray | None = None) -> np.ndarray:
    """Probability of each class for a video of ``outcome`` ('win' or 'lose'), times a subject's ``style``."""
    if outcome not in ("win", "lose"):
        raise ValueError(f"outcome must be 'win' or 'lose', got {outcome!r}")
    p = np.array([c.weight * (c.win if outcome == "win" else c.lose) for c in CLASSES], dtype=np.float64)
    if style is not None:
        p = p * np.asarray(style, dtype=np.float64)
    return p / p.sum()


def taxonomy_table() -> pd.DataFrame:
    """The taxonomy in the dataset contract's columns: class_id, name, group."""
    return pd.DataFrame({
        "class_id": np.arange(NUM_CLASSES, dtype=np.int64),
        "name": list(CLASS_NAMES),
        "group": [c.group for c in CLASSES],
    })
