"""What inference loads from a models folder, and the checks that make a wrong folder fail early.

Layout under the models folder (``results/models`` in the workflow), beside the pretrained encoders:

```
classifiers/{modality}/{stream}/   encoder.safetensors + card.json (mgfm.models.artifact), head.safetensors,
                                   classifier.json (classes, joints, clip preprocessing, validation videos)
emotion/                           aggregator.safetensors + emotion.json (members, feature scaling)
spotter.json                       members, fusion weights, window lengths, stride, face test, merging,
                                   the validation-chosen threshold (what ``mgfm infer`` reads first)
```

The classifiers and the emotion aggregator are the eval stage's models (``mgfm.eval.export`` writes them); the
spotter is calibration's. Every file is safetensors or JSON: loading never unpickles. A models folder is data (``mgfm.infer.integrity``):
every description is checked field by field, every file inference loads against the digest calibration
recorded, and no field selects code to run.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from mgfm.core.layout import LAYOUT_NAME, UPPER_BODY
# the classifier and emotion formats are written by the eval stage that trains them (mgfm.eval.export)
from mgfm.eval.export import CLASSIFIER_FORMAT, CLASSIFIER_NAME, EMOTION_NAME, HEAD_NAME, classifier_dir, emotion_dir

SPOTTER_FORMAT = "mgfm-spotter/1"
SPOTTER_NAME = "spotter.json"
#: Modalities whose window clips ``mgfm.infer.score`` builds: skeleton clips from the pose file
#: (``mgfm.packs.skeleton.clip_tensors``), RGB clips from the normalised video (``mgfm.infer.rgb_windows``).
WINDOW_MODALITIES = ("skeleton", "rgb")


class BundleError(ValueError):
    """A models folder that inference cannot use: names the file and what is wrong."""


def read_json(path: str | os.PathLike, what: str) -> dict:
    """A JSON object of a models folder; a missing, unreadable or non-object file is one BundleError naming it."""
    path = Path(path)
    if path.is_dir():
        raise BundleError(f"{path}: a folder, not the {what}")
    if not path.is_file():
        raise BundleError(f"{path}: {what} not found")
    try:
        obj = json.loads(path.read_text())
    except OSError as err:
        raise BundleError(f"{path}: cannot read the {what}: {err.strerror or err}") from err
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise BundleError(f"{path}: not valid JSON: {err}") from err
    if not isinstance(obj, dict):
        raise BundleError(f"{path}: the {what} must be a JSON object, got {type(obj).__name__}")
    return obj


def check_layout(info: dict, path: str | os.PathLike) -> None:
    """The models must have been trained on this package's keypoint layout and joint subset."""
    layout, joints = info.get("layout"), info.get("joints")
    if layout != LAYOUT_NAME:
        raise BundleError(f"{path}: trained with keypoint layout {layout!r}, this mgfm reads {LAYOUT_NAME!r}")
    if list(joints or []) != list(UPPER_BODY):
        n = len(joints or [])
        raise BundleError(f"{path}: trained on a joint subset of {n} joints {list(joints or [])[:6]}..., this mgfm "
                          f"feeds {len(UPPER_BODY)} joints {list(UPPER_BODY)[:6]}... (mgfm.core.layout.UPPER_BODY): "
                          "retrain the models with this version")


def check_rgb_card(card: dict, clip_params: dict, path: str | os.PathLike) -> None:
    """The RGB encoder must read the clips the packed RGB settings make (frames and side); else name the file."""
    t, s = int(card.get("num_frames", -1)), int(card.get("image_size", -1))
    want_t, want_s = int(clip_params.get("num_frames", -1)), int(clip_params.get("size", -1))
    if (t, s) != (want_t, want_s):
        raise BundleError(f"{path}: RGB encoder reads {t} frames of {s} px, the packed RGB clips it was fine-tuned "
                          f"on have {want_t} frames of {want_s} px (config keys rgb.num_frames / rgb.size vs "
                          "rgb_pretrain.model.num_frames / image_size): retrain or rebuild with matching settings")


@dataclass
class Member:
    """One fine-tuned classifier: name (the ensemble's member name), encoder + head, its card and info."""

    name: str
    modality: str
    stream: str
    model: nn.Module
    card: dict
    info: dict


class _Head(nn.Module):
    def __init__(self, encoder: nn.Module, head: nn.Linear) -> None:
        super().__init__()
        self.encoder, self.head = encoder, head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(x))


def load_classifier(path: str | os.PathLike, name: str, num_classes: int, member: dict | None = None) -> Member:
    """A fine-tuned classifier folder: the encoder through ``load_encoder``, the head from safetensors
    (``member``: the spotter's entry, whose modality and stream the folder must hold)."""
    from mgfm.infer.integrity import CLASSIFIER_SCHEMA, check_description
    from mgfm.models.artifact import load_encoder
    from mgfm.models.weights import load_weights

    path = Path(path)
    info = read_json(path / CLASSIFIER_NAME, "classifier description")
    if info.get("format") != CLASSIFIER_FORMAT:
        raise BundleError(f"{path / CLASSIFIER_NAME}: format {info.get('format')!r}, expected {CLASSIFIER_FORMAT!r}")
    check_layout(info, path / CLASSIFIER_NAME)
    check_description(info, CLASSIFIER_SCHEMA, path / CLASSIFIER_NAME, BundleError)
    if member is not None and (info["modality"], info["stream"]) != (member["modality"], member["stream"]):
        raise BundleError(f"{path / CLASSIFIER_NAME}: a {info['modality']}/{info['stream']} classifier, the spotter's "
                          f"member {member['name']!r} is {member['modality']}/{member['stream']}")
    if info["num_classes"] != num_classes:
        raise BundleError(f"{path / CLASSIFIER_NAME}: {info['num_classes']} classes, the spotter has {num_classes}")
    if info["modality"] == "rgb":              # before building the encoder, so the mismatch itself is named
        from mgfm.models.artifact import read_card

        try:
            card = read_card(path)
        except (FileNotFoundError, ValueError) as err:
            raise BundleError(f"{path}: {err}") from err
        check_rgb_card(card, info.get("clip_params") or {}, path / "card.json")
    try:
        encoder = load_encoder(path)
    except (FileNotFoundError, ValueError) as err:
        raise BundleError(f"{path}: {err}") from err
    if info["modality"] != "rgb" and int(encoder.card["num_joints"]) != len(UPPER_BODY):
        raise BundleError(f"{path / 'card.json'}: encoder reads {encoder.card['num_joints']} joints, this mgfm feeds "
                          f"{len(UPPER_BODY)}")
    head_path = path / HEAD_NAME
    if not head_path.is_file():
        raise BundleError(f"{head_path}: classifier head missing")
    dim = int(encoder.card["feature_dim"])
    try:
        state = load_weights(head_path, {"weight": (num_classes, dim), "bias": (num_classes,)},
                             f"a {dim} -> {num_classes} head")
    except ValueError as err:
        raise BundleError(str(err)) from err
    head = nn.Linear(dim, num_classes)
    head.load_state_dict(state, strict=True)
    return Member(name, info["modality"], info["stream"], _Head(encoder, head).eval(), encoder.card, info)


def read_emotion_info(models_dir: str | os.PathLike) -> dict:
    """``emotion/emotion.json``, checked (members, the encoder folders it reads, aggregator settings)."""
    from mgfm.infer.integrity import EMOTION_SCHEMA, check_description

    path = emotion_dir(models_dir) / EMOTION_NAME
    info = read_json(path, "emotion model description")
    check_description(info, EMOTION_SCHEMA, path, BundleError)
    missing = sorted(set(info["members"]) - set(info["encoders"]))
    if missing:
        raise BundleError(f"{path}: members {missing} have no encoder folder")
    return info


def load_spotter(models_dir: str | os.PathLike, check_digests: bool = True) -> dict:
    """``spotter.json`` of a models folder, checked: format, layout, every field, its member folders present,
    and (``check_digests``) every file inference loads against the digest calibration recorded."""
    from mgfm.infer.integrity import bundle_files, check_spotter_fields, digest_mismatches

    path = Path(models_dir) / SPOTTER_NAME
    if not Path(models_dir).is_dir():
        raise BundleError(f"{models_dir}: models folder not found" + (" (a file)" if Path(models_dir).exists() else ""))
    spotter = read_json(path, "spotter description (made by the workflow's infer_calibrate rule)")
    if spotter.get("format") != SPOTTER_FORMAT:
        raise BundleError(f"{path}: format {spotter.get('format')!r}, expected {SPOTTER_FORMAT!r}")
    check_layout(spotter, path)
    check_spotter_fields(spotter, path, BundleError)
    for m in spotter["members"]:
        if m["modality"] not in WINDOW_MODALITIES:
            raise BundleError(f"{path}: member {m['name']!r} is a {m['modality']} model; spotting builds windows of "
                              f"{', '.join(WINDOW_MODALITIES)} clips only")
        if m["modality"] == "rgb" and not spotter.get("rgb_clip_params"):
            raise BundleError(f"{path}: RGB member {m['name']!r} but no rgb_clip_params (the packed RGB clip "
                              "settings the window clips are built with); rerun the workflow's infer_calibrate rule")
        d = classifier_dir(models_dir, m["modality"], m["stream"])
        if not d.is_dir():
            raise BundleError(f"{path}: member {m['name']!r} needs {d}, which is missing")
    if check_digests:
        encoders = read_emotion_info(models_dir)["encoders"].values()
        wrong = digest_mismatches(models_dir, spotter["digests"], bundle_files(spotter["members"], encoders))
        if wrong:
            raise BundleError(f"{path}: {len(wrong)} file(s) of {models_dir} differ from the ones it was calibrated "
                              f"with (a folder mixing models of different runs?): {'; '.join(wrong[:4])}"
                              + (" ..." if len(wrong) > 4 else "") + "; rerun the workflow's infer rules, or copy "
                              "the whole models folder of one run")
    return spotter


def load_members(models_dir: str | os.PathLike, spotter: dict, device: str | None = None) -> list[Member]:
    """Every member's classifier, on ``device`` (default: the GPU when one is visible); an RGB member must also
    read the RGB clips the spotter builds."""
    from mgfm.common.accel import pick_device

    k = len(spotter["class_names"])
    dev = pick_device(device)
    members = [load_classifier(classifier_dir(models_dir, m["modality"], m["stream"]), m["name"], k, m)
               for m in spotter["members"]]
    for m in members:
        m.model.to(dev)
    for m in members:
        if m.modality == "rgb" and "rgb_clip_params" in spotter:
            check_rgb_card(m.card, spotter["rgb_clip_params"],
                           classifier_dir(models_dir, m.modality, m.stream) / "card.json")
    return members
