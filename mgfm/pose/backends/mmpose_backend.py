"""mmpose 1.x backend: the paper's setup (RTMPose/RTMW whole-body via ``init_model`` + top-down inference).

Imported only when ``pose.backend: mmpose``; runs in ``envs/mmpose.yaml`` (mmcv/torch version lock). Frames
of a batch go through mmpose's own test pipeline (GetBBoxCenterScale, TopdownAffine, PackPoseInputs) and one
``model.test_step`` call: the body of ``mmpose.apis.inference_topdown``, extended from the boxes of one image
to one box on each of many frames so a whole batch is one forward pass. An mmdet detector is optional.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from mgfm.pose.backends.base import PoseBackend, verify_sha256
from mgfm.common.digest import sha256_file
from mgfm.pose.params import PoseParams

log = logging.getLogger(__name__)


def _import_mmpose():
    from mgfm.pose.backends.mmcv_lite import install_shims

    install_shims()  # mmcv-lite / no torchvision: the tested setup (envs/mmpose-requirements.txt)
    try:
        import mmpose  # noqa: F401
        from mmpose.apis import init_model
    except ImportError as err:
        raise RuntimeError("config key pose.backend is 'mmpose' but mmpose is not importable: run in the "
                           f"envs/mmpose.yaml environment (snakemake --use-conda) ({err})") from err
    return init_model


def _check_files(p: PoseParams) -> tuple[Path, Path]:
    m = p.mmpose
    if not m.config:
        raise ValueError("config key pose.mmpose.config is empty: set it to an mmpose RTMPose/RTMW config file")
    config, ckpt = resolve_config(m.config), Path(m.checkpoint)
    if not config.is_file():
        raise FileNotFoundError(f"mmpose config not found: {config} (config key pose.mmpose.config; the configs "
                                "ship inside the mmpose package under .mim/configs/wholebody_2d_keypoint)")
    if not m.checkpoint or not ckpt.is_file():
        raise FileNotFoundError(f"mmpose checkpoint not found: {ckpt} (config key pose.mmpose.checkpoint). Fetch "
                                f"it with `snakemake fetch_pose_model` (pose.mmpose.fetch: true downloads "
                                f"{m.checkpoint_url or 'pose.mmpose.checkpoint_url'} and checks its sha256)")
    for key, value in (("det_config", m.det_config), ("det_checkpoint", m.det_checkpoint)):
        if value and not resolve_config(value).is_file():
            raise FileNotFoundError(f"mmdet file not found: {value} (config key pose.mmpose.{key})")
    return config, ckpt


class MmposeEstimator:
    """Batched top-down inference with an initialised mmpose model."""

    def __init__(self, model) -> None:
        from mmengine.dataset import Compose
        from mmengine.registry import init_default_scope

        self.model = model
        init_default_scope(model.cfg.get("default_scope", "mmpose"))
        self.pipeline = Compose(model.cfg.test_dataloader.dataset.pipeline)

    def estimate(self, frames_rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import torch
        from mmengine.dataset import pseudo_collate

        data = []
        for frame, box in zip(frames_rgb, boxes):
            # mmpose's LoadImage yields BGR and the data preprocessor converts to RGB (bgr_to_rgb=True)
            info = {"img": np.ascontiguousarray(frame[..., ::-1]), "bbox": np.asarray(box, np.float32)[None],
                    "bbox_score": np.ones(1, dtype=np.float32)}
            info.update(self.model.dataset_meta)
            data.append(self.pipeline(info))
        with torch.no_grad():
            results = self.model.test_step(pseudo_collate(data))
        xy = np.stack([r.pred_instances.keypoints[0] for r in results]).astype(np.float32)
        score = np.stack([r.pred_instances.keypoint_scores[0] for r in results]).astype(np.float32)
        return xy, score


class MmdetPersonDetector:
    """mmdet detector (e.g. RTMDet) returning person boxes above the configured score threshold."""

    def __init__(self, config: str, checkpoint: str, device: str, category: int, threshold: float) -> None:
        from mmdet.apis import inference_detector, init_detector

        self._infer = inference_detector
        self.model = init_detector(config, checkpoint, device=device)
        self.category, self.threshold = category, threshold

    def detect(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inst = self._infer(self.model, np.ascontiguousarray(frame_rgb[..., ::-1])).pred_instances.cpu().numpy()
        keep = (inst.labels == self.category) & (inst.scores > self.threshold)
        return inst.bboxes[keep].astype(np.float32), inst.scores[keep].astype(np.float32)

    def detect_batch(self, frames_rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [self.detect(frame) for frame in frames_rgb]


def resolve_config(config: str) -> Path:
    """A config path, or ``mmpose::<path>`` inside the installed mmpose package's bundled files (``.mim``:
    ``configs/...`` and ``demo/mmdetection_cfg/...``), so the paper config needs no mmpose source checkout."""
    if config.startswith("mmpose::"):
        import importlib.util

        spec = importlib.util.find_spec("mmpose")
        if spec is None or spec.origin is None:
            raise RuntimeError(f"config key pose.mmpose.config is {config!r} but mmpose is not installed")
        return Path(spec.origin).parent / ".mim" / config[len("mmpose::"):]
    return Path(config)


def load_config(config: str | Path):
    """The mmengine Config; RTMPose backbones name ``_scope_='mmdet'`` for CSPNeXt, which mmpose also
    registers: without mmdet installed (mmcv-lite setups) the scope is dropped so mmpose's copy is used."""
    import importlib.util

    from mmengine.config import Config

    cfg = Config.fromfile(str(config))
    backbone = cfg.model.get("backbone", {})
    if backbone.get("_scope_") == "mmdet" and importlib.util.find_spec("mmdet") is None:
        backbone.pop("_scope_")
    return cfg


def _checkpoint_safe_globals() -> list:
    """The numpy objects mmengine checkpoints hold in ``meta.dataset_meta`` (sigmas, colours): torch >= 2.6
    loads checkpoints with weights_only=True and refuses them unless allow-listed. Nothing callable beyond
    numpy's array reconstruction is allowed."""
    try:
        from numpy._core.multiarray import _reconstruct as reconstruct  # numpy >= 2 (1.26: a forwarding stub)
    except ImportError:
        from numpy.core.multiarray import _reconstruct as reconstruct
    dtypes = {type(np.dtype(t)) for t in (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32,
                                          np.int64, np.uint8, np.bool_)}
    return [(reconstruct, "numpy.core.multiarray._reconstruct"), (reconstruct, "numpy._core.multiarray._reconstruct"),
            np.ndarray, np.dtype, *dtypes]


def build_mmpose_model(config: str | Path, checkpoint: str | Path | None, device: str):
    """``mmpose.apis.init_model`` (checkpoint None: random weights, used by the equivalence test)."""
    init_model = _import_mmpose()
    import torch

    with torch.serialization.safe_globals(_checkpoint_safe_globals()):
        return init_model(load_config(config), str(checkpoint) if checkpoint else None, device=device)


def load_mmpose_backend(p: PoseParams, threads: int) -> PoseBackend:
    """The mmpose model (and optional mmdet detector) of ``p``, every file and checksum checked."""
    config, ckpt = _check_files(p)
    digest = verify_sha256(ckpt, p.mmpose.checkpoint_sha256, "pose.mmpose.checkpoint_sha256")
    _import_mmpose()
    import torch

    torch.set_num_threads(max(1, threads))
    device = "cuda" if p.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu"
    if p.device == "cuda" and device != "cuda":
        raise RuntimeError("config key pose.device is 'cuda' but torch sees no GPU")
    model = build_mmpose_model(config, ckpt, device)
    if p.flip_test is not None:  # the estimator's test_cfg is passed to the head's predict; the head keeps a copy
        model.test_cfg["flip_test"] = model.head.test_cfg["flip_test"] = p.flip_test
    backend = PoseBackend(MmposeEstimator(model).estimate,
                          {"backend": "mmpose", "model": config.stem, "model_sha256": digest, "device": device})
    m = p.mmpose
    if m.det_config and m.det_checkpoint:
        verify_sha256(Path(m.det_checkpoint), m.det_checkpoint_sha256, "pose.mmpose.det_checkpoint_sha256")
        backend.detector = MmdetPersonDetector(str(resolve_config(m.det_config)), m.det_checkpoint, device, m.det_category,
                                               p.detector.score_threshold)
        backend.meta["detector"] = Path(m.det_config).stem
        backend.meta["detector_sha256"] = sha256_file(m.det_checkpoint)
    return backend
