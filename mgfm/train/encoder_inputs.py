"""One way for every consumer of ``load_encoder`` (features, fine-tuning, probe checks) to open a packed dataset
and feed its clips to an encoder, whatever the card's modality: skeleton clips are resampled and converted to
the card's stream (``features.prepare_clips``), RGB clips are scaled and normalised (``rgb_features.prepare_rgb``)."""

from __future__ import annotations

import os

import torch


def open_clips(path: str | os.PathLike, card: dict, larger: bool = False):
    """The packed dataset at ``path`` as the card's encoder reads it; ``ds[rows]`` -> {"x", "valid_len", ...}.

    ``larger``: RGB clips may hold more frames / pixels than the encoder takes (a reader that picks views)."""
    if card.get("modality") == "rgb":
        from mgfm.train.rgb.clips import PackedRGBClips

        return PackedRGBClips(path, int(card["num_frames"]), int(card["image_size"]), larger=larger)
    from mgfm.train.skeleton_clips import PackedClips

    return PackedClips(path, num_joints=int(card["num_joints"]), num_channels=card.get("num_channels"))


def prepare_input(x: torch.Tensor, valid_len: torch.Tensor, card: dict) -> torch.Tensor:
    """A batch of packed clips -> the encoder's input, exactly as at feature extraction."""
    if card.get("modality") == "rgb":
        from mgfm.train.rgb.features import prepare_rgb

        return prepare_rgb(x)
    from mgfm.train.features import prepare_clips

    return prepare_clips(x, valid_len, card)
