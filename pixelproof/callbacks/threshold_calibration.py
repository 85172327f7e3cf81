"""Choose the decision threshold on validation data while training.

After every validation epoch the detector's ``decision_threshold`` buffer is set from that
epoch's scores, so each checkpoint stores the threshold that fits its own weights, and
``pixelproof.predict`` uses it. Evaluation tables always show ACC@0.5 as well.

With Lightning's weight averaging (``callbacks=ema``) validation runs on the averaged weights,
and the average takes in every buffer of the trained weights after each step, the threshold
among them; so the trained weights' copy is held at the calibrated value too, and the average
keeps it until the next validation (a checkpoint written in between holds it).
"""

import logging

import torch
from lightning import Callback
from lightning.pytorch.callbacks import WeightAveraging

from pixelproof.callbacks.threshold_calibration_settings import ThresholdCalibrationSettings
from pixelproof.evaluation.thresholds import METHODS, choose_threshold

log = logging.getLogger(__name__)


class ThresholdCalibration(Callback):
    """Args:
    method: ``fixed`` (0.5, as in the Team 57 and Team 91 reports), ``best_acc`` (best validation
    accuracy), ``eer`` (equal error rate on validation: reals and fakes misclassified at the same
    rate) or ``target_fpr`` (calls at most ``target_fpr`` of the validation reals fake: the upper
    ``1 - target_fpr`` quantile of their p(fake)).
    target_fpr: the false-positive rate on validation reals the ``target_fpr`` method aims at.
    """

    def __init__(self, method: str = "fixed", target_fpr: float = 0.05) -> None:
        if method not in METHODS:
            raise ValueError(
                f"callbacks.threshold_calibration.method={method!r}: choose {', '.join(METHODS)}"
            )
        ThresholdCalibrationSettings(target_fpr=target_fpr)
        self.method = method
        self.target_fpr = target_fpr
        self._probs: list[torch.Tensor] = []
        self._labels: list[torch.Tensor] = []
        self._threshold: float | None = None  # the last validation's, once there is one

    def setup(self, trainer, pl_module, stage: str) -> None:
        earlier = trainer.callbacks[: trainer.callbacks.index(self)]
        if any(isinstance(c, WeightAveraging) for c in earlier):
            raise ValueError(
                "callbacks: threshold_calibration must come before the weight averaging (ema), "
                "so that it calibrates the averaged weights before they are swapped out"
            )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._threshold is not None:  # before the step, so the averaging sees it
            pl_module.decision_threshold.fill_(self._threshold)

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._probs, self._labels = [], []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dl_idx=0):
        if self.method != "fixed" and isinstance(outputs, dict):
            self._probs.append(outputs["probs"].detach().float().cpu())
            self._labels.append(outputs["labels"].detach().cpu())

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self.method == "fixed" or trainer.sanity_checking or not self._probs:
            return
        probs, labels = torch.cat(self._probs), torch.cat(self._labels)
        if trainer.world_size > 1:  # every rank must agree on one threshold
            probs = pl_module.all_gather(probs).flatten().cpu()
            labels = pl_module.all_gather(labels).flatten().cpu()
        try:
            threshold = choose_threshold(self.method, probs, labels, self.target_fpr)
        except ValueError as err:
            log.warning("Threshold left at %.3f: %s", float(pl_module.decision_threshold), err)
            return
        pl_module.decision_threshold.fill_(threshold)
        self._threshold = threshold
        pl_module.log("val/threshold", threshold)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        # a resumed run: the stored weights' threshold (the averaged ones' with the averaging)
        stored = checkpoint.get("state_dict", {}).get("decision_threshold")
        if isinstance(stored, torch.Tensor) and stored.numel() == 1:
            self._threshold = float(stored)
