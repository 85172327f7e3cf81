"""Write the resolved model config into every checkpoint, so the checkpoint says what it is.

``pixelproof.train`` adds this callback to every run (whatever ``callbacks=`` says): it is the
one place a model config reaches a checkpoint. :func:`pixelproof.models.loading.load_trained`
rebuilds the model from it, so ``eval``, ``predict`` and ``export`` need no ``model=``; the
datamodule's settings (image size, resize mode) are in the checkpoint already, as Lightning's
``datamodule_hyper_parameters``.
"""

from typing import Any

from lightning import Callback

from pixelproof.models.loading import MODEL_CONFIG as KEY  # where checkpoints are read


class RecordModelConfig(Callback):
    """Args: config: the model's resolved config (plain dicts and lists, ``_target_`` first)."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        checkpoint[KEY] = self.config
