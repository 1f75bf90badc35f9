"""The demo corpus plan: which videos exist, known from the config alone so Snakemake can build its DAG
before anything is rendered.

Everything here is cheap and pure: the video ids, each video's subject, subset, split, outcome, length and
venue follow from ``dataset.demo`` without drawing a frame. What happens inside a video (cut-ins, gestures)
is planned from that video's own seed (``events.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mgfm.common.seeding import rng_for
from mgfm.config import ConfigError, resolve
from mgfm.core.constants import FPS as _FPS

FPS = float(_FPS)


def demo_video_ids(demo_cfg: dict) -> list[str]:
    """Video ids of the demo corpus: ``demo000`` ... in order; a pure function of ``dataset.demo``.

    The whole section is checked first (``demo_settings``): the workflow calls this while it parses the
    config, so a value the generator would refuse (``n_labeled`` above ``n_videos``, say) fails the dry run,
    not a job.
    """
    cfg = demo_settings(demo_cfg)
    return [f"demo{i:03d}" for i in range(int(cfg["n_videos"]))]


def _ordered_pair(cfg: dict, key: str) -> None:
    low, high = cfg[key]
    if low > high:
        raise ConfigError(f"dataset.demo.{key}: [min, max] must satisfy min <= max, got {cfg[key]!r}")


def demo_settings(demo_cfg: dict | None) -> dict:
    """``dataset.demo`` resolved by mgfm.config (schema checks, every default filled), plus the checks that
    relate two keys, which a schema cannot express; errors name the key."""
    cfg = resolve("dataset", {"demo": demo_cfg or {}})["demo"]
    if cfg["n_labeled"] > cfg["n_videos"]:
        raise ConfigError(f"dataset.demo.n_labeled: {cfg['n_labeled']} is more than dataset.demo.n_videos "
                          f"({cfg['n_videos']})")
    unlabeled = cfg["n_videos"] > cfg["n_labeled"]
    need = 3 if unlabeled else 2
    if cfg["n_subjects"] < need:
        raise ConfigError(f"dataset.demo.n_subjects: {cfg['n_subjects']} is too few: the labeled videos need two "
                          f"subjects (one per split){' and the unlabeled videos one more' if unlabeled else ''}; "
                          f"set it to {need} or more")
    for key in ("labeled_duration_s", "unlabeled_duration_s", "cut_ins", "cut_in_duration_s", "gesture_duration_s"):
        _ordered_pair(cfg, key)
    return cfg


@dataclass(frozen=True)
class VideoPlan:
    """What the manifest says about one demo video, plus how long it is and where it was filmed."""

    video_id: str
    subject_id: str
    subset: str        # labeled | unlabeled
    split: str         # train | test | "" (unlabeled)
    outcome: str       # win | lose
    n_frames: int
    venue: int


def _balanced_outcomes(rng: np.random.Generator, k: int) -> list[str]:
    """Half wins, half losses (odd counts get a random extra), shuffled: both outcomes in every split."""
    out = ["win", "lose"] * (k // 2) + ([str(rng.choice(["win", "lose"]))] if k % 2 else [])
    return [out[i] for i in rng.permutation(k)]


def _pick_test_subjects(subjects: list[str], counts: dict[str, int], want: int) -> list[str]:
    """Subjects whose video counts sum closest to ``want`` (subset-sum), leaving at least one for train."""
    reach: dict[int, list[str]] = {0: []}
    for s in subjects:
        for total, chosen in list(reach.items()):
            new = total + counts[s]
            if new not in reach and len(chosen) + 1 < len(subjects):
                reach[new] = chosen + [s]
    best = min((t for t in reach if t > 0), key=lambda t: (abs(t - want), t))
    return reach[best]


def build_plan(demo_cfg: dict) -> list[VideoPlan]:
    """The demo corpus plan, in video-id order (cheap: no rendering)."""
    cfg = demo_settings(demo_cfg)
    ids = demo_video_ids(cfg)
    rng = rng_for(cfg["seed"], "demo", "plan")
    n, n_lab, n_subj = cfg["n_videos"], cfg["n_labeled"], cfg["n_subjects"]
    subjects = [f"subj{i:02d}" for i in range(n_subj)]
    # labeled subjects in proportion to labeled videos, at least two (one per split)
    n_lab_subj = int(np.clip(round(n_subj * n_lab / n), 2, min(n_lab, n_subj - 1 if n > n_lab else n_subj)))
    order = [subjects[i] for i in rng.permutation(n_subj)]
    lab_subjects, unl_subjects = order[:n_lab_subj], order[n_lab_subj:] or order
    lab_owner = [lab_subjects[i % n_lab_subj] for i in range(n_lab)]
    counts = {s: lab_owner.count(s) for s in lab_subjects}
    want_test = max(1, int(round(n_lab * float(cfg["test_fraction"]))))
    test_subjects = _pick_test_subjects(lab_subjects, counts, want_test)
    unl_owner = [unl_subjects[i % len(unl_subjects)] for i in range(n - n_lab)]
    slots = [("labeled", s) for s in lab_owner] + [("unlabeled", s) for s in unl_owner]
    slots = [slots[i] for i in rng.permutation(n)]  # ids do not reveal the subset
    split_of = ["" if sub == "unlabeled" else ("test" if s in test_subjects else "train") for sub, s in slots]
    outcome = [""] * n
    for split in ("train", "test"):
        where = [i for i in range(n) if split_of[i] == split]
        for i, o in zip(where, _balanced_outcomes(rng, len(where))):
            outcome[i] = o
    lab_lo, lab_hi = (float(v) for v in cfg["labeled_duration_s"])
    unl_lo, unl_hi = (float(v) for v in cfg["unlabeled_duration_s"])
    plans = []
    for i, vid in enumerate(ids):
        subset, subject = slots[i]
        lo, hi = (lab_lo, lab_hi) if subset == "labeled" else (unl_lo, unl_hi)
        own = rng_for(cfg["seed"], "demo", vid, "plan")  # per-video draws: independent of the other videos
        seconds = own.uniform(lo, hi)
        venue = int(own.integers(cfg["n_venues"]))
        if subset == "unlabeled":
            outcome[i] = str(own.choice(["win", "lose"]))
        plans.append(VideoPlan(video_id=vid, subject_id=subject, subset=subset, split=split_of[i],
                               outcome=outcome[i], n_frames=int(round(seconds * FPS)), venue=venue))
    return plans
