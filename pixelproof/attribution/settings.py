"""How a detector's attributions are computed: the ``attribution`` node of ``conf/explain.yaml``
and ``conf/app.yaml``, checked on construction (light: a run's config is checked with it before
torch loads). :mod:`pixelproof.attribution.maps` computes what these settings say."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import ClassVar

from omegaconf import DictConfig

from pixelproof.utils.settings import (
    ConfigError,
    Rule,
    Settings,
    choice,
    positive_int,
    positive_number,
    setting,
)

BASELINES = ("blur", "black")


@dataclass(frozen=True)
class AttributionSettings(Settings):
    """baseline: ``blur`` or ``black``, Integrated Gradients' starting image. blur_sigma: the
    Gaussian's standard deviation in pixels. ig_steps: points on the path. gradcam_layer:
    ``auto`` (the last conv stage), ``null`` (no Grad-CAM) or a module name of the detector
    (``net.spatial.layer3``). bands: radial frequency bands. heatmap_cells: side of the grids
    written to JSON. batch_size: images per forward pass inside the attributions.
    """

    KEY: ClassVar[str] = "attribution"

    baseline: str = setting(Rule(choice(*BASELINES), "blur"), "blur")
    blur_sigma: float = setting(Rule(positive_number, "2.0"), 2.0)
    ig_steps: int = setting(Rule(positive_int, "32"), 32)
    gradcam_layer: str | None = setting(None, "auto")
    bands: int = setting(Rule(positive_int, "8"), 8)
    heatmap_cells: int = setting(Rule(positive_int, "8"), 8)
    batch_size: int = setting(Rule(positive_int, "64"), 64)

    @classmethod
    def from_node(cls, node: Mapping | DictConfig | None) -> AttributionSettings:
        """As :meth:`Settings.from_node`; every key of the node is one of these settings."""
        node = node or {}
        allowed = sorted(f.name for f in fields(cls))
        unknown = sorted(set(node) - set(allowed))
        if unknown:
            raise ConfigError(f"attribution has unknown keys {unknown}; allowed: {allowed}")
        return super().from_node(node)
