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

FPS = 25.0

#: Defaults of ``dataset.demo`` (mirrors mgfm/config/schemas/dataset.schema.yaml, checked by a test), so the
#: package works without Snakemake filling them in.
DEFAULTS: dict = {
    "seed": 7,
    "n_videos": 36,
    "n_subjects": 16,
    "n_labeled": 17,
    "test_fraction": 0.4,
    "width": 320,
    "height": 240,
    "labeled_duration_s": [57.0, 60.0],
    "unlabeled_duration_s": [20.0, 45.0],
    "cut_ins": [1, 3],
    "cut_in_duration_s": [1.5, 3.5],
    "gesture_mean_s": 2.5,
    "gesture_duration_s": [0.2, 15.0],
    "gap_mean_s": 0.45,
    "n_venues": 4,
    "codec": "libx264",
    "crf": 23,
}


def demo_video_ids(demo_cfg: dict) -> list[str]:
    """Video ids of the demo corpus: ``demo000`` ... in order; a pure function of ``dataset.demo``.

    The whole section is checked first (``demo_settings``): the workflow calls this while it parses the
    config, so a value the generator would refuse (``n_labeled`` above ``n_videos``, say) fails the dry run,
    not a job.
    """
    cfg = demo_settings(demo_cfg)
    return [f"demo{i:03d}" for i in range(int(cfg["n_videos"]))]


def _range(cfg: dict, key: str, low: float, integer: bool = False) -> tuple[float, float]:
    value = cfg[key]
    if not isinstance(value, (list, tuple)) or len(value) != 2:
        raise ValueError(f"config key dataset.demo.{key} must be a [min, max] pair, got {value!r}")
    a, b = (int(v) for v in value) if integer else (float(v) for v in value)
    if not (low <= a <= b):
        raise ValueError(f"config key dataset.demo.{key} must satisfy {low} <= min <= max, got {value!r}")
    return a, b


def demo_settings(demo_cfg: dict) -> dict:
    """``dataset.demo`` with defaults filled in and every value checked; errors name the key."""
    unknown = set(demo_cfg) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"unknown config key(s) in dataset.demo: {sorted(unknown)}")
    cfg = {**DEFAULTS, **demo_cfg}
    for key in ("seed", "n_videos", "n_subjects", "n_labeled", "width", "height", "n_venues", "crf"):
        if isinstance(cfg[key], bool) or not isinstance(cfg[key], (int, np.integer)):
            raise ValueError(f"config key dataset.demo.{key} must be an integer, got {cfg[key]!r}")
    if cfg["n_videos"] < 2:
        raise ValueError(f"config key dataset.demo.n_videos must be >= 2, got {cfg['n_videos']}")
    if not 2 <= cfg["n_labeled"] <= cfg["n_videos"]:
        raise ValueError("config key dataset.demo.n_labeled must be between 2 and n_videos "
                         f"({cfg['n_videos']}), got {cfg['n_labeled']}")
    if cfg["n_subjects"] < 2:
        raise ValueError(f"config key dataset.demo.n_subjects must be >= 2, got {cfg['n_subjects']}")
    if not 0.0 < float(cfg["test_fraction"]) < 1.0:
        raise ValueError(f"config key dataset.demo.test_fraction must be in (0, 1), got {cfg['test_fraction']}")
    for key in ("width", "height"):
        if cfg[key] < 64 or cfg[key] % 2:
            raise ValueError(f"config key dataset.demo.{key} must be an even number >= 64, got {cfg[key]}")
    for key in ("labeled_duration_s", "unlabeled_duration_s"):
        _range(cfg, key, 1.0)
    _range(cfg, "cut_ins", 0, integer=True)
    _range(cfg, "cut_in_duration_s", 0.2)
    _range(cfg, "gesture_duration_s", 0.04)
    for key in ("gesture_mean_s", "gap_mean_s"):
        if float(cfg[key]) <= 0:
            raise ValueError(f"config key dataset.demo.{key} must be > 0, got {cfg[key]}")
    if cfg["n_venues"] < 1:
        raise ValueError(f"config key dataset.demo.n_venues must be >= 1, got {cfg['n_venues']}")
    if cfg["codec"] not in ("libx264", "mjpeg"):
        raise ValueError(f"config key dataset.demo.codec must be 'libx264' or 'mjpeg', got {cfg['codec']!r}")
    if not 0 <= cfg["crf"] <= 51:
        raise ValueError(f"config key dataset.demo.crf must be in [0, 51], got {cfg['crf']}")
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
    lab_lo, lab_hi = _range(cfg, "labeled_duration_s", 1.0)
    unl_lo, unl_hi = _range(cfg, "unlabeled_duration_s", 1.0)
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
