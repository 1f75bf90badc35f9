"""Which encoders each protocol evaluates and how they are named; where they live is ``mgfm.core.results``."""

from __future__ import annotations

from pathlib import Path

from mgfm.core.results import RGB_STREAM, feature_file, metrics_file

FINETUNE_PROTOCOLS = ("semi_supervised", "finetune", "scratch")


def modality_streams(modality: str, streams) -> list[str]:
    """The streams evaluated for ``modality``: config key eval.streams for skeleton, the one RGB encoder for rgb."""
    return list(streams) if modality == "skeleton" else [RGB_STREAM]


def emotion_members(modalities, streams, skeleton_streams) -> list[tuple[str, str]]:
    """(modality, stream) of each encoder whose clip features the emotion model reads: MG-FM-Skele as the
    streams of config key eval.emotion.skeleton_streams (those of eval.streams, in that order), MG-FM-RGB's one
    encoder when rgb is evaluated."""
    members = []
    for m in modalities:
        chosen = [s for s in streams if s in skeleton_streams] if m == "skeleton" else [RGB_STREAM]
        members += [(m, s) for s in chosen]
    return members


def feature_table(features_dir: str | Path, modality: str, stream: str, name: str) -> Path:
    """A feature table inside a features folder (``mgfm.core.results.feature_file`` as a Path)."""
    return Path(feature_file(str(features_dir), modality, stream, name))


def member_name(modality: str, stream: str) -> str:
    """How a (modality, stream) member is named in tables and ensemble weights: the stream for skeleton, "rgb"
    for the RGB encoder."""
    if modality == "skeleton" or (modality == "rgb" and stream == RGB_STREAM):
        return stream
    return f"{modality}-{stream}"


def protocol_metrics(eval_dir: str | Path, protocol: str, modality: str | None = None,
                     stream: str | None = None) -> Path:
    return Path(metrics_file(str(eval_dir), protocol, modality, stream))
