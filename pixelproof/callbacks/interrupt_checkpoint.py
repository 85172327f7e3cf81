"""Write ``last.ckpt`` when training stops early, so ``ckpt_path=.../last.ckpt`` resumes it.

SIGTERM and SIGINT (``pixelproof.train`` turns the first Ctrl-C into a stop at the end of the
current batch) and any exception raised while fitting end here: the checkpoint then holds the
state at that point, batch counters, the training loader's position and the RNG states included.
"""

import os
from typing import Any

from lightning.pytorch.callbacks import Callback
from lightning.pytorch.trainer.states import RunningStage, TrainerFn


class InterruptCheckpoint(Callback):
    """Saves ``<dirpath>/last.ckpt`` when fitting stops early, and keeps it.

    What Lightning's ``OnExceptionCheckpoint`` does, without its side effects: Lightning makes a
    ``fit(ckpt_path=None)`` with that callback resume from "last" (warning twice on every fresh
    run, and preferring its own choice of file), and the stock callback deletes its file at
    teardown, i.e. after every run, which here would delete the ``last.ckpt`` that the run's
    checkpoint callbacks wrote. ``pixelproof.train`` picks the file to resume itself. It saves
    only while training batches run: an interrupted test stage (which runs on the best
    checkpoint's weights) must not overwrite the newest training state, and a state in the middle
    of validation would resume with the validation metrics of part of the validation set
    (Lightning does not checkpoint them); a stop there keeps the ``last.ckpt`` written before,
    whose resume validates again. Nor before the first training step ends: the state of an
    untrained model, written by a run that failed at once, is nothing to resume.
    """

    on_interrupt = True  # how pixelproof.utils.recovery.last_checkpoint finds its file

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        if not filename:
            raise ValueError("InterruptCheckpoint: the filename cannot be empty")
        self.dirpath, self.filename = dirpath, filename
        self.saved = False  # whether the last exception was saved (the stop message says so)

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + ".ckpt")

    def on_exception(self, trainer, *args: Any, **kwargs: Any) -> None:
        self.saved = False
        training = trainer.state.fn == TrainerFn.FITTING
        if training and trainer.state.stage == RunningStage.TRAINING and trainer.global_step > 0:
            trainer.save_checkpoint(self.ckpt_path)
            self.saved = True
