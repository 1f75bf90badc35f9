"""Parameters of the clips, skeleton and rgb config sections, with the same defaults as their JSON schemas
(a test keeps the two in step), so the package runs without Snakemake."""

from __future__ import annotations

CLIPS_DEFAULTS: dict = {
    "prior": "train_split",
    "quota": 50,
    "tau": 0.3,
    "retry_budget": 1000,
    "iod_quotas": [50, 80, 100],
    "iod_taus": [0.1, 0.3, 0.5, 0.75],
    "iod_tau_table_quota": 80,
    "figure_max_s": 20.0,
    "min_video_fraction": 0.5,
}

SKELETON_DEFAULTS: dict = {
    "num_frames": 64,
    "long_clips": "resample",
    "shoulder_min_score": 0.3,
    "joint_min_score": 0.05,
}

RGB_DEFAULTS: dict = {
    "num_frames": 16,
    "size": 224,
    "crop": "person",
    "box_source": "keypoints",
    "box_min_score": 0.3,
    "margin": 1.25,
}

_CHOICES = {
    ("skeleton", "long_clips"): ("resample", "truncate"),
    ("rgb", "crop"): ("person", "full"),
    ("rgb", "box_source"): ("keypoints", "bbox"),
}


def resolve(section: str, params: dict | None) -> dict:
    """Fill defaults and reject unknown keys or bad values, naming ``section.key``."""
    defaults = {"clips": CLIPS_DEFAULTS, "skeleton": SKELETON_DEFAULTS, "rgb": RGB_DEFAULTS}[section]
    params = dict(params or {})
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise ValueError(f"config section '{section}': unknown keys {unknown}")
    out = {**defaults, **params}
    for key, value in out.items():
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise ValueError(f"config key {section}.{key}: {value!r} is not one of {list(choices)}")
    positive_ints = {"clips": ("quota", "retry_budget", "iod_tau_table_quota"),
                     "skeleton": ("num_frames",), "rgb": ("num_frames", "size")}[section]
    for key in positive_ints:
        if not isinstance(out[key], int) or out[key] < 1:
            raise ValueError(f"config key {section}.{key}: must be a positive integer, got {out[key]!r}")
    if section == "clips":
        for key in ("tau",):
            if not 0.0 <= float(out[key]) <= 1.0:
                raise ValueError(f"config key clips.{key}: must lie in [0, 1], got {out[key]!r}")
        if not out["iod_quotas"] or not out["iod_taus"]:
            raise ValueError("config keys clips.iod_quotas and clips.iod_taus must not be empty")
    if section == "rgb" and float(out["margin"]) < 1.0:
        raise ValueError(f"config key rgb.margin: must be >= 1, got {out['margin']!r}")
    return out
