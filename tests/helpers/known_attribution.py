"""Detectors whose evidence sits where we put it, for the attribution tests and the demo's tests.

- :class:`PatchNet` reads only the top-left 8x8 patch (through two conv layers): attributions
  must land there.
- :class:`BandNet` responds only to one frequency: the energy of the image along a fixed stripe
  pattern of 12 cycles per 32 pixels (0.375 cycles/pixel), so removing the band that holds it is
  the only thing that lowers its logit.
- :class:`BrightnessCNN` is a tiny conv detector with a known answer (bright images look fake),
  saved as ``pixelproof.train`` would (weights + ``model_config``) for the demo.

Import as ``from helpers import known_attribution``. Checkpoints name these classes by module
path ``helpers.known_attribution.<Class>``, so a subprocess loading them needs tests/ on its
``PYTHONPATH`` (``helpers.configs.subprocess_env``).
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from pixelproof.models.registry import register_part

PATCH = 8  # PatchNet reads rows and columns [0, PATCH)
STRIPES = 12  # BandNet's pattern: cos(2 pi * STRIPES * column / 32)


@register_part  # checkpoints may build it (pixelproof.models.registry)
class PatchNet(nn.Module):
    """Fake logit: the high-frequency energy of the top-left 8x8 patch, through a conv stage
    (a Laplacian, ReLU, a strided averaging conv, ReLU, global mean)."""

    def __init__(self) -> None:
        super().__init__()
        self.high_pass = nn.Conv2d(3, 3, 3, padding=1, bias=False, groups=3)
        laplacian = torch.tensor([[0.0, -1.0, 0.0], [-1.0, 4.0, -1.0], [0.0, -1.0, 0.0]])
        self.high_pass.weight.data.copy_(laplacian.expand(3, 1, 3, 3))
        self.stage = nn.Conv2d(3, 4, 3, stride=2, padding=1, bias=False)
        self.stage.weight.data.fill_(1.0 / 27)
        self.scale = nn.Parameter(torch.tensor(40.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = torch.zeros_like(x)
        mask[..., :PATCH, :PATCH] = 1
        features = torch.relu(self.stage(torch.relu(self.high_pass(x * mask))))
        return self.scale * features.mean(dim=(1, 2, 3)) - 1.0


def stripes(size: int = 32) -> torch.Tensor:
    """``[size, size]``: BandNet's pattern, unit norm."""
    columns = torch.arange(size, dtype=torch.float32)
    pattern = torch.cos(2 * math.pi * STRIPES * columns / size).expand(size, size)
    return pattern / pattern.norm()


class BandNet(nn.Module):
    """Fake logit: the energy of the grey image along :func:`stripes` (only the frequencies
    +-0.375 cycles/pixel horizontally reach it). No conv at all."""

    def __init__(self, size: int = 32) -> None:
        super().__init__()
        self.register_buffer("pattern", stripes(size))
        self.scale = nn.Parameter(torch.tensor(10.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = x.mean(1)
        return self.scale * (grey * self.pattern).sum(dim=(1, 2)) ** 2 - 1.0


@register_part  # checkpoints may build it (pixelproof.models.registry)
class BrightnessCNN(nn.Module):
    """A tiny conv detector with a known answer: the fake logit grows with the brightness of
    the image's (3x3-smoothed) pixels, ``8 * (mean - 0.5)`` away from the borders."""

    def __init__(self) -> None:
        super().__init__()
        self.smooth = nn.Conv2d(3, 4, 3, padding=1, padding_mode="replicate", bias=False)
        self.smooth.weight.data.fill_(1.0 / 27)
        self.stage = nn.Conv2d(4, 4, 3, stride=2, padding=1, padding_mode="replicate", bias=False)
        self.stage.weight.data.fill_(1.0 / 36)
        self.head = nn.Linear(4, 1)
        self.head.weight.data.fill_(2.0)
        self.head.bias.data.fill_(-4.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.stage(torch.relu(self.smooth(x)))).mean(dim=(-2, -1))
        return self.head(features).squeeze(1)


def config(net: str) -> dict:
    return {
        "_target_": "pixelproof.models.detector_module.DetectorModule",
        "net": {"_target_": f"helpers.known_attribution.{net}"},
        "optimizer": None,
    }


def build(net: str, threshold: float = 0.5):
    import hydra

    model = hydra.utils.instantiate(config(net)).eval()
    model.decision_threshold.fill_(threshold)
    return model


def save_checkpoint(path: Path, net: str = "BrightnessCNN", threshold: float = 0.5) -> Path:
    """A checkpoint as ``pixelproof.train`` writes one (no training: the weights are set)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(
        {"state_dict": build(net, threshold).state_dict(), "model_config": config(net)}, path
    )
    return path
