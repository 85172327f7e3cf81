"""A detector whose every score is known: p(fake) = the image's mean pixel value.

A grey PNG of value v therefore scores exactly v / 255, so evaluation and prediction can be
checked against tables computed by hand. ``save_checkpoint`` writes it as ``pixelproof.train``
would (weights + ``model_config``), for the real loading path.
"""

from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import nn

from pixelproof.models.registry import register_part

CONFIG = {
    "_target_": "pixelproof.models.detector_module.DetectorModule",
    "net": {"_target_": "helpers.known_detector.MeanIntensityNet"},
    "optimizer": None,
}


@register_part  # checkpoints may build it (pixelproof.models.registry)
class MeanIntensityNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(()))  # something for an optimizer to hold

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        p = x.mean(dim=(1, 2, 3)).clamp(1e-6, 1 - 1e-6)
        return self.scale * torch.logit(p)


def build(threshold: float = 0.5):
    import hydra

    model = hydra.utils.instantiate(CONFIG)
    model.decision_threshold.fill_(threshold)
    return model


def save_checkpoint(path: Path, threshold: float = 0.5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": build(threshold).state_dict(), "model_config": CONFIG}, path)
    return path


def write_grey(path: Path, value: int, size: int = 32) -> Path:
    """A uniform grey image: the known detector scores it value / 255."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return path
