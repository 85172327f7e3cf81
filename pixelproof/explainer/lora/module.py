"""LoRA fine-tuning of a vision-language model's language model on artifact explanations.

Team 91's report ("From Pixels to Proof") fine-tuned LLaVA-7B on SynArtifact with the
language-modelling (cross-entropy) loss; here ``peft`` LoRA adapters go on the attention projections
of the VLM's language model only (``model.get_decoder()``: Idefics2's Mistral, LLaVA's Llama), the
base stays frozen, and the loss covers the target explanation tokens (see
``VisionLanguageModel.training_batch``). With a CUDA GPU and bitsandbytes the base is loaded in
4-bit (QLoRA).

Checkpoints hold the adapter weights only: the frozen base is dropped on save and taken from the
base model (rebuilt from ``vlm.name_or_path``) on load. At the end of fitting the best adapter
(by ``val/loss``) is also written with peft's ``save_pretrained`` to ``adapter_dir``, which
``python -m pixelproof.explain vlm.adapter=<adapter_dir>`` loads.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn

from pixelproof.explainer.lora.synartifact import ExplainBatch
from pixelproof.explainer.vlm import VisionLanguageModel

log = logging.getLogger(__name__)


def language_model_targets(model: nn.Module, suffixes: Sequence[str]) -> list[str]:
    """Full names of the linear layers inside the language model whose last name part is in
    ``suffixes`` (the vision tower and connector have ``q_proj`` too; they stay untouched)."""
    decoder = model.get_decoder()
    prefix = next(name for name, module in model.named_modules() if module is decoder)
    names = [
        f"{prefix}.{name}"
        for name, module in decoder.named_modules()
        if name.rsplit(".", 1)[-1] in suffixes and "Linear" in type(module).__name__
    ]
    if not names:
        raise ValueError(
            f"model.lora.target_modules={list(suffixes)}: no such linear layers in the language "
            f"model ({type(decoder).__name__}); pass names like q_proj, k_proj, v_proj, o_proj"
        )
    return names


class ExplainerLoRAModule(L.LightningModule):
    """Args:
    vlm: the vision-language model (``conf/vlm``), loaded once.
    optimizer / scheduler: ``_partial_`` factories (AdamW on the adapter weights).
    lora: ``r``, ``alpha``, ``dropout``, ``target_modules`` (last name parts in the LM).
    adapter_dir: where the best adapter is saved at the end of fitting (null: not saved).
    gradient_checkpointing: trade compute for activation memory (7-8B models on one GPU).
    """

    def __init__(
        self,
        vlm: VisionLanguageModel,
        optimizer: Any,
        scheduler: Any = None,
        lora: Mapping[str, Any] | None = None,
        adapter_dir: str | None = None,
        gradient_checkpointing: bool = False,
    ) -> None:
        from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

        super().__init__()
        self.save_hyperparameters(logger=False, ignore=["vlm", "optimizer", "scheduler"])
        self.optimizer_factory, self.scheduler_factory = optimizer, scheduler
        lora = dict(lora or {})
        base = vlm.model
        if vlm.quantized:
            base = prepare_model_for_kbit_training(
                base, use_gradient_checkpointing=gradient_checkpointing
            )
        elif gradient_checkpointing:
            base.gradient_checkpointing_enable()
        config = LoraConfig(
            r=int(lora.get("r", 8)),
            lora_alpha=int(lora.get("alpha", 16)),
            lora_dropout=float(lora.get("dropout", 0.05)),
            target_modules=language_model_targets(
                base, lora.get("target_modules", ("q_proj", "k_proj", "v_proj", "o_proj"))
            ),
            bias="none",
        )
        self.model = get_peft_model(base, config)
        self.model.train()  # the VLM was loaded for inference (eval); LoRA dropout must run
        vlm.model = self.model  # generation through the wrapper sees the adapters
        self.vlm = vlm
        self.adapter_dir = adapter_dir

    def trainable_names(self) -> set[str]:
        return {n for n, p in self.named_parameters() if p.requires_grad}

    def forward(self, batch: ExplainBatch) -> torch.Tensor:
        """The LM cross-entropy of the target explanations of ``batch``."""
        inputs = self.vlm.training_batch(batch.images, batch.prompts, batch.answers)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.vlm.dtype)
        return self.model(**inputs).loss

    def _step(self, batch: ExplainBatch, stage: str) -> torch.Tensor:
        loss = self(batch)
        self.log(
            f"{stage}/loss",
            loss,
            prog_bar=True,
            on_step=stage == "train",
            on_epoch=True,
            batch_size=len(batch.images),
        )
        return loss

    def training_step(self, batch: ExplainBatch, batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: ExplainBatch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: ExplainBatch, batch_idx: int) -> None:
        self._step(batch, "test")

    def configure_optimizers(self) -> Any:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = self.optimizer_factory(params=params)
        if self.scheduler_factory is None:
            return optimizer
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": self.scheduler_factory(optimizer=optimizer)},
        }

    # --------------------------------------------------------------- adapter-only checkpoints

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        keep = self.trainable_names()
        state = checkpoint["state_dict"]
        for key in [k for k in state if k not in keep]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint["state_dict"]
        for key, value in self.state_dict().items():
            state.setdefault(key, value)

    def on_fit_end(self) -> None:
        """Save the best adapter (the current one if no checkpoint recorded a best)."""
        if not self.adapter_dir or self.trainer.global_rank != 0:
            return
        from lightning.pytorch.callbacks import ModelCheckpoint

        best = next(
            (
                c.best_model_path
                for c in self.trainer.checkpoint_callbacks
                if isinstance(c, ModelCheckpoint) and c.best_model_path
            ),
            "",
        )
        if best:
            state = torch.load(best, map_location=self.device, weights_only=True)["state_dict"]
            self.load_state_dict(state, strict=False)
        self.model.save_pretrained(self.adapter_dir)
        log.info("LoRA adapter (%s) saved to %s", Path(best).name or "last", self.adapter_dir)
