"""Encoders, projectors and losses of the MG foundation models; ``load_encoder`` rebuilds a trained encoder."""

from mgfm.models.artifact import load_encoder, read_card, save_encoder
from mgfm.models.dste import DSTE, DSTEConfig
from mgfm.models.projectors import PretrainModel

__all__ = ["DSTE", "DSTEConfig", "PretrainModel", "load_encoder", "read_card", "save_encoder"]
