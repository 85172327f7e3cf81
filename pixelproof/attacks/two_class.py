"""Let torchattacks' 2-class attacks (cross-entropy over class indices) attack a 1-logit detector.

``[-z/2, z/2]`` has softmax ``[sigmoid(-z), sigmoid(z)]``, so cross-entropy with class ``y`` is
exactly the detector's BCE-with-logits with label ``y``: the attack ascends the training loss.
"""

import torch
from torch import nn


class TwoClassLogits(nn.Module):
    """``[B,3,H,W]`` in [0,1] -> ``[B, 2]`` logits (real, fake) from a ``[B]``-logit detector."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.detector(x).reshape(-1)
        return torch.stack([-z / 2, z / 2], dim=1)
