"""The pose settings ``mgfm infer`` runs, from the user: one option or a config, never from the models folder when
they would select code (``mgfm.infer.integrity.pose_settings`` checks either way that the pose model is the one
the classifiers were calibrated on).

- ``--pose JSON``: the pose section itself;
- ``--pose-preset rtmw-x``: the paper's models as the workflow exports them (``mgfm.pose.presets``), found in the
  models folder (``<models>/pose/onnx/``, where rule ``export_pose_onnx`` writes them);
- ``--pose-model FILE`` (and ``--detector-model FILE``): ONNX files of your own, run by the ONNX backend;
- ``--configfile FILE ...``: the pose section of a run config, resolved as the workflow resolves it (schema
  defaults, then the files in order), a preset planned in that config's results folder.

The last three start from the recorded section's plain settings (numbers: thresholds, batch size, box padding;
data, not code) with the ONNX backend, so a model file is all they change.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path


class PoseChoiceError(ValueError):
    """Options that cannot give a pose section; the message names the option."""


def _onnx_base(recorded: dict) -> dict:
    """The recorded section's data-only settings for the ONNX backend (no preset, no mmpose section)."""
    from mgfm.config import resolve

    base = copy.deepcopy(resolve("pose", recorded))
    base.update(backend="onnx", preset="", model="", model_sha256="")
    base["detector"]["model"] = ""
    base["mmpose"] = resolve("pose", {})["mmpose"]
    return base


def _existing(path: str, option: str, hint: str) -> str:
    if not Path(path).is_file():
        raise PoseChoiceError(f"{option}: {path} not found{hint}")
    return path


def user_pose_section(models_dir: str | os.PathLike, recorded: dict, *, pose_json: dict | None = None,
                      preset: str | None = None, model: str | None = None, detector: str | None = None,
                      configfiles: list[str] | None = None) -> dict | None:
    """The pose section the user chose (None: none chosen, the recorded one applies if it selects no code)."""
    from mgfm.pose.presets import PresetError, plan_pose

    given = [name for name, v in (("--pose", pose_json), ("--pose-preset", preset), ("--pose-model", model),
                                  ("--configfile", configfiles)) if v]
    if len(given) > 1:
        raise PoseChoiceError(f"{' and '.join(given)}: give the pose settings one way")
    if detector and not model:
        raise PoseChoiceError("--detector-model goes with --pose-model (a preset and a config name their own "
                              "detector)")
    if pose_json is not None:
        return pose_json
    if model:
        section = _onnx_base(recorded)
        section["model"] = _existing(model, "--pose-model", "")
        section["detector"]["model"] = _existing(detector, "--detector-model", "") if detector else ""
        return section
    if preset:
        pose_dir = Path(models_dir) / "pose"
        try:
            plan = plan_pose({**_onnx_base(recorded), "preset": preset}, str(pose_dir))
        except PresetError as err:
            raise PoseChoiceError(f"--pose-preset: {err}") from None
        for key in ("model", "detector"):
            path = plan.section[key] if key == "model" else plan.section[key]["model"]
            _existing(path, "--pose-preset", f" (the {key} export of preset {preset!r}, which the workflow's rule "
                                             f"export_pose_onnx writes into {pose_dir}/onnx/; give the models folder "
                                             "of that run, or --pose-model FILE)")
        return plan.section
    if configfiles:
        from mgfm.config.run import run_config

        cfg = run_config(list(configfiles), {}, None)
        try:
            plan = plan_pose(cfg["pose"], f"{cfg['results'].rstrip('/')}/models/pose")
        except PresetError as err:
            raise PoseChoiceError(f"--configfile: {err}") from None
        return plan.section
    return None
