"""What fine-tuning the RGB encoder adds to the shared fine-tuning protocol: SMILE's / VideoMAE's recipe
(``eval.finetune.rgb``).

- The model: the card's VideoMAE encoder pooled as SMILE's fine-tuning model pools (fc_norm: a LayerNorm of the
  mean of the last layer's tokens, which the head reads; the pretrained encoder's final per-token norm is left
  out and fc_norm starts fresh, as SMILE's fine-tuning script does with a pretraining checkpoint), with
  drop-path on the residual branches. It starts from the MG-FM-RGB encoder, from a SMILE / VideoMAE checkpoint
  (``init``), or from random weights (the from-scratch baseline).
- Training input: a random temporal window of the stored clip, then RandAugment, random resized crop + flip,
  normalisation, random erasing (``mgfm.train.rgb.augment``); mixup / CutMix follow in the protocol's step.
- Scoring: the softmax probabilities averaged over the temporal x spatial test views
  (``mgfm.train.rgb.finetune_views``), each clip's distinct ones.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

INIT_KEY = "eval.finetune.rgb.init"


def finetuning_encoder(protocol: str, model_dir: str | Path, card: dict, recipe: dict,
                       load_weights: bool = True) -> tuple[nn.Module, str | None, dict | None]:
    """(encoder, sha256 of the weights it starts from, the init checkpoint's description) for ``protocol``.

    The encoder's ``card`` is the pretrained card with the fine-tuning architecture (``pooling``, ``drop_path``),
    so ``load_encoder`` rebuilds a saved fine-tuned encoder exactly."""
    from mgfm.models.artifact import WEIGHTS_NAME, encoder_from_arch
    from mgfm.models.rgb.convert import load_into, sha256_file, start_finetuning_from

    arch = {**card["arch"], "pooling": "fc_norm", "drop_path": float(recipe["drop_path"])}
    encoder = encoder_from_arch("videomae", arch)
    weights, init = None, None
    if protocol != "scratch" and recipe["init"]["checkpoint"]:
        init = {"checkpoint": recipe["init"]["checkpoint"], "sha256": recipe["init"]["sha256"]}
        weights = init["sha256"]
        if load_weights:
            init = start_finetuning_from(encoder, recipe["init"], INIT_KEY)
    elif protocol != "scratch":
        path = Path(model_dir) / WEIGHTS_NAME
        weights = sha256_file(path)
        if load_weights:
            from safetensors.torch import load_file

            load_into(encoder, load_file(str(path)), f"model {model_dir}", path, optional=("fc_norm.",),
                      ignored=("videomae.layernorm.",))
    encoder.card = {**card, "arch": encoder.arch}
    return encoder, weights, init


def train_input(x: torch.Tensor, card: dict, augment, generator: torch.Generator,
                starts: torch.Tensor | None = None) -> torch.Tensor:
    """Stored uint8 clips (B, T_s, S_s, S_s, 3) -> augmented, normalised model input (B, T, 3, S, S); ``starts``
    (B,): how many starts of T frames each clip stores (``PackedRGBClips(..., larger=True)``'s batches)."""
    from mgfm.train.rgb.augment import augment_clips
    from mgfm.train.rgb.clips import to_unit
    from mgfm.train.rgb.finetune_views import random_window

    x = random_window(x, int(card["num_frames"]), generator, starts)
    return augment_clips(to_unit(x), int(card["image_size"]), augment, generator)


def view_list(stored_shape: tuple[int, ...], card: dict, recipe: dict):
    """The test views (``rgb_finetune_views.TestViews``) of clips stored as ``stored_shape``."""
    from mgfm.train.rgb.finetune_views import evaluation_views

    views = recipe["test_views"]
    return evaluation_views(stored_shape, int(card["num_frames"]), int(card["image_size"]), int(views["temporal"]),
                            int(views["spatial"]))


@torch.inference_mode()
def view_scores(model: nn.Module, x: torch.Tensor, views, starts: torch.Tensor | None = None) -> torch.Tensor:
    """Scores (B, K) of stored clips ``x`` (``starts`` per clip as in ``train_input``): the logits where every
    clip has a single view, else the log of the softmax probabilities averaged over each clip's distinct views
    (so a softmax of the scores gives SMILE's averaged probabilities)."""
    from mgfm.train.rgb.features import prepare_rgb
    from mgfm.train.rgb.finetune_views import crop_view

    t, s = views.num_frames, views.size
    if starts is None:
        starts = torch.full((len(x),), x.shape[1] - t + 1, dtype=torch.int64)
    t0, first = views.starts(starts.cpu())
    logits, weight = [], []
    for k in range(views.temporal):
        if not bool(first[:, k].any()):                  # a start every clip has seen already
            continue
        for place in views.places:
            logits.append(model(prepare_rgb(crop_view(x, t0[:, k], place, t, s).contiguous())).float())
            weight.append(first[:, k])
    if len(logits) == 1:
        return logits[0]
    w = torch.stack(weight).to(logits[0].device, logits[0].dtype)[:, :, None]
    probs = (torch.stack([torch.softmax(z, dim=1) for z in logits]) * w).sum(0) / w.sum(0)
    return torch.log(probs.clamp(min=torch.finfo(probs.dtype).tiny))


def describe_views(clips, card: dict, recipe: dict) -> dict:
    """What the test views of the packed ``clips`` (``PackedRGBClips``) were: configured, distinct per clip,
    the spatial offsets and, where every clip has the same ones, the (t, y, x) offsets (for metrics.json)."""
    views = view_list(clips.data.shape, card, recipe)
    t0, first = views.starts(torch.from_numpy(clips.starts))
    distinct = first.sum(1) * len(views.places)
    out = {**recipe["test_views"], "distinct": int(distinct.max()) if len(distinct) else 0,
           "distinct_min": int(distinct.min()) if len(distinct) else 0,
           "offsets_y_x": [list(p) for p in views.places],
           "stored": list(np.asarray(clips.data.shape[1:4]).tolist())}
    if len(t0) and bool((t0 == t0[:1]).all()):
        out["offsets_t_y_x"] = [[int(t0[0, k]), y, x] for k in range(views.temporal) if first[0, k]
                                for y, x in views.places]
    return out
