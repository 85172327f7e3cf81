"""Write ``last.ckpt`` when training stops early, so ``ckpt_path=.../last.ckpt`` resumes it.

SIGTERM and SIGINT (``pixelproof.train`` turns the first Ctrl-C into a stop at the end of the
current batch) and any exception raised while fitting end here: the checkpoint then holds the
state at that point, batch counters, the training loader's position and the RNG states included.
"""

from typing import Any

from lightning.pytorch.callbacks import OnExceptionCheckpoint
from lightning.pytorch.trainer.states import RunningStage, TrainerFn


class InterruptCheckpoint(OnExceptionCheckpoint):
    """Lightning's ``OnExceptionCheckpoint``, saving to ``<dirpath>/last.ckpt`` and keeping it.

    The stock callback deletes its file at teardown, i.e. after every run, which here would delete
    the ``last.ckpt`` that the run's checkpoint callbacks wrote. It saves only while training
    batches run: an interrupted test stage (which runs on the best checkpoint's weights) must not
    overwrite the newest training state, and a state in the middle of validation would resume
    with the validation metrics of part of the validation set (Lightning does not checkpoint
    them); a stop there keeps the ``last.ckpt`` written before, whose resume validates again.
    Nor before the first training step ends: the state of an untrained model, written by a run
    that failed at once, is nothing to resume.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.saved = False  # whether the last exception was saved (the stop message says so)

    def on_exception(self, trainer, *args: Any, **kwargs: Any) -> None:
        self.saved = False
        training = trainer.state.fn == TrainerFn.FITTING
        if training and trainer.state.stage == RunningStage.TRAINING and trainer.global_step > 0:
            super().on_exception(trainer, *args, **kwargs)
            self.saved = True

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        pass
