"""The ``model.optimizer`` settings a detector's training owns. The optimizer itself is a Hydra
partial (``torch.optim.AdamW`` ...) built by the detector module; these are checked before any
work, so a bad learning rate is one line, not an error from inside torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pixelproof.utils.settings import (
    Rule,
    Settings,
    non_negative_number,
    optional,
    positive_number,
    setting,
)


@dataclass(frozen=True)
class OptimizerSettings(Settings):
    """lr: the learning rate (the peak, under a one-cycle schedule). weight_decay: decoupled
    weight decay (``None``: the optimizer's own default)."""

    KEY: ClassVar[str] = "model.optimizer"

    lr: float = setting(Rule(positive_number, "1e-3"), 1e-3)
    weight_decay: float | None = setting(Rule(optional(non_negative_number), "0.05"), None)
