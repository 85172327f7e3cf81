"""A timm ResNet bottleneck whose stride-2 down-sampling is done by wavelet attention.

As in the Wavelet-Attention reference network: the block's input goes through wavelet attention
first, the convolutions then run at stride 1 on the attended map, and the projection shortcut runs
at stride 1 on the LL band.
"""

import torch
from timm.models.resnet import Bottleneck
from torch import nn

from pixelproof.models.components.wavelet_attention import WaveletAttention


class WaveletBottleneck(nn.Module):
    """Wrap a stride-2 ``timm.models.resnet.Bottleneck``, reusing its layers."""

    def __init__(self, block: Bottleneck, wave: str = "haar") -> None:
        super().__init__()
        if not isinstance(block, Bottleneck) or block.conv2.stride != (2, 2):
            raise ValueError("WaveletBottleneck wraps a timm Bottleneck whose conv2 has stride 2")
        if block.downsample is None or not isinstance(block.downsample[0], nn.Conv2d):
            raise ValueError("WaveletBottleneck needs a conv projection shortcut (ResNet 'B' type)")
        block.conv2.stride = (1, 1)
        block.downsample[0].stride = (1, 1)
        self.attention = WaveletAttention(wave)
        self.block = block

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        x, ll = self.attention(x)
        x = b.act1(b.bn1(b.conv1(x)))
        x = b.aa(b.act2(b.drop_block(b.bn2(b.conv2(x)))))
        x = b.bn3(b.conv3(x))
        if b.se is not None:
            x = b.se(x)
        if b.drop_path is not None:
            x = b.drop_path(x)
        return b.act3(x + b.downsample(ll))
