"""The ``data`` settings a datamodule owns, checked on construction: by
:class:`~pixelproof.data.datamodule.ImageDataModule` from its arguments, and by
``pixelproof.validation`` from a run's config before any work (``train_generator``'s photo
crops share the ``batch_size`` and ``num_workers`` keys, and so these rules)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pixelproof.utils.settings import (
    Rule,
    Settings,
    fraction_below_one,
    non_negative_int,
    optional,
    positive_int,
    setting,
)


@dataclass(frozen=True)
class DataSettings(Settings):
    """batch_size: training images per batch. eval_batch_size: per evaluation batch (``None``:
    ``batch_size``). num_workers: loader processes. val_fraction: of the training files, held out
    for validation when there is no validation split. image_size: side images are brought to."""

    KEY: ClassVar[str] = "data"

    batch_size: int = setting(Rule(positive_int, "64"), 64)
    eval_batch_size: int | None = setting(Rule(optional(positive_int), "256"), None)
    num_workers: int = setting(Rule(non_negative_int, "0"), 0)
    val_fraction: float = setting(Rule(fraction_below_one, "0.1"), 0.1)
    image_size: int = setting(Rule(positive_int, "32"), 32)
