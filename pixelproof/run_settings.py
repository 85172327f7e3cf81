"""The settings a run's config holds, at the entry points' level (above every package): what an
entry point itself owns, its top-level keys (``seed``, ``threads``, ``max_pixels``,
``task1_index``) and the Lightning ``trainer`` node it builds the Trainer from, and the list of
every component's settings (:data:`COMPONENTS`), which :func:`check_components` builds from a
composed config. A key an entry point does not have keeps its default, so one class serves them
all. Light (no torch): ``pixelproof.validation`` runs it before any work."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from pixelproof.attacks.spec import attack_spec
from pixelproof.attribution.settings import AttributionSettings
from pixelproof.callbacks.threshold_calibration_settings import ThresholdCalibrationSettings
from pixelproof.callbacks.view_consistency_settings import ViewConsistencySettings
from pixelproof.data.settings import DataSettings
from pixelproof.data.task1 import TASK1_INDEX
from pixelproof.evaluation.robustness_settings import RobustnessSettings
from pixelproof.explainer.scorer_settings import ScorerSettings
from pixelproof.models.inference_config import InferenceConfig
from pixelproof.models.optimizer_settings import OptimizerSettings
from pixelproof.utils.settings import (
    Rule,
    Settings,
    is_whole,
    node_of,
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


#: the settings of every component, checked wherever a run's config has their node
COMPONENTS: tuple[type[Settings], ...] = (
    DataSettings,
    OptimizerSettings,
    TrainerSettings,
    RunSettings,
    InferenceConfig,
    ScorerSettings,
    AttributionSettings,
    RobustnessSettings,
    ThresholdCalibrationSettings,
    ViewConsistencySettings,
)


def check_components(cfg: DictConfig) -> None:
    """Build each component's settings from its node of ``cfg`` (where there is one), and the
    attack's: the first bad value raises ``ConfigError``, one line naming its key."""
    for component in COMPONENTS:
        node = node_of(cfg, component.KEY)
        if isinstance(node, DictConfig):
            component.from_node(node)
    attack = node_of(cfg, "attack")
    if isinstance(attack, DictConfig):
        attack_spec(OmegaConf.to_container(attack, resolve=True), "attack")
