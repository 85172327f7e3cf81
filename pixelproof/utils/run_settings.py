"""What an entry point itself owns: its top-level keys (``seed``, ``threads``, ``max_pixels``,
``task1_index``) and the Lightning ``trainer`` node it builds the Trainer from. A key an entry
point does not have keeps its default, so one class serves them all."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from pixelproof.data.task1 import TASK1_INDEX
from pixelproof.utils.settings import (
    Rule,
    Settings,
    is_whole,
    non_negative_int,
    optional,
    positive_int,
    setting,
    whole,
)


def _epochs(value: Any) -> str | None:
    """A count of epochs or steps, Lightning's -1 for none."""
    if is_whole(value) and (value >= 1 or value == -1):
        return None
    return "must be a whole number >= 1 (or -1: no limit)"


@dataclass(frozen=True)
class RunSettings(Settings):
    """seed: seeds every RNG (``None``: a fresh seed). threads: torch's CPU threads.
    max_pixels: the demo refuses larger images (``None``: Pillow's limit). task1_index: how an
    image gets its index in the Task-1 file."""

    KEY: ClassVar[str] = ""

    seed: int | None = setting(Rule(optional(whole), "42"), None)
    threads: int = setting(Rule(positive_int, "2"), 2)
    max_pixels: int | None = setting(Rule(optional(positive_int), "100000000"), None)
    task1_index: str = setting(TASK1_INDEX, "name")


@dataclass(frozen=True)
class TrainerSettings(Settings):
    """The Lightning Trainer's budget: max_epochs, min_epochs, max_steps."""

    KEY: ClassVar[str] = "trainer"

    max_epochs: int = setting(Rule(_epochs, "3"), -1)
    min_epochs: int | None = setting(Rule(optional(non_negative_int), "1"), None)
    max_steps: int = setting(Rule(_epochs, "2500"), -1)
