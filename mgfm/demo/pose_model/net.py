"""A small RTMPose-form whole-body network: CNN backbone -> 1x1 conv to one map per keypoint -> flatten ->
shared MLP -> SimCC x and y vectors (``input_size * split_ratio`` bins each).

RTMPose itself is CSPNeXt + 7x7 conv + flatten + GAU + linear SimCC heads; we keep the head's form (per-keypoint
flattened feature map decoded by linear layers into 1-D bin scores) and replace the heavy parts with a few
depthwise-separable blocks so 36 demo videos run through it in the demo's 2.5-minute budget on 2 CPU cores.
The outputs are sigmoid-activated: a bin's value is the confidence that the keypoint sits there, trained to
a Gaussian of peak 1 where visible and to 0 where not, so the SimCC score (min of the per-axis maxima) drops
to ~0 on hidden keypoints and on frames without the person (cut-ins), which the clip sampler relies on.
"""

from __future__ import annotations

import torch
from torch import nn

from mgfm.core.layout import NUM_KEYPOINTS


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class _SepBlock(nn.Module):
    """Depthwise 3x3 (optionally dilated) + pointwise 1x1, residual."""

    def __init__(self, ch: int, dilation: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(ch, ch, 3, 1, dilation, dilation=dilation, groups=ch, bias=False), nn.BatchNorm2d(ch),
            nn.Conv2d(ch, ch, 1, bias=False), nn.BatchNorm2d(ch))
        self.act = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.body(x))


class DemoSimCCNet(nn.Module):
    """(N, 3, h, w) normalised RGB crop -> simcc_x (N, K, w * r), simcc_y (N, K, h * r), values in [0, 1]."""

    def __init__(self, input_size: tuple[int, int] = (128, 96), split_ratio: float = 2.0,
                 num_keypoints: int = NUM_KEYPOINTS, width: int = 64, hidden: int = 128) -> None:
        super().__init__()
        w, h = input_size
        if w % 16 or h % 16:
            raise ValueError(f"input size {input_size} must be divisible by 16")
        self.input_size, self.split_ratio, self.num_keypoints = (w, h), split_ratio, num_keypoints
        self.backbone = nn.Sequential(
            _conv(3, 16, 2), _conv(16, 32, 2), _SepBlock(32),
            _conv(32, 48, 2), _SepBlock(48), _conv(48, width, 2),
            _SepBlock(width), _SepBlock(width, 2), _SepBlock(width, 4), _SepBlock(width, 2))
        self.to_keypoints = nn.Conv2d(width, num_keypoints, 1)
        tokens = (w // 16) * (h // 16)
        self.mlp = nn.Sequential(nn.Linear(tokens, hidden), nn.GELU())
        self.head_x = nn.Linear(hidden, int(w * split_ratio))
        self.head_y = nn.Linear(hidden, int(h * split_ratio))

    def logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.to_keypoints(self.backbone(x)).flatten(2)  # (N, K, tokens)
        f = self.mlp(f)
        return self.head_x(f), self.head_y(f)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lx, ly = self.logits(x)
        return torch.sigmoid(lx), torch.sigmoid(ly)
