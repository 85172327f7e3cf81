"""SIGTERM and SIGINT stop a Lightning fit at the end of the current batch, for every entry point
that trains (``pixelproof.train``, ``pixelproof.train_generator``).

    with SignalStop() as stop:
        trainer.fit(...)
    stop.check(trainer, "pixelproof.train")  # raises Interrupted after a signal

The interrupt checkpoint (:class:`pixelproof.callbacks.interrupt_checkpoint.
InterruptCheckpoint`) saves ``last.ckpt`` at the stop; :class:`~pixelproof.utils.cli.
Interrupted`'s message says where it is (:func:`pixelproof.utils.recovery.last_checkpoint`) and
the command that resumes it, and :func:`pixelproof.utils.cli.run_entry_point` exits with 143 /
130.
"""

from __future__ import annotations

import shlex
import signal
import threading

from omegaconf import OmegaConf

from pixelproof.utils.cli import Interrupted
from pixelproof.utils.recovery import last_checkpoint


class SignalStop:
    """SIGTERM and SIGINT stop the run at the end of the current batch.

    While Lightning fits or tests, its own SIGTERM handler is installed (and calls this one
    after it): it stops the loop at the end of the batch and the interrupt checkpoint saves
    ``last.ckpt``. The first SIGINT is turned into the same stop (a second one raises
    ``KeyboardInterrupt`` at once); outside Lightning's loops either signal raises
    ``KeyboardInterrupt``. ``signum`` records the first signal, for the exit status. After a
    signal, the block's exception (the ``KeyboardInterrupt``, or whatever the stop broke) is
    dropped: :meth:`check` reports the stop instead.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> SignalStop:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc) -> bool:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return self.signum is not None

    def check(self, trainer, entry_point: str) -> None:
        """Raise :class:`Interrupted` if a signal stopped the run (``entry_point`` resumes it)."""
        if self.signum is not None:
            message = stopped(self.signum, trainer, entry_point)
            raise Interrupted(message, 128 + self.signum)

    def _handle(self, signum: int, frame) -> None:
        first = self.signum is None
        if first:
            self.signum = signum
        lightning = signal.getsignal(signal.SIGTERM)
        in_loop = callable(lightning) and lightning != self._handle
        if in_loop and signum == signal.SIGTERM:
            return  # Lightning's handler, which called this one, has asked the loop to stop
        if in_loop and first:
            lightning(signal.SIGTERM, frame)
            return
        raise KeyboardInterrupt


def stopped(signum: int, trainer, entry_point: str) -> str:
    """What stopped, where the state is, and the command that resumes it."""
    name = signal.Signals(signum).name
    where = f"at epoch {trainer.current_epoch}, step {trainer.global_step}"
    overrides = [o for o in _overrides() if o.split("=", 1)[0].lstrip("+") != "ckpt_path"]
    command = ["python", "-m", entry_point, *overrides]
    ckpt = last_checkpoint(trainer)
    if ckpt is None:
        return f"stopped by {name} {where}, before any checkpoint; start again with:\n  " + (
            shlex.join(command)
        )
    command.append(f"ckpt_path={ckpt}")
    saved = any(getattr(c, "saved", False) for c in trainer.callbacks)
    state = "its state is in" if saved else "the newest state saved before it is"
    return f"stopped by {name} {where}; {state} {ckpt}. Resume with:\n  " + shlex.join(command)


def _overrides() -> list[str]:
    """The run's command-line overrides (Hydra's ``overrides.task``), when Hydra ran it."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return []
    return list(OmegaConf.select(HydraConfig.get(), "overrides.task", default=[]) or [])
