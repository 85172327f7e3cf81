"""Log what training costs: images per second and wall-clock seconds, so every run's
metrics.json says it (the time-to-accuracy study reads both)."""

import time
from typing import Any

from lightning import Callback


class TrainThroughput(Callback):
    """``train/images_per_sec``: training images per second of wall time, data loading included,
    timed from the end of one training batch to the end of the next (so the first batch of an
    epoch and validation are left out). ``train/seconds``: wall-clock seconds since training
    started, validation included, at the end of each training epoch."""

    def __init__(self) -> None:
        self.images, self.seconds, self._last, self._start = 0, 0.0, None, None

    def on_train_start(self, trainer, pl_module) -> None:
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.images, self.seconds, self._last = 0, 0.0, None

    def on_train_batch_end(self, trainer, pl_module, outputs, batch: Any, batch_idx: int) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.seconds += now - self._last
            self.images += len(batch[0])
        self._last = now

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if self.seconds > 0:
            pl_module.log("train/images_per_sec", self.images / self.seconds)
        if self._start is not None:
            pl_module.log("train/seconds", time.perf_counter() - self._start)
