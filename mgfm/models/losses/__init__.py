"""Self-supervised losses, one per module (each docstring cites its source)."""

from mgfm.models.losses.decorrelation import DecorrelationWeights, multi_grained_decorrelation_loss

__all__ = ["DecorrelationWeights", "multi_grained_decorrelation_loss"]
