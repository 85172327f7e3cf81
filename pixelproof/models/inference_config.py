"""The ``inference`` settings (``conf/inference/``) as given, before they are resolved against a
checkpoint (:func:`pixelproof.models.inference.inference_settings`): the one declaration of their
keys, defaults and rules, for ``Detector.load(**overrides)`` and for a run's config alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pixelproof.utils.settings import (
    Rule,
    Settings,
    non_negative_int,
    optional,
    positive_int,
    probability,
    setting,
)


@dataclass(frozen=True)
class InferenceConfig(Settings):
    """``None`` means the checkpoint's value. threshold: p(fake) >= threshold -> fake.
    image_size, resize_mode: how images reach the detector. device: ``auto`` (cuda when
    available), ``cpu``, ``cuda:1`` ... batch_size, num_workers: the loader's. ten_crop: average
    the logits of the ten crops of side crop_size (RINE's Synthbuster protocol)."""

    KEY: ClassVar[str] = "inference"

    threshold: float | None = setting(Rule(optional(probability), "0.5"), None)
    image_size: int | None = setting(Rule(optional(positive_int), "32"), None)
    resize_mode: str | None = setting(None, None)
    device: str = setting(None, "auto")
    batch_size: int = setting(Rule(positive_int, "256"), 256)
    num_workers: int = setting(Rule(non_negative_int, "0"), 0)
    ten_crop: bool = setting(None, False)
    crop_size: int = setting(Rule(positive_int, "28"), 28)
