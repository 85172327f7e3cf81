"""The ``callbacks.threshold_calibration`` settings the
:class:`~pixelproof.callbacks.threshold_calibration.ThresholdCalibration` callback owns (light:
a run's config is checked with them before torch loads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pixelproof.utils.settings import Rule, Settings, fraction_below_one, setting


@dataclass(frozen=True)
class ThresholdCalibrationSettings(Settings):
    """target_fpr: the false-positive rate on validation reals the ``target_fpr`` method aims
    at."""

    KEY: ClassVar[str] = "callbacks.threshold_calibration"

    target_fpr: float = setting(Rule(fraction_below_one, "0.05"), 0.05)
