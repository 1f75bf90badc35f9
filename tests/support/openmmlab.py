"""What the mmpose-venv tests of the preset's ONNX route share: demo-rendered frames, the preset's files, and
random-weight checkpoints of its architectures in mmengine's format whose outputs depend on the image.

Released weights cannot be downloaded here; these checkpoints go through the same loading path instead.
Imported only by tests that run in the pinned mmpose venv (mmpose, mmdet, mmengine).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

DEMO = {"seed": 11, "n_videos": 2, "n_subjects": 2, "n_labeled": 2, "labeled_duration_s": [1.0, 1.0],
        "unlabeled_duration_s": [1.0, 1.0], "cut_ins": [0, 0]}


def demo_frames(width: int, height: int, n: int) -> np.ndarray:
    """``n`` frames of each demo video, drawn by the demo corpus' renderer at ``width`` x ``height`` (RGB)."""
    from mgfm.demo.corpus import simulate_video
    from mgfm.demo.plan import build_plan, demo_settings

    cfg = demo_settings({**DEMO, "width": width, "height": height})
    frames = []
    for plan in build_plan(cfg):
        _, shot = simulate_video(cfg, plan)
        for i in range(0, 8 * n, 8):
            frame = np.empty((height, width, 3), np.uint8)
            shot.frame(i, frame)
            frames.append(frame)
    return np.stack(frames)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def preset():
    from mgfm.pose.presets import PRESETS

    return PRESETS["rtmw-x"]


def save_mmengine_checkpoint(model, path: Path, dataset_meta: dict) -> tuple[Path, str]:
    """``model``'s weights as OpenMMLab's released files hold them (mmengine: ``meta`` + ``state_dict``), and the
    file's sha256."""
    from mmengine.runner.checkpoint import get_state_dict, save_checkpoint, weights_to_cpu

    save_checkpoint({"meta": {"dataset_meta": dataset_meta}, "state_dict": weights_to_cpu(get_state_dict(model))},
                    str(path))
    return path, sha256(path)


def informative_random_weights(model, forward, inputs) -> None:
    """Random weights whose outputs vary with the image and are well conditioned: every convolution drawn
    variance-preserving (He), every BatchNorm's running mean that of one pass over ``inputs`` (demo frames) and its
    running variance that pass's, floored at 0.5. With the frameworks' default initialisation activations fade out
    layer by layer and every output sits close to its bias (the comparison would be between near-ties, and blind
    to the input's channel order); with BatchNorms scaling faded channels all the way back up, float error is
    amplified layer after layer (float32 then differs from float64 by 1e-2 in the detector's logits; with the
    floor, by 1e-5, while swapping the input's channels moves them by about their standard deviation)."""
    import torch

    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.Conv2d):
                torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    torch.nn.init.zeros_(m.bias)
        norms = [m for m in model.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # cumulative average: after one pass, exactly that pass's statistics
            if m.affine:
                torch.nn.init.ones_(m.weight)
                torch.nn.init.zeros_(m.bias)
        model.train()
        forward(inputs)
        model.eval()
        for m in norms:
            m.running_var.clamp_(min=0.5)


def informative_pose_checkpoint(path: Path) -> tuple[Path, str]:
    """RTMW-x with random weights made informative on crops of demo frames (``informative_random_weights``)."""
    import torch

    from mgfm.pose.affine import boxes_to_cs, crop_batch
    from mgfm.pose.backends.mmpose_backend import resolve_config
    from mgfm.pose.onnx_export import build_pose_model
    from mgfm.pose.preprocess import normalize_crops

    torch.manual_seed(0)
    model = build_pose_model(resolve_config(preset()["config"]), None)
    frames = demo_frames(320, 240, 2)
    centers, scales = boxes_to_cs(np.tile([0, 0, 320, 240], (len(frames), 1)), (288, 384))
    crops = torch.from_numpy(normalize_crops(crop_batch(frames, centers, scales, (288, 384))))
    informative_random_weights(model, lambda t: model.head(model.extract_feat(t)), crops)
    return save_mmengine_checkpoint(model, path, model.dataset_meta)


def informative_detector_checkpoint(path: Path) -> tuple[Path, str]:
    """RTMDet-m (person) with random weights made informative (``informative_random_weights``), its last layers
    scaled so that on demo frames scores spread over (0, 1) and boxes span a few strides (mmdet's head init gives
    every prior a score of about 0.01 and zero-size boxes)."""
    import torch

    from mgfm.pose.backends.mmpose_backend import resolve_config
    from mgfm.pose.detection import DetectorSpec, letterbox
    from mgfm.pose.onnx_export import build_detector

    torch.manual_seed(0)
    model = build_detector(resolve_config(preset()["det_config"]), None)
    x, _ = letterbox(demo_frames(320, 240, 2), DetectorSpec(input_size=(640, 640)))
    x = torch.from_numpy(x)
    informative_random_weights(model, lambda t: model.bbox_head(model.extract_feat(t)), x)
    head = model.bbox_head
    # on these frames: logits of mean -3 and std 0.8 (tails up to about 5: no two top scores within float error),
    # box sides of about 3 strides (the head exponentiates its distances: exp_on_reg)
    reg_mean, reg_std = (np.log(3.0), 0.3) if head.exp_on_reg else (3.0, 1.0)
    with torch.no_grad():
        for level, feat in enumerate(model.extract_feat(x)):
            cls_feat, reg_feat = feat, feat
            for layer in head.cls_convs[level]:
                cls_feat = layer(cls_feat)
            for layer in head.reg_convs[level]:
                reg_feat = layer(reg_feat)
            for conv, out_feat, mean, std in ((head.rtm_cls[level], cls_feat, -3.0, 0.8),
                                              (head.rtm_reg[level], reg_feat, reg_mean, reg_std)):
                torch.nn.init.normal_(conv.weight)
                conv.bias.zero_()
                raw = conv(out_feat)
                conv.weight.mul_(std / raw.std())
                conv.bias.fill_(mean - float(raw.mean()) * std / float(raw.std()))
    return save_mmengine_checkpoint(model, path, {"classes": ("person",)})
