"""The LightningModule every real/fake detector shares.

The contract (docs/detectors.md; ``tests/unit/test_detector_contract.py`` checks it
for every detector config): a batch is ``(images [B,3,H,W] in [0,1], labels [B] float, fake = 1)``;
the injected ``net`` normalises internally and returns one logit per image. Swapping ``model=``
swaps ``net`` (and, for RINE, the loss) while data, attacks and evaluation stay the same.
"""

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from lightning import LightningModule
from torch import nn
from torchmetrics import MeanMetric, MetricCollection
from torchmetrics.aggregation import CatMetric
from torchmetrics.classification import BinaryAccuracy, BinaryAUROC, BinaryAveragePrecision

from pixelproof.evaluation.generator_table import flat_metrics, generator_table


def classification_metrics(prefix: str) -> MetricCollection:
    """ACC@0.5, AP and AUROC, the numbers the RINE / UFD tables report."""
    return MetricCollection(
        {"acc": BinaryAccuracy(), "ap": BinaryAveragePrecision(), "auroc": BinaryAUROC()},
        prefix=prefix,
    )


class DetectorModule(LightningModule):
    """Binary real/fake detector trained with BCE on one logit.

    Args:
        net: ``[B,3,H,W]`` in [0,1] -> ``[B]`` logits.
        optimizer: a partial optimizer (Hydra ``_partial_: true``), called with the parameters.
        scheduler: optional partial LR scheduler, called with the optimizer.
        scheduler_monitor: metric a ReduceLROnPlateau scheduler watches.
        scheduler_interval: ``epoch`` or ``step``; a per-step scheduler that takes
            ``total_steps`` (OneCycleLR: warm-up then cosine annealing, for short budgets) gets
            the run's number of optimiser steps.
        compile: wrap ``net`` with ``torch.compile`` at fit time.
    """

    # Constructor arguments kept out of hparams (modules, factories); subclasses add theirs.
    hparams_ignore: tuple[str, ...] = ("net", "optimizer", "scheduler")

    def __init__(
        self,
        net: nn.Module,
        optimizer: Any,
        scheduler: Any = None,
        scheduler_monitor: str = "val/loss",
        scheduler_interval: str = "epoch",
        compile: bool = False,
    ) -> None:
        super().__init__()
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"model.scheduler_interval={scheduler_interval!r}: choose epoch or step"
            )
        # Factories stay out of the checkpoint (it must load with torch's weights_only=True);
        # train() records the plain model config there instead (callbacks/model_config.py).
        self.save_hyperparameters(logger=False, ignore=list(self.hparams_ignore))
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.net = net
        self.train_acc = BinaryAccuracy()
        self.val_metrics = classification_metrics("val/")
        self.val_loss = MeanMetric()
        # p(fake) and labels per test dataloader (one per generator); built when they are known.
        self.test_scores = nn.ModuleList()
        self.test_names: list[str] = []
        self.test_table: list[dict] = []  # the last test stage's per-generator table
        # p(fake) >= threshold means fake. 0.5 unless a calibration callback chose another on
        # validation data; a buffer, so every checkpoint carries the threshold of its own weights.
        self.register_buffer("decision_threshold", torch.tensor(0.5))
        # a training objective that pairs each image with another version of itself (its
        # adversarial example: callbacks.adversarial.loss=trades|mart; a second augmented view:
        # callbacks=consistency), attached by that callback for the length of a fit; None: the
        # plain loss
        self.paired_objective = None
        self.paired_objective_owner = ""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(logits, y)

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(loss, logits)`` of a training batch; detectors with extra loss terms override it."""
        logits = self(x)
        return self.loss(logits, y), logits

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        loss, logits = self.training_loss(x, y)
        if self.paired_objective is not None:
            loss = self.paired_objective(self, x, y, logits, loss)
        self.train_acc(logits.detach().sigmoid(), y.int())
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc, prog_bar=True)
        return loss

    def attach_paired_objective(self, objective: Any, owner: str) -> None:
        """Train with ``objective(module, x, y, logits, loss) -> loss``; ``owner`` names the
        setting that asked for it. One at a time: two would each expect their own batch."""
        if self.paired_objective is not None and self.paired_objective != objective:
            raise ValueError(
                f"{owner} and {self.paired_objective_owner} both pair each training image with "
                "another version of it; use one of them"
            )
        self.paired_objective, self.paired_objective_owner = objective, owner

    def detach_paired_objective(self, objective: Any) -> None:
        if self.paired_objective == objective:
            self.paired_objective, self.paired_objective_owner = None, ""

    def on_train_epoch_start(self) -> None:
        self.log("train/lr", self.trainer.optimizers[0].param_groups[0]["lr"])

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int):
        x, y = batch
        logits = self(x)
        probs = logits.sigmoid()
        self.val_loss(self.loss(logits, y))
        self.val_metrics.update(probs, y.int())
        return {"probs": probs, "labels": y}  # for callbacks (threshold calibration)

    def on_validation_epoch_end(self) -> None:
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def on_test_start(self) -> None:
        loaders = self.trainer.test_dataloaders
        count = len(loaders) if isinstance(loaders, list | tuple) else 1
        names = list(getattr(self.trainer.datamodule, "test_names", []))
        self.test_names = names if len(names) == count else [str(i) for i in range(count)]
        # every score is kept (and gathered across DDP processes): the per-generator table of
        # pixelproof.evaluation is built from them, the same code pixelproof.eval runs
        self.test_scores = nn.ModuleList(
            nn.ModuleDict({"probs": CatMetric(), "labels": CatMetric()}) for _ in self.test_names
        ).to(self.device)

    def test_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int, dataloader_idx=0):
        x, y = batch
        self.test_scores[dataloader_idx]["probs"].update(self(x).sigmoid().float())
        self.test_scores[dataloader_idx]["labels"].update(y.float())

    def on_test_epoch_end(self) -> None:
        """Log the per-generator table at the checkpoint's threshold as ``test/<metric>`` (the
        mean over generators, or the one test set) and ``test/<generator>/<metric>``."""
        scores = {
            name: (s["probs"].compute(), s["labels"].compute())
            for name, s in zip(self.test_names, self.test_scores)
        }
        rows = generator_table(scores, float(self.decision_threshold))
        self.log_dict(flat_metrics(rows, "test"))
        self.test_table = rows  # for the run's printed report
        for collector in self.test_scores:
            for metric in collector.values():
                metric.reset()

    def setup(self, stage: str) -> None:
        if self.hparams.compile and stage == "fit":
            self.net = torch.compile(self.net)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # checkpoints written before thresholds were calibrated decide at 0.5
        checkpoint["state_dict"].setdefault("decision_threshold", torch.tensor(0.5))

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return {"optimizer": optimizer}
        interval = self.hparams.scheduler_interval
        takes_total = "total_steps" in inspect.signature(self.scheduler_factory).parameters
        if interval == "step" and takes_total:
            total = int(self.trainer.estimated_stepping_batches)
            scheduler = self.scheduler_factory(
                optimizer=optimizer,
                total_steps=total,
                **_warm_up_not_empty(self.scheduler_factory, total),
            )
        else:
            scheduler = self.scheduler_factory(optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {
                "scheduler": scheduler,
                "monitor": self.hparams.scheduler_monitor,
                "interval": interval,
            },
        }


def _warm_up_not_empty(factory: Any, total: int) -> dict[str, float]:
    """OneCycleLR's warm-up ends at step ``pct_start * total - 1``; where that is step 0 (e.g.
    ``pct_start=0.2`` over 5 steps) the phase starts and ends at 0 and torch divides by zero. A
    hair more ``pct_start`` makes it the one-step warm-up meant: step 0 at the initial rate."""
    pct_start = inspect.signature(factory).parameters.get("pct_start")
    if pct_start is None or float(pct_start.default * total) - 1 != 0:
        return {}
    return {"pct_start": (1 + 1e-6) / total}
