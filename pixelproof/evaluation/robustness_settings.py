"""The ``robustness`` settings both protocols share (``conf/robustness/``): which protocol, the
eps grid of the attacks, the seed and the batches scored. Light (no torch): a run's config is
checked with them before any work; the robustness report and the journey read them the same
way."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import ListConfig

from pixelproof.attacks.spec import pixel_value
from pixelproof.utils.settings import (
    Rule,
    Settings,
    choice,
    non_negative_int,
    optional,
    positive_int,
    setting,
)


def _a_list(value: Any) -> str | None:
    if isinstance(value, list | tuple | ListConfig):
        return None
    return "must be a list of numbers >= 0 or fractions a/b"


EPS_GRID = Rule(_a_list, "[4/255,8/255]")


@dataclass(frozen=True)
class RobustnessSettings(Settings):
    """protocol: ``attacks`` (attacks and perturbations, :mod:`pixelproof.evaluation.robustness`)
    or ``journey`` (:mod:`pixelproof.evaluation.journey`). eps: the attacks' budgets, in [0,1]
    pixel units (``8/255`` strings are parsed). seed: random starts and noise are drawn from it.
    max_batches: per generator (``None``: every image)."""

    KEY: ClassVar[str] = "robustness"

    protocol: str = setting(Rule(choice("attacks", "journey"), "journey"), "attacks")
    eps: tuple[float, ...] = ()
    seed: int = setting(Rule(non_negative_int, "0"), 0)
    max_batches: int | None = setting(Rule(optional(positive_int), "1"), None)

    def __post_init__(self) -> None:
        EPS_GRID.require(f"{self.KEY}.eps", self.eps)
        grid = tuple(pixel_value(e, f"{self.KEY}.eps[{i}]") for i, e in enumerate(self.eps))
        object.__setattr__(self, "eps", grid)  # frozen: the parsed budgets replace the strings
        super().__post_init__()
