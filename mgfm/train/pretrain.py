"""MG-FM-Skele pretraining of one input stream: packed clips -> four views -> DSTE -> decorrelation loss.

The stream (joint, bone or motion, ``mgfm.core.layout.to_stream``) is applied to every augmented view
before the encoder and recorded in the model card, so each stream's encoder really sees its own input.
Outputs in the model folder: ``encoder.safetensors`` + ``card.json`` (``mgfm.models.load_encoder``),
``checkpoints/last.pt``, ``train_log.csv`` (per epoch) and ``train_steps.csv`` (every few steps).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import torch

from mgfm.common.revision import git_revision
from mgfm.common.seeding import derive_seed
from mgfm.config.steps import resolve_step
from mgfm.models.dste import DSTE, DSTEConfig
from mgfm.models.losses.decorrelation import DecorrelationWeights, multi_grained_decorrelation_loss
from mgfm.models.projectors import PretrainModel, ProjectorConfig
from mgfm.core.layout import STREAMS, to_stream
from mgfm.train.augment import AugmentConfig, apply, draw, select_rows
from mgfm.train.checkpoint import code_version, dataset_digest, fingerprint_of
from mgfm.train.skeleton_clips import PackedClips
from mgfm.train.distributed import gather_with_grad
from mgfm.train.loop import StepContext, TrainConfig, fit
from mgfm.train.pretrained import data_card, run_card, write_pretrained

log = logging.getLogger(__name__)
# the packages whose code shapes a pretrained encoder (the fingerprint's code version)
CODE_PACKAGES = ("common", "config", "core", "models", "train")


def split_model_params(model_params: dict) -> tuple[DSTEConfig, ProjectorConfig]:
    """Encoder and projector configs from the resolved ``pretrain.model`` block (unknown keys are an error)."""
    return DSTEConfig.from_section(model_params), ProjectorConfig.from_section(model_params)


def make_step(stream: str, aug: AugmentConfig, weights: DecorrelationWeights, num_frames: int):
    """The pretraining step: global-batch augmentation draws, this process's rows, stream, model, loss."""

    def step(model: torch.nn.Module, batch: dict, ctx: StepContext):
        x, valid = batch["x"], batch["valid_len"]
        draws = draw(aug, ctx.global_batch, num_frames, x.shape[3], ctx.generator)
        draws = select_rows(draws, slice(ctx.dist.rank, None, ctx.dist.world))
        with torch.autocast(device_type=x.device.type, enabled=False):  # geometry in float32 even under bf16
            views = to_stream(apply(aug, x, valid, draws, num_frames), stream)
        return multi_grained_decorrelation_loss(model(views), weights)

    return step


def pretrain_skeleton(dataset: str | os.PathLike, stream: str, out: str | os.PathLike, params: dict, seed: int,
                      device: str | None = None, on_epoch_end=None) -> Path:
    """Pretrain the ``stream`` encoder on a packed skeleton dataset; returns the model folder.

    ``params`` is the ``pretrain`` config section; keys it leaves out take the schema's defaults.
    """
    if stream not in STREAMS:
        raise ValueError(f"unknown stream {stream!r}; expected one of {STREAMS}")
    out = Path(out)
    params = resolve_step("pretrain_skeleton", params)
    enc_cfg, proj = split_model_params(params["model"])
    aug = AugmentConfig.from_section(params["augment"])
    weights = DecorrelationWeights.from_section(params["loss"])
    train_cfg = TrainConfig.from_section(params["train"], seed=derive_seed(seed, "pretrain", "skeleton", stream),
                                      key="pretrain.train")
    data = PackedClips(dataset, num_joints=enc_cfg.num_joints, num_channels=enc_cfg.num_channels)
    if enc_cfg.num_persons != 1:
        raise ValueError("pretrain.model.num_persons must be 1 for packed single-person skeleton datasets")

    torch.manual_seed(derive_seed(train_cfg.seed, "init"))
    encoder = DSTE(enc_cfg)
    model = PretrainModel(encoder, proj)
    model.gather_fn = lambda t: gather_with_grad(t, dim=1)
    data_desc = {"dataset": str(dataset), "name": Path(dataset).name, "num_clips": len(data),
                 "clip_shape": list(data.data.shape[1:]), "content_sha256": dataset_digest(dataset)}
    # bookkeeping keys do not change the result, so changing them must not block a resume
    shaping = {k: v for k, v in train_cfg.to_dict().items() if k not in ("checkpoint_every", "log_every_steps",
                                                                       "num_workers")}
    # the data by content, never by path: a dataset rebuilt in place with other values must not be resumed
    setup = {"model": {**enc_cfg.to_dict(), **proj.to_dict()}, "augment": aug.to_dict(), "loss": weights.to_dict(),
             "train": shaping, "stream": stream, "seed": seed,
             "data": {k: data_desc[k] for k in ("num_clips", "clip_shape", "content_sha256")},
             "code": code_version(*CODE_PACKAGES)}
    t0 = time.perf_counter()
    result = fit(model, data, make_step(stream, aug, weights, enc_cfg.num_frames), train_cfg, out,
                 fingerprint_of(setup), desc=f"pretrain skeleton/{stream}", device=device, on_epoch_end=on_epoch_end)
    if result.dist.is_main:
        card = {
            "architecture": "dste", "modality": "skeleton", "arch": enc_cfg.to_dict(), "stream": stream,
            "feature_dim": enc_cfg.feature_dim, "num_frames": enc_cfg.num_frames, "num_joints": enc_cfg.num_joints,
            "num_channels": enc_cfg.num_channels, "input": "clip resampled to num_frames, then the stream transform",
            "data": data_card(dataset, data_desc), "epochs": train_cfg.epochs, "seed": seed,
            "train_seed": train_cfg.seed, "train": train_cfg.to_dict(), "augment": aug.to_dict(),
            "loss": weights.to_dict(), "projectors": proj.to_dict(), "git_revision": git_revision(),
            **run_card(result, t0, "with_projectors"),
        }
        write_pretrained(out, result, card, f"pretrain skeleton/{stream}")
    return out
