"""Named pose setups (config key ``pose.preset``) and what the workflow must do to run one.

A preset pins the paper's model files: the mmpose/mmdet configs (inside the installed packages), the released
checkpoints by URL and sha256. ``plan_pose`` turns the ``pose`` config section into what the rules need:

* which checkpoints rule ``fetch_pose_model`` may download (pinned URL + sha256) into the models folder;
* with ``backend: onnx``, which ONNX files rule ``export_pose_onnx`` makes from them (in the pinned mmpose
  environment), named after the checkpoint and its pinned digest, so that another checkpoint is another file
  and an exported one is reused;
* the effective ``pose`` section the pose jobs get: ``model`` and ``detector.model`` pointing at those exports
  (so a new checkpoint changes the pose jobs' params and reruns them), ``mmpose.*`` filled from the preset.

A checkpoint set in config (``pose.mmpose.checkpoint``, ``det_checkpoint``) replaces the preset's file, URL and
sha256 together; it then needs its own sha256 (the export is keyed by it).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import PurePosixPath

#: preset name -> the pinned files (pose.mmpose keys). RTMW-x 384x288 (mmpose 1.3.2, COCO-WholeBody whole AP
#: 0.702), the most accurate RTMPose-family whole-body model (the inferencer alias "wholebody" would silently
#: give rtmw-m 256x192), and the RTMDet-m person detector of mmpose's top-down demos.
PRESETS: dict[str, dict] = {
    "rtmw-x": {
        "config": "mmpose::configs/wholebody_2d_keypoint/rtmpose/cocktail14/rtmw-x_8xb320-270e_cocktail14-384x288.py",
        "checkpoint": "rtmw-x_simcc-cocktail14_pt-ucoco_270e-384x288-f840f204_20231122.pth",
        "checkpoint_url": "https://download.openmmlab.com/mmpose/v1/projects/rtmw/"
                          "rtmw-x_simcc-cocktail14_pt-ucoco_270e-384x288-f840f204_20231122.pth",
        "checkpoint_sha256": "f840f2044fe46cb3821b7cea86be83e1f6cba406ccd28f5475ac010412dcda95",
        "det_config": "mmpose::demo/mmdetection_cfg/rtmdet_m_640-8xb32_coco-person.py",
        "det_checkpoint": "rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth",
        "det_checkpoint_url": "https://download.openmmlab.com/mmpose/v1/projects/rtmpose/"
                              "rtmdet_m_8xb32-100e_coco-obj365-person-235e8209.pth",
        "det_checkpoint_sha256": "235e8209",
    },
}


class PresetError(ValueError):
    """A pose section that cannot be planned; the message names the config key."""


@dataclass(frozen=True)
class Fetch:
    """A checkpoint rule ``fetch_pose_model`` downloads: where to, from where, which sha256."""

    path: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Export:
    """An ONNX file rule ``export_pose_onnx`` makes: kind (pose|detector), config, checkpoint and its pin."""

    kind: str
    config: str
    checkpoint: str
    sha256: str
    flip_test: str  # config | on | off (pose only)


@dataclass
class PosePlan:
    section: dict  # the effective pose section the pose jobs get
    fetch: dict[str, Fetch] = field(default_factory=dict)  # file name in the models folder -> what to fetch
    exports: dict[str, Export] = field(default_factory=dict)  # .onnx path -> how to make it

    def produced(self) -> set[str]:
        """Model files a rule makes (the others must exist before the run starts)."""
        return {f.path for f in self.fetch.values()} | set(self.exports)


def in_models_dir(value: str, models_dir: str) -> str:
    """A model file setting: a bare file name lies in the results' models folder, a path is taken as it is."""
    return f"{models_dir}/{value}" if value and "/" not in value else value


def _export_name(checkpoint: str, sha256: str, suffix: str = "") -> str:
    """``<checkpoint stem>.<8 hex of its pinned sha256><suffix>.onnx``: one file per checkpoint and export setting."""
    stem = PurePosixPath(checkpoint).name
    stem = stem[: -len(".pth")] if stem.endswith(".pth") else stem
    return f"{stem}.{sha256[:8].lower()}{suffix}.onnx"


def _pin(value: str, key: str) -> str:
    if not re.fullmatch(r"[0-9a-fA-F]{8,64}", value or ""):
        raise PresetError(f"config key pose.mmpose.{key}: a pinned sha256 (at least its first 8 hex digits) is "
                          f"needed to export the checkpoint to ONNX, got {value!r}")
    return value.lower()


def plan_pose(section: dict, models_dir: str) -> PosePlan:
    """What the workflow does for the (resolved) ``pose`` section, with model files under ``models_dir``
    (``<results>/models/pose``). Without a preset, the section is returned as it is, apart from bare mmpose
    checkpoint names, which lie in ``models_dir``."""
    section = copy.deepcopy(section)
    mm = section["mmpose"]
    preset = section.get("preset") or ""
    fetch: dict[str, Fetch] = {}
    if preset:
        if preset not in PRESETS:
            raise PresetError(f"config key pose.preset: unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
        pins = PRESETS[preset]
        for key in ("config", "det_config"):
            mm[key] = mm[key] or pins[key]
        for prefix in ("", "det_"):
            if not mm[f"{prefix}checkpoint"]:  # the preset's own file, URL and digest, fetched when absent
                for key in ("checkpoint", "checkpoint_url", "checkpoint_sha256"):
                    mm[prefix + key] = pins[prefix + key]
                name = mm[f"{prefix}checkpoint"]
                fetch[name] = Fetch(f"{models_dir}/{name}", mm[f"{prefix}checkpoint_url"],
                                    mm[f"{prefix}checkpoint_sha256"])
    for prefix in ("", "det_"):
        mm[f"{prefix}checkpoint"] = in_models_dir(mm[f"{prefix}checkpoint"], models_dir)
    if mm["fetch"]:
        for prefix in ("", "det_"):
            path, url, sha = (mm[f"{prefix}{k}"] for k in ("checkpoint", "checkpoint_url", "checkpoint_sha256"))
            if not path or not url or PurePosixPath(path).name in fetch:
                continue
            if path != f"{models_dir}/{PurePosixPath(path).name}":
                raise PresetError(f"config key pose.mmpose.{prefix}checkpoint: {path} must lie directly in "
                                  f"{models_dir}/ when pose.mmpose.fetch is true (the fetch rule writes only there); "
                                  "give a bare file name to put it there")
            if not sha:
                raise PresetError(f"config key pose.mmpose.{prefix}checkpoint_sha256: {path} needs a sha256 to be "
                                  "fetched")
            fetch[PurePosixPath(path).name] = Fetch(path, url, sha)
    plan = PosePlan(section=section, fetch=fetch)
    if not preset or section["backend"] != "onnx":
        return plan
    # the ONNX route: export both checkpoints, run them with the onnx backend
    for key in ("model", "detector"):
        given = section[key]["model"] if key == "detector" else section[key]
        if given:
            raise PresetError(f"config key pose.{key}{'.model' if key == 'detector' else ''} is set to {given!r}, but "
                              f"pose.preset {preset!r} exports its own ONNX files: leave it empty, or set pose.preset "
                              "to '' to use that file")
    flip = {None: "config", True: "on", False: "off"}[section["flip_test"]]
    pose_sha = _pin(mm["checkpoint_sha256"], "checkpoint_sha256")
    det_sha = _pin(mm["det_checkpoint_sha256"], "det_checkpoint_sha256")
    variant = "" if flip == "config" else f".flip-{flip}"
    pose_onnx = f"{models_dir}/onnx/" + _export_name(mm["checkpoint"], pose_sha, variant)
    det_onnx = f"{models_dir}/onnx/" + _export_name(mm["det_checkpoint"], det_sha)
    plan.exports = {pose_onnx: Export("pose", mm["config"], mm["checkpoint"], pose_sha, flip),
                    det_onnx: Export("detector", mm["det_config"], mm["det_checkpoint"], det_sha, "config")}
    section["model"] = pose_onnx
    section["model_sha256"] = ""  # the export's sidecar records its sha256
    section["detector"]["model"] = det_onnx
    return plan
