"""Consistency across two augmented views of each training image (AugMix's Jensen-Shannon term).

Hendrycks et al. 2020, "AugMix: A Simple Data Processing Method to Improve Robustness and
Uncertainty", add to the classification loss ``lambda * JS(p_clean, p_aug1, p_aug2)``: the model
is asked to say the same of an image whatever happened to it. Here the views are two independent
draws of the run's training augmentation (``data/augment``, e.g. the journey: JPEG, resizing,
blur, noise), so the detector is pulled towards a verdict that does not depend on the image's
journey. The batch holds both views (twice the images, twice the compute of a step); the loss is
the detector's own on both views plus ``weight * JS(p_view1 || p_view2)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from lightning import Callback

from pixelproof.callbacks.view_consistency_settings import ViewConsistencySettings


def bernoulli_js(first_logits: torch.Tensor, second_logits: torch.Tensor) -> torch.Tensor:
    """Per-image Jensen-Shannon divergence (natural log, at most ln 2) between the Bernoulli
    predictions ``sigmoid(first)`` and ``sigmoid(second)``, from log-sigmoids so that saturated
    logits stay finite."""
    total = torch.zeros_like(first_logits)
    for sign in (1, -1):  # the two outcomes: fake, then real
        log_p, log_q = F.logsigmoid(sign * first_logits), F.logsigmoid(sign * second_logits)
        log_m = torch.logaddexp(log_p, log_q) - math.log(2)
        total = total + 0.5 * (log_p.exp() * (log_p - log_m) + log_q.exp() * (log_q - log_m))
    return total


class ViewConsistency(Callback):
    """Train on two augmented views of every image, plus ``weight`` x their Jensen-Shannon
    divergence (see the module doc). ``python -m pixelproof.train callbacks=consistency``.

    While fitting, the datamodule (pixelproof's ``ImageDataModule``) returns each training batch
    as ``[view 1 of every image, view 2 of every image]`` with the labels repeated, and the
    detector asks this callback for its training loss (``DetectorModule.paired_objective``).
    """

    def __init__(self, weight: float = 1.0) -> None:
        super().__init__()
        self.weight = ViewConsistencySettings(weight=weight).weight

    def on_fit_start(self, trainer, pl_module) -> None:
        datamodule = trainer.datamodule
        if not hasattr(datamodule, "views"):
            raise ValueError(
                "callbacks.consistency needs pixelproof's ImageDataModule (data=embedded or "
                f"data=folder), which makes the two views; got {type(datamodule).__name__}"
            )
        pl_module.attach_paired_objective(self._loss, "callbacks.consistency")
        datamodule.views = 2

    def on_fit_end(self, trainer, pl_module) -> None:
        trainer.datamodule.views = 1
        pl_module.detach_paired_objective(self._loss)

    def _loss(self, pl_module, x, y, logits, loss) -> torch.Tensor:
        first, second = logits.chunk(2)
        divergence = bernoulli_js(first, second).mean()
        pl_module.log("train/view_js", divergence)
        return loss + self.weight * divergence
