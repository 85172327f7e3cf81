"""Checkpoints written whole or not at all (Lightning's ``CheckpointIO`` plugin).

Lightning's ``TorchCheckpointIO`` writes through fsspec, whose local "transaction" writes a
temporary file elsewhere and moves it: across file systems that is a copy, and a full disk
leaves a truncated checkpoint in place of the previous good one. :class:`AtomicCheckpointIO`
writes every checkpoint (``last.ckpt``, the best epochs, the interrupt checkpoint, SLURM's
``hpc_ckpt_*``) with :func:`pixelproof.utils.atomic.atomic_open`: a temporary file beside the
target, flushed, fsync'd and renamed onto it. ``pixelproof.train`` sets it on every trainer.
A write that fails (a full disk) raises its own ``OSError``, which torch's archive writer would
replace with ``unexpected pos <n> vs <m>``.
"""

from __future__ import annotations

from typing import Any

import torch
from lightning.fabric.utilities.cloud_io import get_filesystem
from lightning.pytorch.plugins.io import TorchCheckpointIO

from pixelproof.utils.atomic import atomic_open


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose local saves are atomic (remote URLs go through fsspec)."""

    def save_checkpoint(
        self, checkpoint: dict[str, Any], path, storage_options: Any | None = None
    ) -> None:
        from fsspec.implementations.local import LocalFileSystem

        if storage_options is not None or not isinstance(get_filesystem(path), LocalFileSystem):
            super().save_checkpoint(checkpoint, path, storage_options)
            return
        with atomic_open(path, "wb") as handle:
            sink = _WriteErrors(handle)
            try:
                torch.save(checkpoint, sink)
            except RuntimeError:
                if sink.error is None:
                    raise
                raise sink.error from None


class _WriteErrors:
    """A file for ``torch.save`` that keeps the ``OSError`` of a failed write: torch's C++ writer
    swallows it and raises ``RuntimeError: ... unexpected pos`` instead."""

    def __init__(self, handle) -> None:
        self.handle, self.error = handle, None

    def write(self, data) -> int:
        try:
            return self.handle.write(data)
        except OSError as err:
            self.error = err
            raise

    def flush(self) -> None:
        self.handle.flush()
