"""Write ``last.ckpt`` when training dies mid-epoch, so ``ckpt_path=.../last.ckpt`` resumes it."""

from typing import Any

from lightning.pytorch.callbacks import OnExceptionCheckpoint


class InterruptCheckpoint(OnExceptionCheckpoint):
    """Lightning's ``OnExceptionCheckpoint``, saving to ``<dirpath>/last.ckpt`` and keeping it.

    The stock callback deletes its file at teardown, i.e. after every run, which here would delete
    the ``last.ckpt`` that ``ModelCheckpoint(save_last=True)`` wrote for a finished run.
    """

    def __init__(self, dirpath: str, filename: str = "last") -> None:
        super().__init__(dirpath=dirpath, filename=filename)

    def teardown(self, *args: Any, **kwargs: Any) -> None:
        pass
