"""RINE (Koutlis & Papadopoulos 2024) on a frozen CLIP vision tower, as a ``DetectorModule``.

``forward`` returns logits only, so metrics, evaluation and attacks treat it like any detector;
training adds ``xi`` x the supervised contrastive loss on the L2-normalised head embedding.
Checkpoints hold the trainable part only: a pretrained backbone's weights are dropped on save and
taken from the current backbone (reloaded from its source) on load, so a checkpoint is a few MB.
A random tower (``pretrained=false``) cannot be reloaded from anywhere, so it is saved in full.
"""

import warnings
from typing import Any, Literal

import torch
import torch.nn.functional as F
from lightning.pytorch.utilities.warnings import PossibleUserWarning

from pixelproof.models.components.clip_backbone import CLIPBackbone
from pixelproof.models.components.rine_net import RineNet
from pixelproof.models.components.supcon import supcon_loss
from pixelproof.models.detector_module import DetectorModule


class RineModule(DetectorModule):
    """Args beyond ``DetectorModule``'s:
    backbone: the frozen CLIP tower. input_size: side the ViT runs at (``None``: the
    checkpoint's). nproj, proj_dim, dropout: RINE's Q1/Q2 depth and width, dropout rate.
    xi: weight of the contrastive loss; temperature: its tau.
    bce_reduction: ``mean`` (as every pixelproof detector) or ``sum`` (the official code's,
    which weighs BCE ``batch_size`` times more against the contrastive term).
    """

    hparams_ignore = (*DetectorModule.hparams_ignore, "backbone")

    def __init__(
        self,
        backbone: CLIPBackbone,
        optimizer: Any,
        scheduler: Any = None,
        input_size: int | None = None,
        nproj: int = 2,
        proj_dim: int = 256,
        dropout: float = 0.5,
        xi: float = 0.2,
        temperature: float = 0.07,
        bce_reduction: Literal["mean", "sum"] = "mean",
        scheduler_monitor: str = "val/loss",
        scheduler_interval: str = "epoch",
        compile: bool = False,
    ) -> None:
        if bce_reduction not in ("mean", "sum"):
            raise ValueError(f"model.bce_reduction={bce_reduction!r}: choose mean or sum")
        if input_size is not None:
            backbone.input_size = input_size
        net = RineNet(backbone, nproj, proj_dim, dropout)
        super().__init__(
            net,
            optimizer,
            scheduler,
            scheduler_monitor=scheduler_monitor,
            scheduler_interval=scheduler_interval,
            compile=compile,
        )

    @property
    def backbone(self) -> CLIPBackbone:
        return self.net.backbone

    def on_fit_start(self) -> None:
        # The frozen backbone stays in eval mode on purpose; Lightning would warn about it.
        warnings.filterwarnings(
            "ignore", "Found .* module.* in eval mode", category=PossibleUserWarning
        )

    def training_loss(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits, embedding = self.net.logits_and_embedding(x)
        bce = F.binary_cross_entropy_with_logits(logits, y, reduction=self.hparams.bce_reduction)
        contrastive = supcon_loss(F.normalize(embedding, dim=1), y, self.hparams.temperature)
        self.log_dict({"train/bce": bce, "train/supcon": contrastive})
        return bce + self.hparams.xi * contrastive, logits

    def _backbone_prefix(self) -> str:
        # found by identity, so it holds under torch.compile's "_orig_mod." too
        name = next(n for n, m in self.named_modules() if m is self.backbone)
        return f"{name}."

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if not self.backbone.pretrained:
            return
        prefix = self._backbone_prefix()
        state = checkpoint["state_dict"]
        for key in [k for k in state if k.startswith(prefix)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_load_checkpoint(checkpoint)
        state = checkpoint["state_dict"]
        for key, value in self.backbone.state_dict(prefix=self._backbone_prefix()).items():
            state.setdefault(key, value)
