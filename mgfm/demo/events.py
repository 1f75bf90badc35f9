"""What happens inside one demo video: cut-ins and gesture instances, from the video's own seed.

Gesture classes are drawn from the taxonomy's frequencies shifted by the video's outcome and the subject's
habits; durations are lognormal (long tail) around ``gesture_mean_s``, clipped to ``gesture_duration_s``;
instances never overlap each other or a cut-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgfm.common.seeding import rng_for
from mgfm.demo.motion import Gesture, acting_hand
from mgfm.demo.plan import FPS, VideoPlan
from mgfm.demo.subject import Subject
from mgfm.demo.taxonomy import CLASSES, NUM_CLASSES, class_probabilities

DURATION_SIGMA = 0.7  # lognormal shape: median ~0.78 x mean, 1 % of instances above ~3.5 x mean


@dataclass(frozen=True)
class VideoEvents:
    cut_ins: list[tuple[int, int]]   # inclusive frame intervals where the person is not visible
    gestures: list[Gesture]

    def cut_in_mask(self, n_frames: int) -> np.ndarray:
        mask = np.zeros(n_frames, dtype=bool)
        for s, e in self.cut_ins:
            mask[s:e + 1] = True
        return mask


def _duration_scale() -> float:
    """Mean class duration factor under the base frequencies, so the overall mean stays ``gesture_mean_s``."""
    p = np.array([c.weight for c in CLASSES])
    return float((p * np.array([c.duration for c in CLASSES])).sum() / p.sum())


def plan_events(cfg: dict, video: VideoPlan, subject: Subject) -> VideoEvents:
    """Cut-ins and gestures of ``video`` (``cfg`` is the checked ``dataset.demo`` settings)."""
    rng = rng_for(cfg["seed"], "demo", video.video_id, "events")
    n = video.n_frames
    lo, hi = cfg["cut_ins"]
    k = int(rng.integers(lo, hi + 1))
    cut_ins: list[tuple[int, int]] = []
    if k:
        part = n / k
        for j in range(k):
            length = int(round(rng.uniform(*cfg["cut_in_duration_s"]) * FPS))
            room = int(part) - length - int(FPS)
            if room <= 0:
                continue
            start = int(j * part) + int(FPS // 2) + int(rng.integers(0, room))
            cut_ins.append((start, min(n - 1, start + length - 1)))
    probs = class_probabilities(video.outcome, np.array(subject.style))
    mean, (dmin, dmax) = float(cfg["gesture_mean_s"]), cfg["gesture_duration_s"]
    scale = _duration_scale()
    gestures: list[Gesture] = []
    t = int(rng.uniform(0.3, 1.5) * FPS)
    min_gap = int(0.25 * FPS)
    while True:
        cls = int(rng.choice(NUM_CLASSES, p=probs))
        class_mean = mean * CLASSES[cls].duration / scale
        mu = np.log(class_mean) - DURATION_SIGMA ** 2 / 2
        seconds = float(np.clip(rng.lognormal(mu, DURATION_SIGMA), dmin, dmax))
        length = max(1, int(round(seconds * FPS)))
        hand = acting_hand(rng, subject)
        start, end = t, t + length - 1
        moved = True
        while moved:  # never across a cut-in: restart after it
            moved = False
            for s, e in cut_ins:
                if start <= e and end >= s:
                    start, end, moved = e + 1 + min_gap, e + min_gap + length, True
        if end > n - 1 - min_gap:
            break
        gestures.append(Gesture(cls, start, end, hand))
        gap = min_gap + rng.exponential(max(float(cfg["gap_mean_s"]) * FPS - min_gap, 1.0))
        t = end + 1 + int(gap)
    return VideoEvents(cut_ins=cut_ins, gestures=gestures)
