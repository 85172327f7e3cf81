"""Keep the global random number generators in every checkpoint, so a resumed run draws what the
uninterrupted run would have drawn.

Training augmentations (:class:`pixelproof.data.augmentations.BatchAugmentation`), dropout and
random-start attacks draw from torch's global RNG, and Lightning's checkpoints do not store it:
without this callback a run resumed mid-epoch would see other augmentations than the
uninterrupted run. ``pixelproof.train`` adds it to every run.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
from lightning import Callback


def collect_rng_states() -> dict[str, Any]:
    """The states of torch's (CPU and, once initialised, CUDA), numpy's and Python's global
    RNGs, as plain tensors, lists and tuples (loadable with ``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss],
        "python": random.getstate(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng_states(states: dict[str, Any]) -> None:
    """Put back what :func:`collect_rng_states` returned."""
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))
    cuda = states.get("cuda")
    if cuda is not None and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)


class RNGState(Callback):
    """Save the global RNG states with every checkpoint; restore them when training resumes.

    The states are taken when the checkpoint is written and put back at ``on_train_start`` of
    the resumed run: after its sanity check and dataloader set-up, right before the first batch
    it trains on, which is the first draw the uninterrupted run made after that checkpoint.
    With DDP every process restores the states of process 0 (the one that writes checkpoints).
    """

    def __init__(self) -> None:
        self._pending: dict[str, Any] | None = None

    def state_dict(self) -> dict[str, Any]:
        return collect_rng_states()

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._pending = state_dict

    def on_train_start(self, trainer, pl_module) -> None:
        if self._pending:
            restore_rng_states(self._pending)
        self._pending = None
