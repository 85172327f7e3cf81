"""Closing the open wandb run, so that the next logger starts a run of its own."""

import sys


def finish_wandb() -> None:
    """A multirun runs its jobs in one process (and a Python session may train, then evaluate),
    and a new ``WandbLogger`` reuses a wandb run that is still open: close it when an entry
    point is done so every job and every command is its own run. Nothing if wandb was never
    imported."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and wandb.run is not None:
        wandb.finish()
