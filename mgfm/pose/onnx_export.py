"""Export an OpenMMLab pose model (RTMPose/RTMW) or RTMDet person detector checkpoint to ONNX, plus its sidecar.

Runs in the pinned mmpose environment (envs/mmpose-requirements.txt: pip only, mmcv-lite, no compiled ops): the
network is built from its mmpose/mmdet config by their own registries (``mmcv.ops`` stood in by
``mgfm.pose.backends.mmcv_lite``: no op of it is in either forward pass), the checkpoint is loaded without
executing pickled code, and only the forward pass goes into the graph:

* pose: backbone + neck + SimCC head, input the normalised crop (N, 3, h, w), outputs ``simcc_x``, ``simcc_y``.
  With flip test (the config's ``test_cfg.flip_test``, on for RTMW-x) the graph also runs the mirrored crops in
  the same batch and averages them with the flipped, keypoint-swapped outputs (mmpose ``flip_vectors``), so the
  onnx backend's keypoints are mmpose's ``inference_topdown`` ones;
* detector: backbone + neck + head, input the letterboxed frame (N, 3, 640, 640), outputs the raw per-prior
  ``cls_logits`` (N, P, C) and ``distances`` (N, P, 4) of every level; decoding and NMS run in numpy
  (``mgfm.pose.detection``), with the config's test-time thresholds recorded in the sidecar.

The sidecar JSON beside the .onnx records what the onnx backend needs (input size, normalisation, decoding) and
where the file came from: config, the checkpoint's sha256, the export settings, and the .onnx file's own sha256.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import logging
import os
import time
from pathlib import Path

from mgfm.common.atomic import atomic_path
from mgfm.common.digest import sha256_file

log = logging.getLogger(__name__)

OPSET = 17
KINDS = ("pose", "detector")


def _versions() -> dict:
    out = {}
    for dist in ("torch", "mmpose", "mmdet", "mmengine", "mmcv-lite", "mmcv", "onnx"):
        try:
            out[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def check_checkpoint(path: str | os.PathLike, expected_sha256: str) -> str:
    """The checkpoint's full sha256, which must start with the pinned ``expected_sha256`` (>= 8 hex digits)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if len(expected_sha256) < 8:
        raise ValueError(f"{path}: a pinned sha256 of at least 8 hex digits is required to export it "
                         f"(got {expected_sha256!r})")
    digest = sha256_file(path)
    if not digest.startswith(expected_sha256.lower()):
        raise ValueError(f"{path}: sha256 {digest} does not match the pinned {expected_sha256}")
    return digest


def load_weights(model, checkpoint: str | os.PathLike) -> dict:
    """Load an mmengine checkpoint's ``state_dict`` into ``model`` with torch's weights-only unpickler; every
    parameter and buffer of the model must be in it (a checkpoint of another architecture fails here, instead
    of exporting a half-random network). Returns the checkpoint's ``meta``."""
    import torch

    from mgfm.pose.backends.mmpose_backend import _checkpoint_safe_globals

    with torch.serialization.safe_globals(_checkpoint_safe_globals()):
        ckpt = torch.load(str(checkpoint), map_location="cpu", weights_only=True)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{checkpoint}: not a checkpoint (no state_dict)")
    state = {k[len("module."):] if k.startswith("module.") else k: v for k, v in state.items()}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys:
        raise ValueError(f"{checkpoint}: {len(result.missing_keys)} weights of the configured model are not in the "
                         f"checkpoint (e.g. {result.missing_keys[:3]}): wrong config for this checkpoint?")
    if result.unexpected_keys:
        log.warning("%s: %d checkpoint entries are not used by the model (e.g. %s)", checkpoint,
                    len(result.unexpected_keys), result.unexpected_keys[:3])
    meta = ckpt.get("meta", {}) if isinstance(ckpt, dict) else {}
    return meta if isinstance(meta, dict) else {}


# ---- pose model ---------------------------------------------------------------------------------------------

def build_pose_model(config: str | os.PathLike, checkpoint: str | os.PathLike | None):
    """The mmpose top-down model of ``config`` on CPU, eval mode, with the checkpoint's weights and dataset meta
    (``checkpoint`` None: random weights, dataset meta from the config, as mmpose's ``init_model``)."""
    from mgfm.pose.backends.mmpose_backend import build_mmpose_model

    model = build_mmpose_model(config, None, "cpu")
    if checkpoint is not None:
        meta = load_weights(model, checkpoint)
        if "dataset_meta" in meta:  # mmpose's order: checkpoint, then config
            model.dataset_meta = meta["dataset_meta"]
    return model.eval()


def _pose_net(model, flip_indices: list[int] | None):
    import torch

    class PoseNet(torch.nn.Module):
        """Normalised crops -> SimCC vectors; with ``flip_indices``, mmpose's flip test in the same graph."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.flip = flip_indices is not None
            self.register_buffer("flip_indices", torch.tensor(flip_indices or [], dtype=torch.long), persistent=False)

        def forward(self, x):
            if not self.flip:
                return self.model.head(self.model.extract_feat(x))
            n = x.shape[0]
            pred_x, pred_y = self.model.head(self.model.extract_feat(torch.cat([x, x.flip(-1)])))
            flip_x = pred_x[n:][:, self.flip_indices].flip(-1)
            flip_y = pred_y[n:][:, self.flip_indices]
            return (pred_x[:n] + flip_x) * 0.5, (pred_y[:n] + flip_y) * 0.5

    return PoseNet().eval()


def pose_spec(model, flip_test: bool) -> dict:
    """The sidecar fields of a pose model (what the onnx backend's pre/post-processing reads), from its config;
    a config whose test pipeline or decoder the onnx backend does not reproduce is refused."""
    cfg = model.cfg
    codec = cfg.codec
    if codec.get("type") != "SimCCLabel" or codec.get("use_dark", False):
        raise ValueError(f"only SimCC (RTMPose/RTMW) models without DARK decoding export; the config's codec is "
                         f"{codec}")
    pre = cfg.model.data_preprocessor
    steps = {t["type"]: t for t in cfg.test_dataloader.dataset.pipeline}
    affine = steps.get("TopdownAffine", {})
    if affine.get("use_udp", False) or tuple(affine.get("input_size", ())) != tuple(codec["input_size"]):
        raise ValueError(f"the config's TopdownAffine ({affine}) is not the plain affine crop the onnx backend makes")
    w, h = codec["input_size"]
    return {"kind": "pose", "name": Path(str(cfg.filename)).stem, "input_size": [int(w), int(h)],
            "split_ratio": float(codec["simcc_split_ratio"]), "num_keypoints": len(model.dataset_meta["flip_indices"]),
            "mean": [float(v) for v in pre["mean"]], "std": [float(v) for v in pre["std"]],
            "color": "rgb" if pre.get("bgr_to_rgb", False) else "bgr",
            "bbox_padding": float(steps.get("GetBBoxCenterScale", {}).get("padding", 1.25)),
            "flip_test": bool(flip_test)}


def export_pose_model(config: str | os.PathLike, checkpoint: str | os.PathLike, checkpoint_sha256: str,
                      out: str | os.PathLike, flip_test: bool | None = None, opset: int = OPSET,
                      config_label: str | None = None) -> dict:
    """Export ``checkpoint`` (pinned by ``checkpoint_sha256``) of the mmpose ``config`` to ``out`` (.onnx, dynamic
    batch) and ``out``.json. ``flip_test`` None: as the config's ``test_cfg``. ``config_label``: how the sidecar
    names the config (default its path). Returns the sidecar."""
    import torch

    digest = check_checkpoint(checkpoint, checkpoint_sha256)
    model = build_pose_model(config, checkpoint)
    flip = bool(model.test_cfg.get("flip_test", False)) if flip_test is None else bool(flip_test)
    side = pose_spec(model, flip)
    w, h = side["input_size"]
    net = _pose_net(model, list(model.dataset_meta["flip_indices"]) if flip else None)
    _export(net, torch.zeros(1, 3, h, w), ["simcc_x", "simcc_y"], out, opset)
    return _write_sidecar(out, {**side, "source": _source(config_label or config, checkpoint, digest), "opset": opset})


# ---- person detector ----------------------------------------------------------------------------------------

def build_detector(config: str | os.PathLike, checkpoint: str | os.PathLike | None):
    """The mmdet RTMDet-form detector of ``config`` on CPU, eval mode, built by mmdet's registry without any
    compiled op, with the checkpoint's weights (None: random weights)."""
    from mgfm.pose.backends.mmcv_lite import install_shims

    install_shims()
    from mmengine.config import Config
    from mmengine.registry import init_default_scope

    cfg = Config.fromfile(str(config))
    if cfg.model.get("type") != "RTMDet":
        raise ValueError(f"{config}: model type {cfg.model.get('type')!r}; only RTMDet-form detectors export "
                         "(their decoding is mgfm.pose.detection)")
    if "init_cfg" in cfg.model.backbone:
        cfg.model.backbone.init_cfg = None  # a pretrained-backbone URL: never downloaded, the checkpoint has it all
    init_default_scope(cfg.get("default_scope", "mmdet"))
    import mmdet.models  # noqa: F401  (registers the model classes)
    from mmdet.registry import MODELS
    from mmengine.model.utils import revert_sync_batchnorm

    model = revert_sync_batchnorm(MODELS.build(cfg.model))
    meta = load_weights(model, checkpoint) if checkpoint is not None else {}
    model.cfg = cfg
    model.dataset_meta = {k.lower(): v for k, v in meta.get("dataset_meta", {}).items()}
    return model.eval()


def _detector_net(model):
    import torch

    class DetectorNet(torch.nn.Module):
        """Letterboxed, normalised frames -> every prior's class logits and box distances, level after level."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, x):
            cls_scores, bbox_preds = self.model.bbox_head(self.model.extract_feat(x))
            cls = torch.cat([c.flatten(2).transpose(1, 2) for c in cls_scores], dim=1)
            dist = torch.cat([b.flatten(2).transpose(1, 2) for b in bbox_preds], dim=1)
            return cls, dist

    return DetectorNet().eval()


def detector_spec(model) -> dict:
    """The sidecar fields of an RTMDet-form detector, from its config; a test pipeline other than keep-ratio
    resize + pad (what ``mgfm.pose.detection.letterbox`` does) is refused."""
    from mgfm.pose.detection import DetectorSpec

    cfg = model.cfg
    head = model.bbox_head
    if getattr(head, "with_objectness", False) or not head.use_sigmoid_cls:
        raise ValueError("only RTMDet heads with sigmoid class scores and no objectness branch export")
    steps = {t["type"].split(".")[-1]: t for t in cfg.test_dataloader.dataset.pipeline}
    resize, pad = steps.get("Resize", {}), steps.get("Pad", {})
    size = tuple(resize.get("scale", ()))
    if not resize.get("keep_ratio", False) or tuple(pad.get("size", ())) != size or len(size) != 2:
        raise ValueError(f"the detector's test pipeline ({cfg.test_dataloader.dataset.pipeline}) is not a keep-ratio "
                         "Resize then a Pad to the same size")
    pad_val = pad.get("pad_val", {}).get("img", 0)
    pad_val = pad_val[0] if isinstance(pad_val, (list, tuple)) else pad_val
    pre = cfg.model.data_preprocessor
    test = model.test_cfg
    classes = model.dataset_meta.get("classes") or cfg.test_dataloader.dataset.get("metainfo", {}).get("classes")
    gen = head.prior_generator
    spec = DetectorSpec(
        input_size=(int(size[0]), int(size[1])), strides=tuple(int(s[0]) for s in gen.strides),
        prior_offset=float(gen.offset), mean=tuple(float(v) for v in pre["mean"]),
        std=tuple(float(v) for v in pre["std"]), color="rgb" if pre.get("bgr_to_rgb", False) else "bgr",
        pad_value=int(pad_val), score_thr=float(test.get("score_thr", 0.0)), nms_pre=int(test.get("nms_pre", -1)),
        min_bbox_size=float(test.get("min_bbox_size", -1)), iou_threshold=float(test["nms"]["iou_threshold"]),
        max_per_img=int(test.get("max_per_img", 100)), classes=tuple(classes or ()))
    if test["nms"].get("type", "nms") != "nms":
        raise ValueError(f"only plain NMS is reproduced; the config asks for {test['nms']}")
    if len(spec.classes) != head.cls_out_channels:
        raise ValueError(f"{len(spec.classes)} class names for a head with {head.cls_out_channels} classes")
    return {"kind": "detector", "format": "rtmdet-raw", "name": Path(str(cfg.filename)).stem, **spec.to_sidecar()}


def export_detector(config: str | os.PathLike, checkpoint: str | os.PathLike, checkpoint_sha256: str,
                    out: str | os.PathLike, opset: int = OPSET, config_label: str | None = None) -> dict:
    """Export ``checkpoint`` (pinned by ``checkpoint_sha256``) of the mmdet RTMDet ``config`` to ``out`` (.onnx,
    dynamic batch) and ``out``.json. Returns the sidecar."""
    import torch

    digest = check_checkpoint(checkpoint, checkpoint_sha256)
    model = build_detector(config, checkpoint)
    side = detector_spec(model)
    w, h = side["input_size"]
    _export(_detector_net(model), torch.zeros(1, 3, h, w), ["cls_logits", "distances"], out, opset)
    return _write_sidecar(out, {**side, "source": _source(config_label or config, checkpoint, digest), "opset": opset})


# ---- shared -------------------------------------------------------------------------------------------------

def _export(net, dummy, output_names: list[str], out: str | os.PathLike, opset: int) -> None:
    import torch

    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with atomic_path(out) as tmp, torch.no_grad():
        torch.onnx.export(net, (dummy,), str(tmp), dynamo=False, opset_version=opset, input_names=["input"],
                          output_names=output_names,
                          dynamic_axes={"input": {0: "batch"}, **{name: {0: "batch"} for name in output_names}})
    log.info("exported %s (%.1f MB) in %.1f s", out, out.stat().st_size / 1e6, time.perf_counter() - t0)


def _source(config: str | os.PathLike, checkpoint: str | os.PathLike, digest: str) -> dict:
    return {"config": str(config), "checkpoint": Path(checkpoint).name, "checkpoint_sha256": digest}


def _write_sidecar(out: str | os.PathLike, side: dict) -> dict:
    out = Path(out)
    side = {**side, "sha256": sha256_file(out), "exported_with": _versions()}
    with atomic_path(out.with_suffix(".json")) as tmp:
        tmp.write_text(json.dumps(side, indent=2) + "\n")
    return side


def export(kind: str, config: str, checkpoint: str, checkpoint_sha256: str, out: str,
           flip_test: bool | None = None, opset: int = OPSET) -> dict:
    """``export_pose_model`` or ``export_detector`` by ``kind`` (the rule's entry point)."""
    from mgfm.pose.backends.mmpose_backend import resolve_config

    config_path = resolve_config(config)
    if not config_path.is_file():
        raise FileNotFoundError(f"{kind} config not found: {config_path} ({config})")
    # the sidecar names the config as configured (mmpose::...), not by this machine's path
    if kind == "pose":
        return export_pose_model(config_path, checkpoint, checkpoint_sha256, out, flip_test, opset, config)
    if kind == "detector":
        return export_detector(config_path, checkpoint, checkpoint_sha256, out, opset, config)
    raise ValueError(f"unknown model kind {kind!r}; expected one of {KINDS}")


def save_random_checkpoint(kind: str, config: str, out: str | os.PathLike, seed: int = 0) -> Path:
    """A checkpoint of ``config``'s architecture with random weights, in mmengine's format (``meta`` +
    ``state_dict``, what OpenMMLab's released files hold): the stand-in for released weights, which cannot be
    downloaded here, in the tests and the benchmark."""
    import torch
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    from mgfm.pose.backends.mmpose_backend import resolve_config

    torch.manual_seed(seed)
    path = resolve_config(config)
    model = build_pose_model(path, None) if kind == "pose" else build_detector(path, None)
    meta = {"dataset_meta": model.dataset_meta or {"classes": ("person",)}, "seed": seed}
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_checkpoint({"meta": meta, "state_dict": weights_to_cpu(get_state_dict(model))}, str(out))
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m mgfm.pose.onnx_export``: what ``mgfm pose export-onnx`` runs (also without mgfm installed)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    from mgfm.common.logs import setup_logging

    setup_logging()
    run(args)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", required=True, choices=KINDS,
                        help="pose: an RTMPose / RTMW top-down model; detector: an RTMDet person detector")
    parser.add_argument("--config", required=True, help="mmpose/mmdet config file, or mmpose::<path> in the package")
    parser.add_argument("--checkpoint", required=True, help="the checkpoint (.pth) to export")
    parser.add_argument("--sha256", required=True, help="its pinned sha256 (full, or >= 8 hex digits)")
    parser.add_argument("--out", required=True, help="the .onnx to write (its sidecar .json goes beside it)")
    parser.add_argument("--flip-test", choices=("config", "on", "off"), default="config",
                        help="pose only: mmpose's flip test in the graph (config: as the config's test_cfg)")
    parser.add_argument("--opset", type=int, default=OPSET, help=f"ONNX opset of the exported graph (default {OPSET})")


def to_argv(args: argparse.Namespace) -> list[str]:
    """The command-line arguments that parse back to ``args`` (to run the export in another Python)."""
    return ["--kind", args.kind, "--config", args.config, "--checkpoint", args.checkpoint, "--sha256", args.sha256,
            "--out", args.out, "--flip-test", args.flip_test, "--opset", str(args.opset)]


def run(args: argparse.Namespace) -> dict:
    flip = {"config": None, "on": True, "off": False}[args.flip_test]
    side = export(args.kind, args.config, args.checkpoint, args.sha256, args.out, flip, args.opset)
    log.info("%s: sha256 %s (checkpoint sha256 %s)", args.out, side["sha256"], side["source"]["checkpoint_sha256"])
    return side


if __name__ == "__main__":
    raise SystemExit(main())
