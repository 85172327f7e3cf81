"""A plain small CNN: the baseline every detector of the family should beat per CPU minute.

Stages of two 3x3 conv-BN-ReLU layers, each stage but the last followed by a 2x2 max-pool, then
global average pooling and one logit. No wavelets, no frequency branch: what a careful engineer
would try first on 32x32 images.
"""

from collections.abc import Sequence

import torch
from torch import nn


def _conv(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class SimpleCNN(nn.Module):
    """``[B,3,H,W]`` in [0,1] -> ``[B]`` logits (fake = 1). Normalises to [-1, 1] internally."""

    def __init__(self, widths: Sequence[int] = (32, 64, 128), dropout: float = 0.0) -> None:
        super().__init__()
        layers, channels = [], 3
        for i, width in enumerate(widths):
            layers += [_conv(channels, width), _conv(width, width)]
            if i < len(widths) - 1:
                layers.append(nn.MaxPool2d(2))
            channels = width
        self.features = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.features(x * 2 - 1).mean(dim=(-2, -1))
        return self.head(features).squeeze(1)
