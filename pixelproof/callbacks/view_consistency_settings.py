"""The ``callbacks.consistency`` settings the
:class:`~pixelproof.callbacks.view_consistency.ViewConsistency` callback owns (light: a run's
config is checked with them before torch loads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from pixelproof.utils.settings import Rule, Settings, non_negative_number, setting


@dataclass(frozen=True)
class ViewConsistencySettings(Settings):
    """weight: how much the disagreement between an image's two augmented views adds to the
    loss (0: the two views are only a doubled batch)."""

    KEY: ClassVar[str] = "callbacks.consistency"

    weight: float = setting(Rule(non_negative_number, "1"), 1.0)
