"""A models folder is data: its JSON descriptions are checked field by field, its files are tied together by the
digests ``spotter.json`` records, and nothing in it selects code to run.

- **Descriptions.** ``spotter.json``, ``classifier.json`` and ``emotion.json`` are checked against the schemas
  below (strict JSON types: a threshold is a number, members a non-empty list of known modalities and streams),
  and the config sections they record (merging, clip settings, normalisation, pose) against the config schemas.
  A problem is one line naming the file and the field. Names that become paths (streams, the emotion model's
  encoder folders) are checked against fixed lists, so no field can point outside the folder.
- **Digests.** Calibration records the sha256 of every file inference loads (each member's classifier, head,
  encoder and card, the emotion model and the encoders it reads) and of the pose model the keypoints came from.
  Loading compares them all before any model is built: a classifier swapped in from another run, or a folder
  assembled from two, stops with the names of the files that differ.
- **No code from a models folder.** The pose settings recorded there are used only when they select the ONNX
  backend (an ONNX file is data for ONNX Runtime); any other backend (mmpose, whose Python config files mmengine
  executes) must come from the user's own config or command line (``mgfm infer --pose``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from mgfm.common.digest import sha256_file
from mgfm.core.layout import STREAMS
from mgfm.infer.metrics import SCORERS

MODALITY_STREAMS = {"skeleton": tuple(STREAMS), "rgb": ("rgb",)}
#: The one pose backend whose settings a models folder may supply: it loads ONNX files (data), runs no code.
DATA_ONLY_POSE_BACKENDS = ("onnx",)

_NUMBER = {"type": "number"}
_NAMES = {"type": "array", "items": {"type": "string", "minLength": 1}}
_OBJECT = {"type": "object"}
_MEMBER = {"type": "object", "required": ["name", "modality", "stream"],
           "properties": {"name": {"type": "string", "pattern": "^[A-Za-z0-9_]+$"},
                          "modality": {"enum": list(MODALITY_STREAMS)},
                          "stream": {"enum": sorted({s for v in MODALITY_STREAMS.values() for s in v})}}}
_SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}

SPOTTER_SCHEMA = {
    "type": "object",
    "required": ["class_names", "class_prior", "members", "weights", "fps", "window_frames", "stride_frames",
                 "min_visible", "tau", "merge", "clip_params", "pose", "download", "validation_videos", "tious",
                 "threshold", "digests", "pose_models"],
    "properties": {
        "class_names": {**_NAMES, "minItems": 1},
        "class_prior": {"type": "array", "items": {"type": "number", "minimum": 0}},
        "members": {"type": "array", "minItems": 1, "items": _MEMBER},
        "weights": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
        "fps": {"type": "number", "exclusiveMinimum": 0, "maximum": 1000},
        "window_frames": {"type": "array", "minItems": 1, "maxItems": 64,
                          "items": {"type": "integer", "minimum": 1, "maximum": 1_000_000}},
        "stride_frames": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
        "min_visible": {"type": "number", "minimum": 0, "maximum": 1},
        "tau": {"type": "number", "minimum": 0, "maximum": 1},
        "threshold": _NUMBER,
        "tious": {"type": "array", "minItems": 1, "items": {"type": "number", "exclusiveMinimum": 0, "maximum": 1}},
        "merge": _OBJECT, "clip_params": _OBJECT, "rgb_clip_params": _OBJECT, "pose": _OBJECT, "download": _OBJECT,
        "validation_videos": _NAMES,
        "scorer": {"enum": list(SCORERS)}, "seed": {"type": "integer"},
        "baseline": {"type": "object", "required": ["threshold"], "properties": {"threshold": _NUMBER}},
        "digests": {"type": "object", "additionalProperties": _SHA256},
        "pose_models": {"type": "object", "required": ["model", "detector"],
                        "properties": {"model": _SHA256, "detector": {"type": "string", "pattern": "^([0-9a-f]{64})?$"}}},
        # what the models were trained on, shown on every page (older bundles lack it: "not recorded")
        "trained_on": {"type": "object", "required": ["dataset", "demo"],
                       "properties": {"dataset": {"type": "string", "maxLength": 500}, "demo": {"type": "boolean"}}},
    },
}
CLASSIFIER_SCHEMA = {
    "type": "object",
    "required": ["modality", "stream", "num_classes", "class_names", "clip_params"],
    "properties": {"modality": {"enum": list(MODALITY_STREAMS)}, "stream": _MEMBER["properties"]["stream"],
                   "num_classes": {"type": "integer", "minimum": 1, "maximum": 100_000},
                   "class_names": _NAMES, "clip_params": _OBJECT},
}
EMOTION_SCHEMA = {
    "type": "object",
    "required": ["members", "encoders", "config", "dim"],
    "properties": {
        "members": {**_NAMES, "minItems": 1},
        # folders relative to the models folder, one of the fixed encoder folders: never a path of the user's
        "encoders": {"type": "object", "additionalProperties": {"enum": [f"{m}/{s}" for m, ss in
                                                                         MODALITY_STREAMS.items() for s in ss]}},
        "config": {"type": "object", "required": ["aggregator", "max_clips"],
                   "properties": {"aggregator": {"enum": ["mean", "attention"]},
                                  "max_clips": {"type": "integer", "minimum": 1, "maximum": 100_000}}},
        "dim": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    },
}
#: Sections a spotter records, checked against their config schemas: (field, config section, required).
RECORDED_SECTIONS = (("merge", "infer", True), ("clip_params", "skeleton", True), ("rgb_clip_params", "rgb", False),
                     ("download", "download", True), ("pose", "pose", True))


def schema_problems(instance: object, schema: dict) -> list[str]:
    """One short line per way ``instance`` breaks ``schema`` (strict types: 5.0 is no integer, true no number)."""
    from jsonschema import Draft202012Validator

    from mgfm.config.strict import strict_types

    lines = []
    errors = strict_types(Draft202012Validator)(schema).iter_errors(instance)
    for err in sorted(errors, key=lambda e: list(map(str, e.absolute_path))):
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err.absolute_path).lstrip(".")
        value = repr(err.instance)
        value = value if len(value) <= 60 else value[:57] + "..."
        if err.validator == "required":
            lines.append(f"{where + ': ' if where else ''}{err.message}")
        elif err.validator == "type":
            lines.append(f"{where}: expected {err.validator_value}, got {value}")
        elif err.validator == "enum":
            lines.append(f"{where}: {value} is not one of {err.validator_value}")
        else:
            lines.append(f"{where}: {value} is not allowed ({err.validator} {err.validator_value!r})")
    return lines


def check_description(obj: object, schema: dict, path: str | os.PathLike, error: type[Exception]) -> None:
    """``obj`` (a parsed JSON file) fits ``schema``; else ``error`` naming the file and the first fields."""
    if not isinstance(obj, dict):
        raise error(f"{path}: expected a JSON object, got {type(obj).__name__}")
    lines = schema_problems(obj, schema)
    if lines:
        more = f" (and {len(lines) - 3} more)" if len(lines) > 3 else ""
        raise error(f"{path}: " + "; ".join(lines[:3]) + more)


def check_spotter_fields(spotter: dict, path: str | os.PathLike, error: type[Exception]) -> None:
    """The spotter's own schema, its recorded config sections, and the members' consistency."""
    from mgfm.config import ConfigError, resolve

    check_description(spotter, SPOTTER_SCHEMA, path, error)
    for field, section, required in RECORDED_SECTIONS:
        if field not in spotter and not required:
            continue
        values = {"merge": spotter[field]} if field == "merge" else spotter[field]
        try:
            resolve(section, values)
        except ConfigError as err:
            raise error(f"{path}: field {field}: {' '.join(str(err).split()[2:])}") from None
    names = [m["name"] for m in spotter["members"]]
    if len(set(names)) != len(names) or set(spotter["weights"]) != set(names):
        raise error(f"{path}: members {names} and fusion weights {sorted(spotter['weights'])} must name the same "
                    "members, once each")
    for m in spotter["members"]:
        if m["stream"] not in MODALITY_STREAMS[m["modality"]]:
            raise error(f"{path}: member {m['name']!r}: stream {m['stream']!r} is not a {m['modality']} stream")
    if len(spotter["class_prior"]) != len(spotter["class_names"]):
        raise error(f"{path}: class_prior has {len(spotter['class_prior'])} values for "
                    f"{len(spotter['class_names'])} classes")


# ---- digests -------------------------------------------------------------------------------------------


def bundle_files(spotter_members: Iterable[Mapping], emotion_encoders: Iterable[str]) -> list[str]:
    """The files (relative to the models folder) inference loads: each member's classifier folder, the emotion
    model, and the pretrained encoders the emotion model reads."""
    files = []
    for m in spotter_members:
        d = f"classifiers/{m['modality']}/{m['stream']}"
        files += [f"{d}/classifier.json", f"{d}/head.safetensors", f"{d}/encoder.safetensors", f"{d}/card.json"]
    files += ["emotion/emotion.json", "emotion/aggregator.safetensors"]
    for folder in emotion_encoders:
        files += [f"{folder}/encoder.safetensors", f"{folder}/card.json"]
    return sorted(dict.fromkeys(files))


def record_digests(models_dir: str | os.PathLike, files: Iterable[str]) -> dict[str, str]:
    """sha256 of each file (relative to ``models_dir``), for spotter.json."""
    return {f: sha256_file(Path(models_dir) / f) for f in files}


def digest_mismatches(models_dir: str | os.PathLike, digests: Mapping[str, str], files: Iterable[str]) -> list[str]:
    """One line per file of ``files`` whose content differs from its recorded digest (or is missing, or was
    never recorded)."""
    lines = []
    for f in files:
        path = Path(models_dir) / f
        if f not in digests:
            lines.append(f"{f}: not recorded at calibration")
        elif not path.is_file():
            lines.append(f"{f}: missing" + (" (a folder)" if path.is_dir() else ""))
        else:
            got = sha256_file(path)
            if got != digests[f]:
                lines.append(f"{f}: sha256 {got[:12]}..., calibrated with {digests[f][:12]}...")
    return lines


# ---- pose settings: data from the folder, code only from the user --------------------------------------


def pose_model_digests(pose: dict) -> dict[str, str]:
    """sha256 of the pose model and of the detector (or "") that ``pose`` (a resolved pose section) loads."""
    from mgfm.pose.params import PoseParams

    p = PoseParams.from_section(pose)
    if p.backend == "mmpose":
        files = {"model": ("pose.mmpose.checkpoint", p.mmpose.checkpoint),
                 "detector": ("pose.mmpose.det_checkpoint", p.mmpose.det_checkpoint)}
    else:
        files = {"model": ("pose.model", str(p.model_path())), "detector": ("pose.detector.model", p.detector.model)}
    out = {}
    for key, (config_key, file) in files.items():
        if file and not Path(file).is_file():
            raise FileNotFoundError(f"{file}: pose {key} file not found (config key {config_key})")
        out[key] = sha256_file(Path(file)) if file else ""
    return out


def pose_settings(spotter: dict, path: str | os.PathLike, user_pose: dict | None, error: type[Exception]) -> dict:
    """The pose section ``mgfm infer`` runs with: the user's (``--pose``, the workflow's config) when given, else
    the one the spotter recorded, but only when that one selects no code (the ONNX backend). Either way the pose
    model must be the one the classifiers' keypoints came from (the recorded digests)."""
    from mgfm.config import ConfigError, resolve

    try:
        pose = resolve("pose", user_pose if user_pose is not None else spotter["pose"])
    except ConfigError as err:
        where = "--pose" if user_pose is not None else f"{path}: field pose"
        raise error(f"{where}: {' '.join(str(err).split()[2:])}") from None
    if user_pose is None and pose["backend"] not in DATA_ONLY_POSE_BACKENDS:
        raise error(f"{path}: records pose backend {pose['backend']!r}, which runs code (Python config files); a "
                    "models folder never selects code, so give the pose settings yourself: mgfm infer --pose "
                    "'<the pose section of your config, as JSON>'")
    try:
        digests = pose_model_digests(pose)
    except (FileNotFoundError, ValueError) as err:
        raise error(str(err)) from None
    recorded = spotter["pose_models"]
    for key in ("model", "detector"):
        if digests[key] != recorded[key]:
            raise error(f"{path}: the pose {key} to run has sha256 {digests[key][:12] or 'none'}..., the models were "
                        f"calibrated on keypoints of a pose {key} with sha256 {recorded[key][:12] or 'none'}... (field "
                        f"pose_models.{key}); run the pose model they were trained with (--pose)")
    return pose
