"""ONNX Runtime backend: RTMPose/RTMW-form SimCC models and an RTMDet-form person detector, no mmcv needed."""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from mgfm.pose.affine import boxes_to_cs, crop_batch, crop_to_image
from mgfm.pose.backends.base import PoseBackend, require_file, verify_sha256
from mgfm.common.digest import sha256_file
from mgfm.pose.detection import DetectorSpec, decode_detections, grid_priors, letterbox
from mgfm.pose.params import DEMO_MODEL, PoseParams
from mgfm.pose.preprocess import RTMPOSE_MEAN, RTMPOSE_STD, normalize_crops
from mgfm.pose.simcc import DEFAULT_SPLIT_RATIO, decode_simcc

log = logging.getLogger(__name__)


def make_session(path: str | os.PathLike, threads: int, device: str = "auto"):
    """An InferenceSession on CUDA when asked/available, else CPU with ``threads`` intra-op threads."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = max(1, int(threads))
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    available = ort.get_available_providers()
    if device == "cuda" and "CUDAExecutionProvider" not in available:
        raise RuntimeError("config key pose.device is 'cuda' but onnxruntime has no CUDAExecutionProvider "
                           "(install onnxruntime-gpu)")
    if device == "auto" and "CUDAExecutionProvider" not in available and _gpu_visible():
        log.warning("%s: a GPU is visible but this onnxruntime has no CUDAExecutionProvider (the CPU build is "
                    "installed): pose runs on the CPU. Set config key pose.device to 'cuda' to run the pose rule in "
                    "envs/pose-gpu.yaml (onnxruntime-gpu)", path)
    use_cuda = device in ("auto", "cuda") and "CUDAExecutionProvider" in available
    # under torchrun / a SLURM array with several GPUs per node, each process takes its own card
    cuda = ("CUDAExecutionProvider", {"device_id": int(os.environ.get("LOCAL_RANK", "0"))})
    providers = [cuda, "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
    session = ort.InferenceSession(str(path), sess_options=opts, providers=providers)
    if use_cuda and "CUDAExecutionProvider" not in session.get_providers():
        # onnxruntime falls back to CPU silently when the CUDA/cuDNN libraries do not load
        if device == "cuda":
            raise RuntimeError(f"{path}: config key pose.device is 'cuda' but onnxruntime could not start its "
                               "CUDAExecutionProvider (CUDA/cuDNN libraries missing or mismatched; see its log)")
        log.warning("%s: CUDAExecutionProvider is installed but did not start; running on CPU", path)
    return session


def _gpu_visible() -> bool:
    """Whether this process may use an NVIDIA GPU (CUDA_VISIBLE_DEVICES, else the driver's list), without torch."""
    from mgfm.common.gpu_slots import candidate_gpus

    try:
        return bool(candidate_gpus())
    except ValueError:
        return False


def read_sidecar(model_path: Path) -> dict:
    """The model's sidecar JSON (``<model>.json``: name, input_size, split_ratio, mean, std, color), if any."""
    side = model_path.with_suffix(".json")
    if not side.is_file():
        return {}
    try:
        return json.loads(side.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{side}: not valid JSON ({err})") from err


@dataclass
class PoseModelSpec:
    """What the pre/post-processing needs to know about a model."""

    input_size: tuple[int, int]  # (w, h)
    split_ratio: float = DEFAULT_SPLIT_RATIO
    mean: tuple[float, float, float] = RTMPOSE_MEAN
    std: tuple[float, float, float] = RTMPOSE_STD
    color: str = "rgb"
    padding: float = 1.25


class OnnxPoseEstimator:
    """Top-down whole-body estimation: crop every box, normalise, one batched session run, decode SimCC."""

    def __init__(self, session, spec: PoseModelSpec) -> None:
        self.session = session
        self.spec = spec
        inputs = session.get_inputs()
        self.input_name = inputs[0].name
        batch_dim = inputs[0].shape[0]
        # mmdeploy exports often fix the batch to 1: then we feed crops one at a time
        self.max_batch = batch_dim if isinstance(batch_dim, int) and batch_dim > 0 else None
        self.output_names = [o.name for o in session.get_outputs()][:2]
        # on a GPU, IO binding: one host-to-device copy of the whole batch, outputs allocated on the device and
        # copied back once, instead of the session staging each run's inputs and outputs itself
        self.io_binding = session.get_providers()[0] == "CUDAExecutionProvider"

    @staticmethod
    def input_size_of(session) -> tuple[int, int] | None:
        """(w, h) from the model's static input shape (N, 3, h, w), if it is static."""
        shape = session.get_inputs()[0].shape
        if len(shape) == 4 and isinstance(shape[2], int) and isinstance(shape[3], int):
            return int(shape[3]), int(shape[2])
        return None

    def estimate(self, frames_rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """frames (N, H, W, 3) uint8 RGB, one box (N, 4) each -> keypoints (N, K, 2) image px, scores (N, K)."""
        return self.infer(self.prepare(frames_rgb, boxes))

    def prepare(self, frames_rgb: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The CPU half (thread-safe, no session): (model input (N, 3, h, w) float32, crop centers, crop scales)."""
        s = self.spec
        centers, scales = boxes_to_cs(boxes, s.input_size, s.padding)
        crops = crop_batch(frames_rgb, centers, scales, s.input_size)
        return normalize_crops(crops, s.mean, s.std, s.color), centers, scales

    def infer(self, prepared: tuple[np.ndarray, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """The session run and SimCC decoding of a ``prepare`` result -> keypoints in image px, scores."""
        s = self.spec
        x, centers, scales = prepared
        simcc_x, simcc_y = self.run(x)
        kpts, scores = decode_simcc(simcc_x, simcc_y, s.split_ratio)
        return crop_to_image(kpts, centers, scales, s.input_size), scores

    def run(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.max_batch is None or len(x) <= self.max_batch:
            return self._run_batch(x)
        parts = [self._run_batch(x[i:i + self.max_batch]) for i in range(0, len(x), self.max_batch)]
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def _run_batch(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not self.io_binding:
            out = self.session.run(self.output_names, {self.input_name: x})
            return out[0], out[1]
        binding = self.session.io_binding()
        binding.bind_cpu_input(self.input_name, np.ascontiguousarray(x))
        for name in self.output_names:
            binding.bind_output(name)
        self.session.run_with_iobinding(binding)
        out = binding.copy_outputs_to_cpu()
        return out[0], out[1]


class OnnxPersonDetector:
    """RTMDet-form detector exported by mmdeploy (``dets`` (1, M, 5) xyxy+score, optional ``labels`` (1, M)).

    Preprocessing as RTMDet's test pipeline (and rtmlib): keep-ratio resize into the input, pad with 114 at the
    bottom/right, ``(pixel - mean) / std`` in the configured channel order.
    """

    def __init__(self, session, input_size: tuple[int, int], mean, std, color: str,
                 score_threshold: float, person_label: int = 0) -> None:
        self.session = session
        self.input_w, self.input_h = int(input_size[0]), int(input_size[1])
        self.mean = np.asarray(mean, dtype=np.float32)
        self.std = np.asarray(std, dtype=np.float32)
        self.color = color
        self.score_threshold = score_threshold
        self.person_label = person_label
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()]

    def detect(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Person boxes (M, 4) in image pixels and their scores (M,), above the score threshold."""
        h, w = frame_rgb.shape[:2]
        ratio = min(self.input_h / h, self.input_w / w)
        nh, nw = int(h * ratio), int(w * ratio)
        img = frame_rgb[..., ::-1] if self.color == "bgr" else frame_rgb
        padded = np.full((self.input_h, self.input_w, 3), 114, dtype=np.uint8)
        padded[:nh, :nw] = cv2.resize(np.ascontiguousarray(img), (nw, nh), interpolation=cv2.INTER_LINEAR)
        x = ((padded.astype(np.float32) - self.mean) / self.std).transpose(2, 0, 1)[None]
        outputs = self.session.run(self.output_names, {self.input_name: np.ascontiguousarray(x)})
        dets = np.asarray(outputs[0])[0].reshape(-1, 5)
        keep = dets[:, 4] > self.score_threshold
        if len(outputs) > 1:
            labels = np.asarray(outputs[1]).reshape(-1)
            keep &= labels == self.person_label
        boxes = dets[keep, :4] / ratio
        boxes = np.clip(boxes, 0, [w, h, w, h]).astype(np.float32)
        return boxes, dets[keep, 4].astype(np.float32)

    def detect_batch(self, frames_rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """``detect`` on each frame (mmdeploy's exports take one image per run)."""
        return [self.detect(frame) for frame in frames_rgb]


class RtmdetOnnxDetector:
    """An RTMDet forward pass exported by ``mgfm.pose.onnx_export`` (raw ``cls_logits``, ``distances`` of every
    prior), with mmdet's letterbox, decoding and NMS done in numpy (``mgfm.pose.detection``): a batch of frames
    goes through one session run."""

    def __init__(self, session, spec: DetectorSpec, score_threshold: float, person_label: int) -> None:
        self.session = session
        self.spec = spec
        self.score_threshold = score_threshold
        self.person_label = person_label
        self.priors, self.slices = grid_priors(spec)
        self.input_name = session.get_inputs()[0].name
        self.output_names = [o.name for o in session.get_outputs()][:2]

    def detect_batch(self, frames_rgb: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per frame: person boxes (M, 4) in frame pixels and their scores (M,) above the score threshold, best
        first: mmdet's boxes for this detector (boxes are not clipped to the frame, as mmdet's are not)."""
        if len(frames_rgb) == 0:
            return []
        x, scale = letterbox(frames_rgb, self.spec)
        cls_logits, distances = self.session.run(self.output_names, {self.input_name: x})
        out = []
        for logits, dist in zip(cls_logits, distances):
            det = decode_detections(logits, dist, self.priors, self.slices, self.spec, scale, self.score_threshold)
            person = det.labels == self.person_label
            out.append((det.boxes[person], det.scores[person]))
        return out

    def detect(self, frame_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.detect_batch(frame_rgb[None])[0]


def load_detector(p: PoseParams, threads: int) -> tuple[object, dict]:
    """The configured person detector and the pose file metadata naming it. An export of ours (sidecar
    ``format: rtmdet-raw``) brings its input size, normalisation, thresholds and sha256; an mmdeploy export
    (``dets``, ``labels`` outputs) takes them from config keys ``pose.detector.*``."""
    d = p.detector
    det_path = Path(d.model)
    require_file(det_path, "person detector model",
                 "Set config key pose.detector.model to a local RTMDet ONNX export, or to '' for whole frames.")
    side = read_sidecar(det_path)
    digest = sha256_file(det_path)
    if side.get("sha256") and digest != side["sha256"]:
        raise ValueError(f"{det_path}: sha256 {digest} is not the {side['sha256']} that its sidecar "
                         f"{det_path.with_suffix('.json')} records: the file changed after it was exported")
    meta = {"detector": side.get("name", det_path.stem), "detector_sha256": digest}
    if "source" in side:
        meta["detector_checkpoint_sha256"] = side["source"]["checkpoint_sha256"]
    session = make_session(det_path, threads, p.device)
    if side.get("format") == "rtmdet-raw":
        spec = DetectorSpec.from_sidecar(side)
        if "person" not in spec.classes:
            raise ValueError(f"{det_path}: the detector's classes {list(spec.classes)} have no 'person'")
        return RtmdetOnnxDetector(session, spec, d.score_threshold, spec.classes.index("person")), meta
    return OnnxPersonDetector(session, tuple(d.input_size), d.mean, d.std, d.color, d.score_threshold), meta


def load_onnx_backend(p: PoseParams, threads: int) -> PoseBackend:
    """The ONNX pose model (and detector) of ``p``, every file and checksum checked; sidecar JSON fills gaps."""
    model = p.model_path()
    how = ("Train and export the shipped demo model with `python -m mgfm.demo.pose_model.train`."
           if model == DEMO_MODEL else
           "Set config key pose.model to a local RTMPose/RTMW whole-body ONNX export (mmdeploy or rtmlib).")
    require_file(model, "pose model", how)
    side = read_sidecar(model)
    if p.detector.model:
        require_file(Path(p.detector.model), "person detector model",
                     "Set config key pose.detector.model to a local RTMDet ONNX export, or to '' for whole frames.")
    if side.get("kind", "pose") != "pose":
        raise ValueError(f"config key pose.model: {model} is a {side['kind']} model (its sidecar JSON says so), "
                         "not a pose model")
    digest = verify_sha256(model, p.model_sha256 or side.get("sha256", ""), "pose.model_sha256")
    session = make_session(model, threads, p.device)
    input_size = (p.input_size or OnnxPoseEstimator.input_size_of(session) or side.get("input_size"))
    if not input_size:
        raise ValueError(f"{model}: input size unknown (dynamic shape, no sidecar JSON): set config key pose.input_size")
    spec = PoseModelSpec(
        input_size=(int(input_size[0]), int(input_size[1])),
        split_ratio=float(p.split_ratio or side.get("split_ratio", 2.0)),
        mean=tuple(p.mean or side.get("mean", PoseModelSpec.mean)),
        std=tuple(p.std or side.get("std", PoseModelSpec.std)),
        color=p.color or side.get("color", "rgb"),
        padding=p.bbox_padding,
    )
    if "bbox_padding" in side and side["bbox_padding"] != p.bbox_padding:
        log.warning("%s: the model's config pads boxes by %s, config key pose.bbox_padding is %s", model,
                    side["bbox_padding"], p.bbox_padding)
    estimator = OnnxPoseEstimator(session, spec)
    backend = PoseBackend(estimator.estimate,
                          {"backend": "onnx", "model": side.get("name", model.stem), "model_sha256": digest,
                           "input_size": list(spec.input_size), "providers": session.get_providers()},
                          prepare=estimator.prepare, infer=estimator.infer)
    if "source" in side:  # exported by mgfm.pose.onnx_export: what it was made from
        backend.meta["model_checkpoint_sha256"] = side["source"]["checkpoint_sha256"]
        backend.meta["flip_test"] = bool(side.get("flip_test", False))
    if p.detector.model:
        backend.detector, det_meta = load_detector(p, threads)
        backend.meta.update(det_meta)
    return backend
