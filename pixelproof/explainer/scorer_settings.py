"""The ``scorer`` settings the CLIP artifact scorer owns
(:class:`~pixelproof.explainer.artifact_scorer.ArtifactScorer`), light so that a run's config is
checked with them before CLIP loads."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from omegaconf import DictConfig, OmegaConf

from pixelproof.utils.settings import Rule, Settings, positive_int, probability, setting


@dataclass(frozen=True)
class ScorerSettings(Settings):
    """threshold: keep artifact classes whose probability reaches it. top_k: at most this many
    artifacts per image. batch_size: images per vision pass."""

    KEY: ClassVar[str] = "scorer"

    threshold: float = setting(Rule(probability, "0.05"), 0.05)
    top_k: int = setting(Rule(positive_int, "5"), 5)
    batch_size: int = setting(Rule(positive_int, "32"), 32)


def has_scorer(cfg: DictConfig) -> bool:
    """Whether ``cfg`` names a CLIP model to score artifacts with: ``scorer=null`` or
    ``scorer.name_or_path=null`` is none (``explain`` then runs the detector's attributions
    alone, the demo shows no artifacts)."""
    scorer: Any = OmegaConf.select(cfg, "scorer", default=None, throw_on_missing=False)
    return isinstance(scorer, DictConfig | dict) and bool(scorer.get("name_or_path"))
