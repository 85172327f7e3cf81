"""Faults that land inside a training run, as callbacks: ``tests/e2e/test_faults.py`` adds them to
``python -m pixelproof.train`` subprocesses as ``+callbacks.<name>._target_=helpers.faults.<Class>``
(tests/ is on their ``PYTHONPATH``), so a fault lands at a chosen training step, through the real
signal handlers and the real file system."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from lightning import Callback


class SignalAt(Callback):
    """Send ``signal`` (SIGKILL, SIGTERM, SIGINT) to this process at the end of training step
    ``step`` (before the checkpoint callbacks of that step run)."""

    def __init__(self, step: int, signal: str = "SIGKILL") -> None:
        self.step, self.signal = step, signal

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), getattr(signal, self.signal))


class SignalInValidation(Callback):
    """Send ``signal`` to this process after the first validation batch of epoch ``epoch``,
    once: the file ``once`` records that it did (a resumed run validates that epoch again)."""

    def __init__(self, epoch: int, once: str, signal: str = "SIGTERM") -> None:
        self.epoch, self.once, self.signal = epoch, Path(once), signal

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args):
        if trainer.sanity_checking or trainer.current_epoch != self.epoch or batch_idx:
            return
        if not self.once.exists():
            self.once.touch()
            os.kill(os.getpid(), getattr(signal, self.signal))


class RaiseAt(Callback):
    """Raise ``RuntimeError`` at the start of training step ``step`` (``0``: before any step)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, *args) -> None:
        if trainer.global_step == self.step:
            raise RuntimeError(f"a fault at step {self.step}")


class DiskFullAt(Callback):
    """From the start of epoch ``epoch``, no file may grow past ``limit`` bytes (RLIMIT_FSIZE):
    every later checkpoint write fails part-way, as on a full disk."""

    def __init__(self, epoch: int, limit: int = 60_000) -> None:
        self.epoch, self.limit = epoch, limit

    def on_train_epoch_start(self, trainer, *args) -> None:
        import resource

        if trainer.current_epoch == self.epoch:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (self.limit, resource.RLIM_INFINITY))
