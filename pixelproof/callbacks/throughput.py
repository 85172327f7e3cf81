"""Log training throughput (images/s), so every run's metrics.json says what it cost."""

import time
from typing import Any

from lightning import Callback


class TrainThroughput(Callback):
    """``train/images_per_sec``: training images per second of wall time, data loading included.

    Timed from the end of one training batch to the end of the next, so the first batch of an
    epoch (warm-up, loader start) and validation are left out.
    """

    def __init__(self) -> None:
        self.images, self.seconds, self._last = 0, 0.0, None

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
