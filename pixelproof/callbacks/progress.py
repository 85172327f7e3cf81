"""A progress bar that tells the truth about a run bounded by steps (``pixelproof.train_generator``:
``max_epochs=-1``, ``max_steps=N``), where Lightning's Rich bar reads ``Epoch 3/-2``."""

from typing import Any

from lightning.pytorch.callbacks import RichProgressBar


class StepBudgetProgressBar(RichProgressBar):
    """Lightning's Rich bar; without an epoch budget it shows the epoch and the optimizer steps
    done of ``max_steps`` instead of ``Epoch <n>/<max_epochs - 1>``."""

    def _step_budget(self) -> bool:
        return self.trainer.max_epochs is None or self.trainer.max_epochs < 0

    def _get_train_description(self, current_epoch: int) -> str:
        trainer = self.trainer
        if not self._step_budget():
            return super()._get_train_description(current_epoch)
        steps = f", step {trainer.global_step}/{trainer.max_steps}" if trainer.max_steps > 0 else ""
        return f"Epoch {current_epoch}{steps}"

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> Any:
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        bar = self.train_progress_bar_id
        if self._step_budget() and self.progress is not None and bar is not None:
            description = self._get_train_description(trainer.current_epoch)
            self.progress.update(bar, description=description)
