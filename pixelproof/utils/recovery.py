"""Where a training run's state is, and where a run resumes from (docs/recovery.md).

- :func:`checkpoint_plugins`: the trainer's plugins with atomic checkpoint writes
  (:class:`~pixelproof.utils.checkpoint_io.AtomicCheckpointIO`), so a kill or a full disk never
  leaves a truncated ``last.ckpt``.
- :func:`last_checkpoint`: the newest checkpoint holding the run's last state, which the stop
  message of :mod:`pixelproof.utils.signal_stop` names in its resume command.
- :func:`resume_from`: what ``trainer.fit`` resumes from: ``ckpt_path``, else the ``last.ckpt``
  the run directory already holds (a requeued SLURM job runs again in its directory).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)


def checkpoint_plugins(trainer_cfg: DictConfig) -> list:
    """The trainer's plugins (``trainer.plugins``, if any) plus atomic checkpoint writes."""
    from lightning.fabric.plugins import CheckpointIO

    from pixelproof.utils.checkpoint_io import AtomicCheckpointIO

    configured = trainer_cfg.get("plugins") if "plugins" in trainer_cfg else None
    plugins = list(hydra.utils.instantiate(configured) or []) if configured else []
    if not any(isinstance(p, CheckpointIO) for p in plugins):
        plugins.append(AtomicCheckpointIO())
    return plugins


def last_checkpoint(trainer) -> Path | None:
    """The newest checkpoint holding the run's last state (``last.ckpt``), if one was written."""
    from lightning.pytorch.callbacks import ModelCheckpoint, OnExceptionCheckpoint

    found = []
    for callback in trainer.callbacks:
        # InterruptCheckpoint by its flag (utils imports no callbacks: no package cycle)
        if isinstance(callback, OnExceptionCheckpoint) or getattr(callback, "on_interrupt", False):
            found.append(callback.ckpt_path)
        elif isinstance(callback, ModelCheckpoint):
            found.append(callback.last_model_path)
            if callback.monitor is None:
                found.append(callback.best_model_path)
    existing = {Path(p).absolute() for p in found if p and Path(p).is_file()}
    return max(existing, key=lambda p: p.stat().st_mtime_ns, default=None)


def resume_from(ckpt_path: str | None, trainer) -> str | None:
    """``ckpt_path``; without one, the ``last.ckpt`` this run's directory already holds, if any
    (a requeued SLURM job runs again in its directory). Lightning would pick that file too, but
    on SLURM it prefers its ``hpc_ckpt_<n>.ckpt``, saved whenever SIGUSR1 arrives (possibly in
    the middle of a batch); ``last.ckpt`` is written at a batch boundary."""
    if ckpt_path:
        return ckpt_path
    last = last_checkpoint(trainer)
    if last is not None:
        log.info("Resuming from %s, the last state this run directory holds", last)
        return str(last)
    return None
