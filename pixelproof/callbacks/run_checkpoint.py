"""``ModelCheckpoint`` that keeps its ranking when a run is resumed into a new run directory.

Every run writes into a directory of its own, so ``ckpt_path=<old run>/checkpoints/last.ckpt``
resumes into another ``dirpath``. Lightning's ``ModelCheckpoint`` then forgets the scores of the
old run's best checkpoints (it keeps only ``best_model_path``, with a warning), so the first epoch
after the resume becomes "best" whatever its score, and the test stage would test another
checkpoint than the uninterrupted run. :class:`RunCheckpoint` restores the ranking whenever the
old run's checkpoint files still exist; they stay where they are (Lightning never deletes files
outside its ``dirpath``). A checkpoint without a monitor (``last.ckpt``) has no ranking to keep,
and starts afresh in the new directory without the warning.

A step or time interval (``every_n_train_steps``, ``train_time_interval``) never saves on the
last batch of an epoch: that state is the one before the epoch's validation, and Lightning
resumes from it without validating the epoch (it takes a checkpoint of the last batch for one
saved after validation), which would change the best checkpoint. The epoch-end save, after
validation, stands for it.
"""

from __future__ import annotations

import os
from typing import Any

from lightning.pytorch.callbacks import ModelCheckpoint


class RunCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``; a ranking saved in another directory is restored too,
    and step / time intervals skip the last batch of an epoch (see the module docstring)."""

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)
            return
        if self.monitor is None:
            return  # last.ckpt & co: nothing to rank, the new run writes its own
        best_k = {
            path: score
            for path, score in (state_dict.get("best_k_models") or {}).items()
            if os.path.isfile(path)
        }
        if not best_k:
            super().load_state_dict(state_dict)
            return
        self.best_k_models = best_k
        pick = min if self.mode == "min" else max
        best = state_dict.get("best_model_path")
        self.best_model_path = best if best in best_k else pick(best_k, key=best_k.get)
        self.best_model_score = best_k[self.best_model_path]
        kth = state_dict.get("kth_best_model_path", "")
        if kth in best_k:
            self.kth_best_model_path, self.kth_value = kth, state_dict.get("kth_value")
