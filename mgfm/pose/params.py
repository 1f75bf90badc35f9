"""The ``pose`` config section as typed parameters (defaults identical to mgfm/config/schemas/pose.schema.yaml).

The package must work without Snakemake, so direct callers get the same defaults and the same unknown-key
errors the schema gives the workflow; a test keeps both in step.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

#: The shipped demo whole-body model (trained by ``python -m mgfm.pose.demo_model.train``).
DEMO_MODEL = Path(__file__).parent / "models" / "demo_wholebody.onnx"


@dataclass
class DetectorParams:
    model: str = ""
    input_size: list[int] = field(default_factory=lambda: [640, 640])
    mean: list[float] = field(default_factory=lambda: [103.53, 116.28, 123.675])
    std: list[float] = field(default_factory=lambda: [57.375, 57.12, 58.395])
    color: str = "bgr"
    score_threshold: float = 0.5
    interval: int = 10
    track_keypoint_threshold: float = 0.3


@dataclass
class MmposeParams:
    config: str = ""
    checkpoint: str = ""
    checkpoint_url: str = ""
    checkpoint_sha256: str = ""
    fetch: bool = False
    det_config: str = ""
    det_checkpoint: str = ""
    det_checkpoint_url: str = ""
    det_checkpoint_sha256: str = ""
    det_category: int = 0


@dataclass
class PoseParams:
    backend: str = "onnx"
    model: str = ""
    model_sha256: str = ""
    input_size: list[int] | None = None
    split_ratio: float | None = None
    mean: list[float] | None = None
    std: list[float] | None = None
    color: str | None = None
    bbox_padding: float = 1.25
    batch_size: int = 16
    device: str = "auto"
    detector: DetectorParams = field(default_factory=DetectorParams)
    mmpose: MmposeParams = field(default_factory=MmposeParams)

    @classmethod
    def from_dict(cls, params: dict | None) -> PoseParams:
        """Build from the config section; an unknown or ill-typed key raises ValueError naming ``pose.<key>``."""
        params = dict(params or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) pose.{', pose.'.join(unknown)}")
        sub = {}
        for name, kind in (("detector", DetectorParams), ("mmpose", MmposeParams)):
            value = params.pop(name, None) or {}
            extra = sorted(set(value) - {f.name for f in fields(kind)})
            if extra:
                raise ValueError(f"unknown config key(s) pose.{name}.{', pose.{name}.'.join(extra)}")
            sub[name] = kind(**value)
        out = cls(**params, **sub)
        out.check()
        return out

    def check(self) -> None:
        if self.backend not in ("onnx", "mmpose"):
            raise ValueError(f"config key pose.backend must be 'onnx' or 'mmpose', got {self.backend!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"config key pose.device must be auto, cpu or cuda, got {self.device!r}")
        if self.batch_size < 1:
            raise ValueError(f"config key pose.batch_size must be >= 1, got {self.batch_size}")
        if self.color not in (None, "rgb", "bgr") or self.detector.color not in ("rgb", "bgr"):
            raise ValueError("config keys pose.color / pose.detector.color must be 'rgb' or 'bgr'")
        if self.detector.interval < 1:
            raise ValueError(f"config key pose.detector.interval must be >= 1, got {self.detector.interval}")
        if self.input_size is not None and len(self.input_size) != 2:
            raise ValueError(f"config key pose.input_size must be [width, height], got {self.input_size}")

    def model_path(self) -> Path:
        return Path(self.model) if self.model else DEMO_MODEL
