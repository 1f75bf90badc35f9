"""The ``pose`` config section as typed parameters.

The fields carry no defaults: ``PoseParams.from_section`` takes the section resolved by ``mgfm.config`` (the schema
mgfm/config/schemas/pose.schema.yaml validates it and fills every default); a caller holding a partial section
types it with ``from_partial(PoseParams, "pose", values)``, so it gets exactly the values and the errors the
workflow gets.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from mgfm.config.sections import section_values

#: The shipped demo whole-body model (trained by ``python -m mgfm.demo.pose_model.train``).
DEMO_MODEL = Path(__file__).parent / "models" / "demo_wholebody.onnx"


@dataclass
class DetectorParams:
    model: str
    input_size: list[int]
    mean: list[float]
    std: list[float]
    color: str
    score_threshold: float
    interval: int
    track_keypoint_threshold: float


@dataclass
class MmposeParams:
    config: str
    checkpoint: str
    checkpoint_url: str
    checkpoint_sha256: str
    fetch: bool
    det_config: str
    det_checkpoint: str
    det_checkpoint_url: str
    det_checkpoint_sha256: str
    det_category: int


@dataclass
class PoseParams:
    preset: str
    backend: str
    model: str
    model_sha256: str
    input_size: list[int] | None
    split_ratio: float | None
    mean: list[float] | None
    std: list[float] | None
    color: str | None
    flip_test: bool | None
    bbox_padding: float
    batch_size: int
    device: str
    detector: DetectorParams
    mmpose: MmposeParams

    @classmethod
    def from_section(cls, section: dict) -> PoseParams:
        """From the resolved ``pose`` section; a missing or unknown key raises ConfigError naming ``pose.<key>``."""
        values = section_values(cls, section, "pose")
        return cls(**{**values, "detector": DetectorParams(**section_values(DetectorParams, values["detector"],
                                                                            "pose.detector")),
                      "mmpose": MmposeParams(**section_values(MmposeParams, values["mmpose"], "pose.mmpose"))})

    def model_path(self) -> Path:
        return Path(self.model) if self.model else DEMO_MODEL
