"""A timm ResNet block whose stride-2 down-sampling is done by wavelet attention.

As in the Wavelet-Attention reference network (Zhao et al. 2022): the block's input goes through
wavelet attention first, the convolutions then run at stride 1 on the attended map, and the
projection shortcut runs at stride 1 on the LL band. Bottleneck blocks (ResNet50, the Team 57
report's network) and basic blocks (the small members of the family) are both wrapped.
"""

import torch
from timm.models.resnet import BasicBlock, Bottleneck
from torch import nn

from pixelproof.models.components.wavelet_attention import WaveletAttention

# the convolution that carries a block's stride
_STRIDED_CONV = {Bottleneck: "conv2", BasicBlock: "conv1"}


def _bottleneck_residual(b: Bottleneck, x: torch.Tensor) -> torch.Tensor:
    x = b.act1(b.bn1(b.conv1(x)))
    x = b.aa(b.act2(b.drop_block(b.bn2(b.conv2(x)))))
    return b.bn3(b.conv3(x))


def _basic_residual(b: BasicBlock, x: torch.Tensor) -> torch.Tensor:
    x = b.aa(b.act1(b.drop_block(b.bn1(b.conv1(x)))))
    return b.bn2(b.conv2(x))


class WaveletBlock(nn.Module):
    """Wrap a stride-2 timm ``Bottleneck`` or ``BasicBlock``, reusing its layers."""

    def __init__(self, block: Bottleneck | BasicBlock, wave: str = "haar") -> None:
        super().__init__()
        strided = _STRIDED_CONV.get(type(block))
        if strided is None or getattr(block, strided).stride != (2, 2):
            raise ValueError("WaveletBlock wraps a timm Bottleneck or BasicBlock of stride 2")
        if block.downsample is None or not isinstance(block.downsample[0], nn.Conv2d):
            raise ValueError("WaveletBlock needs a conv projection shortcut (ResNet 'B' type)")
        getattr(block, strided).stride = (1, 1)
        block.downsample[0].stride = (1, 1)
        self.attention = WaveletAttention(wave)
        self.block = block
        self._residual = _bottleneck_residual if isinstance(block, Bottleneck) else _basic_residual

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = self.block
        x, ll = self.attention(x)
        x = self._residual(b, x)
        if b.se is not None:
            x = b.se(x)
        if b.drop_path is not None:
            x = b.drop_path(x)
        return (b.act3 if isinstance(b, Bottleneck) else b.act2)(x + b.downsample(ll))
