"""Config checks run before any work (at Snakemake parse time and in the CLI): errors name the config key."""

from __future__ import annotations

from collections.abc import Iterable

from mgfm.config import resolve
from mgfm.core.layout import STREAMS

#: modality -> whether this repository has its branch (models, datasets, features)
MODALITIES = {"skeleton": True, "rgb": True}


def check_modality(modality: str, key: str = "eval.modalities") -> None:
    if modality not in MODALITIES:
        raise ValueError(f"config key {key}: modality {modality!r} does not exist (known: {sorted(MODALITIES)})")
    if not MODALITIES[modality]:
        raise ValueError(f"config key {key}: modality {modality!r} is not built (no {modality.upper()} branch yet); "
                         "remove it from the list")


def check_streams(streams: Iterable[str], pretrained: Iterable[str], key: str = "eval.streams") -> list[str]:
    """Each requested stream must be a known stream that config key pretrain.streams pretrains."""
    streams, pretrained = list(streams), list(pretrained)
    if not streams:
        raise ValueError(f"config key {key}: at least one stream is needed")
    for s in streams:
        if s not in STREAMS:
            raise ValueError(f"config key {key}: unknown stream {s!r} (streams are {list(STREAMS)})")
        if s not in pretrained:
            raise ValueError(f"config key {key}: stream {s!r} was not pretrained (config key pretrain.streams "
                             f"= {pretrained})")
    if len(set(streams)) != len(streams):
        raise ValueError(f"config key {key}: streams repeat: {streams}")
    return streams


def check_eval_config(eval_cfg: dict, pretrained_streams: Iterable[str]) -> None:
    """Every check of a resolved eval section that does not need a file. Given the slice of it that one step
    reads (mgfm.config.steps), only the keys present are checked."""
    eval_cfg = resolve("eval", eval_cfg, keys=list(eval_cfg))
    if "modalities" in eval_cfg:
        for m in eval_cfg["modalities"]:
            check_modality(m)
    pretrained = list(pretrained_streams)
    if "streams" in eval_cfg:
        check_streams(eval_cfg["streams"], pretrained)
    emotion = eval_cfg.get("emotion")
    if emotion is not None and "streams" in eval_cfg:
        for s in emotion["skeleton_streams"]:
            if s not in eval_cfg["streams"]:
                raise ValueError(f"config key eval.emotion.skeleton_streams: stream {s!r} is not in eval.streams "
                                 f"= {eval_cfg['streams']}")
    ensemble = eval_cfg.get("ensemble")
    if ensemble is None:
        return
    if "streams" in eval_cfg:
        rgb = "rgb" in eval_cfg.get("modalities", [])
        for s in ensemble["weights"]:
            if s not in eval_cfg["streams"] and not (rgb and s == "rgb"):
                raise ValueError(f"config key eval.ensemble.weights: stream {s!r} is not in eval.streams"
                                 + (" (or 'rgb', with rgb in eval.modalities)" if rgb else ""))
    if ensemble["select"] == "validation" and "validation" in eval_cfg and eval_cfg["validation"]["fraction"] <= 0:
        raise ValueError("config key eval.ensemble.select is 'validation' but eval.validation.fraction is 0: "
                         "hold out validation subjects or give eval.ensemble.weights")
