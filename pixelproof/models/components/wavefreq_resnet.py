"""The detector of the Team 57 report ("Image Classification and Artifact Detection"): a ResNet
spatial branch with wavelet-attention down-sampling (Zhao et al. 2022), plus a FreqNet frequency
branch (Tan et al. 2024); their pooled features are concatenated into one real/fake logit.

Built for 32x32 inputs: the ImageNet stem's strided 7x7 conv and max-pool are replaced by a 3x3
stride-1 conv followed by wavelet-attention poolings (``stem_pools``; 2 keeps ImageNet ResNet's 4x
stem reduction, an 8x8 grid at layer 1; 1 gives 16x16 at ~1.6x the training cost). Every stride-2
block down-samples by wavelet attention too, and the FreqNet branch sees the full 32x32. The
spatial branch is a timm ResNet by name (``resnet50``: the report's network) or a small one from
a spec (basic blocks, fewer and narrower stages). Trained from scratch: no pretrained weights.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import timm
import torch
from timm.models.resnet import BasicBlock, Bottleneck, ResNet
from torch import nn

from pixelproof.models.components.freqnet import FreqNetBranch
from pixelproof.models.components.wavelet_attention import WaveletPool
from pixelproof.models.components.wavelet_block import WaveletBlock

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


BLOCKS = {"basic": BasicBlock, "bottleneck": Bottleneck}


def _resnet(backbone: str | Mapping[str, Any]) -> ResNet:
    """A timm ResNet by name (``resnet50``), or built from a spec for small members of the
    family: ``{block: basic | bottleneck, layers: [4 ints], channels: [4 ints], ...}`` (any
    other ``timm.models.resnet.ResNet`` argument, e.g. ``stem_width``)."""
    if isinstance(backbone, str):
        return timm.create_model(backbone, pretrained=False, num_classes=0)
    spec = dict(backbone)
    block = spec.pop("block", "basic")
    if block not in BLOCKS:
        raise ValueError(f"model.net.backbone.block={block!r}: choose {' or '.join(BLOCKS)}")
    return ResNet(BLOCKS[block], num_classes=0, **spec)


def wavelet_resnet(
    backbone: str | Mapping[str, Any] = "resnet50", wave: str = "haar", stem_pools: int = 2
) -> nn.Module:
    """A timm ResNet (no classifier) re-wired for small inputs with wavelet attention.

    The stem is a 3x3 stride-1 conv followed by ``stem_pools`` wavelet poolings (each halves H and
    W): 2 reproduces ImageNet ResNet's 4x stem reduction, 1 keeps twice the resolution at 4x the
    cost. The first block of every later stage down-samples by wavelet attention.
    """
    net = _resnet(backbone)
    stem_width = net.conv1.out_channels
    net.conv1 = nn.Conv2d(3, stem_width, 3, stride=1, padding=1, bias=False)
    net.maxpool = nn.Sequential(*(WaveletPool(wave) for _ in range(stem_pools)))
    for stage in (net.layer2, net.layer3, net.layer4):
        stage[0] = WaveletBlock(stage[0], wave)
    return net


class WaveFreqResNet(nn.Module):
    """``[B,3,H,W]`` images in [0,1] -> ``[B]`` logits (fake = 1). Normalises internally.

    ``branches`` picks the spatial (wavelet ResNet) branch, the frequency (FreqNet) branch or
    both (the reports' network): the branch ablation of the generalisation study.
    """

    def __init__(
        self,
        backbone: str | Mapping[str, Any] = "resnet50",
        wave: str = "haar",
        stem_pools: int = 2,
        freq_width: int = 64,
        freq_channels: int = 256,
        high_pass_scale: int = 4,
        dropout: float = 0.0,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
        branches: Sequence[str] = ("spatial", "frequency"),
    ) -> None:
        super().__init__()
        unknown = set(branches) - {"spatial", "frequency"}
        if unknown or not branches:
            raise ValueError(
                f"model.net.branches={list(branches)}: choose spatial, frequency or both"
            )
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.spatial = wavelet_resnet(backbone, wave, stem_pools) if "spatial" in branches else None
        self.frequency = (
            FreqNetBranch(freq_width, freq_channels, high_pass_scale)
            if "frequency" in branches
            else None
        )
        width = (self.spatial.num_features if self.spatial else 0) + (
            self.frequency.out_channels if self.frequency else 0
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(width, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - self.mean) / self.std
        features = [branch(x) for branch in (self.spatial, self.frequency) if branch is not None]
        return self.head(torch.cat(features, dim=1)).squeeze(1)
