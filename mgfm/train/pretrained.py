"""The common end of both pretrainings (MG-FM-Skele and MG-FM-RGB), on the main process: the card fields they
share (data, run facts, sizes) and the encoder written with its card."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from mgfm.core.packed import read_info
from mgfm.models.artifact import save_encoder
from mgfm.train.loop import FitResult

log = logging.getLogger("mgfm.train")


def data_card(dataset: str | os.PathLike, data_desc: dict) -> dict:
    """What the encoder was trained on: the data's description plus the packed dataset's own info (if readable)."""
    try:
        info = read_info(dataset)
    except (OSError, ValueError):
        info = {}
    return {**data_desc, "info": info}


def run_card(result: FitResult, started: float, whole_model: str) -> dict:
    """Sizes and facts of the run: encoder and whole-model parameters (``whole_model`` names the latter), world
    size, device, the final loss and this run's training seconds."""
    return {
        "parameters": {"encoder": sum(p.numel() for p in result.model.encoder.parameters()),
                       whole_model: sum(p.numel() for p in result.model.parameters())},
        "world_size": result.dist.world, "device": result.dist.device.type,
        "final_loss": result.history[-1]["loss"] if result.history else None,
        "train_seconds_last_run": round(time.perf_counter() - started, 1),
    }


def write_pretrained(out: Path, result: FitResult, card: dict, what: str) -> None:
    """The encoder (safetensors) and its card, atomically, into ``out``."""
    save_encoder(out, result.model.encoder, card)
    log.info("%s: wrote %s", what, out / "encoder.safetensors")
