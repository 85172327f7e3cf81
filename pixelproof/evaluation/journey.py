"""The image's journey: what happens to a picture between the camera (or the generator) and the
detector, as steps on the decoded 8-bit image done with the libraries a user's pipeline uses.

A detector that only ever sees pristine PNGs can learn traces that one JPEG save at quality 95
erases. So the journey protocol (:mod:`pixelproof.evaluation.journey_report`) scores every
generator again after each *cell* of a grid: a named chain of steps, the same for reals and
fakes. The grid lives in ``conf/robustness/journey.yaml`` as data, never as code to call: each
step is a name from :data:`STEPS` and its parameters, checked here, so a cell of one's own is a
few lines of YAML::

    cells:
      photo-sharing site: [{step: resize, scale: 0.75, resample: bicubic},
                           {step: restore, resample: bicubic}, {step: jpeg, quality: 75}]

Steps (``uint8`` ``[H, W, 3]`` in, ``uint8`` out, rounded and clipped as a saved file is):

- ``jpeg {quality}``: Pillow's JPEG encoder (libjpeg, 4:2:0 chroma as Pillow does by default)
  into memory and back.
- ``resize {scale, resample}``: Pillow's resize to ``round(scale * side)``; the image keeps that
  size until a ``restore``.
- ``crop {fraction}``: the central ``round(fraction * side)`` square (rectangle); size changes too.
- ``restore {resample}``: back to the size the cell started at (Pillow's resize). A cell must
  end at its starting size, so every ``resize`` / ``crop`` is followed by a ``restore``.
- ``blur {sigma}``: an exact Gaussian (SciPy, sampled kernel to 4 sigma, mirrored borders as
  OpenCV's default), not Pillow's box approximation.
- ``noise {sigma}``: Gaussian noise of ``sigma`` grey levels (0-255).

The only random step is ``noise``; it draws from a NumPy generator seeded with ``(seed, image
index)`` (:func:`image_rng`), so an image gets the same processing whatever its label, its batch
or the process that handles it, and reruns give the same numbers.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from omegaconf import OmegaConf
from PIL import Image

from pixelproof.evaluation.robustness_settings import RobustnessSettings

# resample names in the config -> Pillow filters
RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "box": Image.Resampling.BOX,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}
# top-level keys of a journey config (conf/robustness/journey.yaml)
JOURNEY_KEYS = ("protocol", "seed", "max_batches", "cells")
_REQUIRED = object()


# ------------------------------------------------------------------------------------ steps


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Save as JPEG at ``quality`` (1-100) in memory and decode it again."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    with Image.open(buffer) as decoded:
        return np.asarray(decoded.convert("RGB")).copy()


def _resize_to(image: np.ndarray, height: int, width: int, resample: str) -> np.ndarray:
    if image.shape[:2] == (height, width):
        return image
    resized = Image.fromarray(image).resize((width, height), RESAMPLE[resample])
    return np.asarray(resized).copy()


def resize(image: np.ndarray, scale: float, resample: str) -> np.ndarray:
    """Resize by ``scale`` (each side to ``round(scale * side)``, at least 1 pixel)."""
    height, width = image.shape[:2]
    new = max(1, round(height * scale)), max(1, round(width * scale))
    return _resize_to(image, *new, resample)


def restore(image: np.ndarray, size: tuple[int, int], resample: str) -> np.ndarray:
    """Resize back to ``size`` (height, width): the size the cell started at."""
    return _resize_to(image, *size, resample)


def crop(image: np.ndarray, fraction: float) -> np.ndarray:
    """Keep the central ``fraction`` of each side."""
    height, width = image.shape[:2]
    keep_h, keep_w = max(1, round(height * fraction)), max(1, round(width * fraction))
    top, left = (height - keep_h) // 2, (width - keep_w) // 2
    return image[top : top + keep_h, left : left + keep_w].copy()


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Exact Gaussian blur of standard deviation ``sigma`` pixels, each channel on its own."""
    from scipy.ndimage import gaussian_filter

    blurred = gaussian_filter(
        image.astype(np.float64), sigma=(sigma, sigma, 0), mode="mirror", truncate=4.0
    )
    return _to_uint8(blurred)


def noise(image: np.ndarray, sigma: float, rng: np.random.Generator) -> np.ndarray:
    """Add N(0, sigma^2) noise, ``sigma`` in grey levels; rounded and clipped to 0-255."""
    return _to_uint8(image + rng.normal(0.0, sigma, size=image.shape))


def _to_uint8(values: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(values), 0, 255).astype(np.uint8)


# -------------------------------------------------------------------------- parameter checks
# each returns the value to use, or raises ValueError saying what the parameter allows


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError("must be a number")
    return float(value)


def _quality(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
        raise ValueError("must be a whole number in 1..100")
    return value


def _positive(value: Any) -> float:
    if _number(value) <= 0:
        raise ValueError("must be a number > 0")
    return float(value)


def _non_negative(value: Any) -> float:
    if _number(value) < 0:
        raise ValueError("must be a number >= 0")
    return float(value)


def _fraction(value: Any) -> float:
    if not 0 < _number(value) <= 1:
        raise ValueError("must be a number in (0, 1]")
    return float(value)


def _resample(value: Any) -> str:
    if value not in RESAMPLE:
        raise ValueError(f"must be one of {', '.join(RESAMPLE)}")
    return value


@dataclass(frozen=True)
class StepKind:
    """One entry of :data:`STEPS`: the function, its parameters (name -> (check, default)),
    and what it does to the image's size (``"changes"``, ``"restores"`` or ``""``)."""

    function: Callable[..., np.ndarray]
    params: Mapping[str, tuple[Callable[[Any], Any], Any]]
    size: str = ""
    random: bool = False


STEPS: dict[str, StepKind] = {
    "jpeg": StepKind(jpeg, {"quality": (_quality, _REQUIRED)}),
    "resize": StepKind(
        resize,
        {"scale": (_positive, _REQUIRED), "resample": (_resample, "bicubic")},
        size="changes",
    ),
    "crop": StepKind(crop, {"fraction": (_fraction, _REQUIRED)}, size="changes"),
    "restore": StepKind(restore, {"resample": (_resample, "bicubic")}, size="restores"),
    "blur": StepKind(blur, {"sigma": (_positive, _REQUIRED)}),
    "noise": StepKind(noise, {"sigma": (_non_negative, _REQUIRED)}, random=True),
}


@dataclass(frozen=True)
class Step:
    """A step of :data:`STEPS` with its checked parameters."""

    name: str
    params: tuple[tuple[str, Any], ...]

    def __call__(
        self, image: np.ndarray, rng: np.random.Generator, size: tuple[int, int]
    ) -> np.ndarray:
        kind = STEPS[self.name]
        extra = {"rng": rng} if kind.random else {}
        if kind.size == "restores":
            extra["size"] = size
        return kind.function(image, **dict(self.params), **extra)

    @property
    def label(self) -> str:
        """``jpeg(quality=95)``: how the CSV and the Markdown table name the step."""
        values = (f"{k}={v}" if isinstance(v, str) else f"{k}={v:g}" for k, v in self.params)
        return f"{self.name}({', '.join(values)})"


@dataclass(frozen=True)
class Cell:
    """A named chain of steps, applied in order; no steps: the image as it is (``none``)."""

    name: str
    steps: tuple[Step, ...]

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``image`` (``uint8`` ``[H, W, 3]``) after every step; ``rng`` feeds the random ones."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(
                f"journey cell {self.name!r} takes uint8 [H, W, 3] images, not "
                f"{image.dtype} {list(image.shape)}"
            )
        size = image.shape[:2]
        for step in self.steps:
            image = step(image, rng, size)
        return image

    @property
    def description(self) -> str:
        return " -> ".join(s.label for s in self.steps) or "as it is"


def image_rng(seed: int, index: int) -> np.random.Generator:
    """The random numbers image ``index`` is processed with: one stream per ``(seed, index)``."""
    return np.random.default_rng([seed, index])


# ---------------------------------------------------------------------------------- config


def parse_step(raw: Any, where: str) -> Step:
    """``{step: <name>, <param>: <value>, ...}`` -> a :class:`Step`; one-line errors naming
    ``where`` (``robustness.cells.<cell>[<i>]``)."""
    if not isinstance(raw, Mapping) or "step" not in raw:
        raise ValueError(f"{where} must be a mapping like {{step: jpeg, quality: 75}}")
    values = dict(raw)
    name = values.pop("step")
    if name not in STEPS:
        raise ValueError(f"{where}: step {name!r} is unknown; choose from {', '.join(STEPS)}")
    kind = STEPS[name]
    unknown = sorted(set(values) - set(kind.params))
    if unknown:
        allowed = ", ".join(kind.params)
        raise ValueError(
            f"{where}: {name} has no parameter {', '.join(unknown)}; it takes {allowed}"
        )
    params = []
    for key, (check, default) in kind.params.items():
        if key not in values:
            if default is _REQUIRED:
                raise ValueError(f"{where}: {name} needs {key}")
            params.append((key, default))
            continue
        try:
            params.append((key, check(values[key])))
        except ValueError as err:
            raise ValueError(f"{where}: {name} {key}={values[key]!r} {err}") from None
    return Step(name, tuple(params))


def parse_cells(raw: Any) -> list[Cell]:
    """``robustness.cells`` (``{name: [step, ...]}``, in order; a ``null`` cell is left out,
    so an override can drop one) -> the grid of :class:`Cell`."""
    where = "robustness.cells"
    if not isinstance(raw, Mapping) or not raw:
        raise ValueError(f"{where} must map cell names to lists of steps, e.g. {{none: []}}")
    cells = []
    for name, steps in raw.items():
        if steps is None:
            continue
        here = f"{where}.{name}"
        if isinstance(steps, str | bytes) or not isinstance(steps, Sequence):
            raise ValueError(f"{here} must be a list of steps (empty for the image as it is)")
        parsed = tuple(parse_step(step, f"{here}[{i}]") for i, step in enumerate(steps))
        resized = False
        for step in parsed:
            size = STEPS[step.name].size
            resized = (resized or size == "changes") and size != "restores"
        if resized:
            raise ValueError(
                f"{here} ends at another size than it started: end it with "
                "{step: restore, resample: bicubic}"
            )
        cells.append(Cell(str(name), parsed))
    if not cells:
        raise ValueError(f"{where} leaves no cell to score")
    return cells


@dataclass(frozen=True)
class JourneySettings:
    """A journey config (``conf/robustness/journey.yaml``), checked."""

    cells: tuple[Cell, ...]
    seed: int = 0
    max_batches: int | None = None  # per generator; None: every image


def journey_settings(cfg: Mapping) -> JourneySettings:
    """Check a ``robustness`` node with ``protocol: journey``; ValueError (one line) otherwise."""
    if OmegaConf.is_config(cfg):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    unknown = sorted(set(cfg) - set(JOURNEY_KEYS))
    if unknown:
        raise ValueError(
            f"robustness=journey does not use {', '.join(f'robustness.{k}' for k in unknown)}; "
            f"it takes {', '.join(JOURNEY_KEYS)}"
        )
    shared = RobustnessSettings.from_node(cfg)  # protocol, seed, max_batches
    return JourneySettings(tuple(parse_cells(cfg.get("cells"))), shared.seed, shared.max_batches)


def check_journey(cfg: Mapping) -> None:
    """For entry points: a run config whose ``robustness`` is a journey must describe a valid
    grid; :class:`~pixelproof.utils.settings.ConfigError` (one line, exit 2) otherwise."""
    from pixelproof.utils.settings import ConfigError

    robustness = cfg.get("robustness")
    if robustness and robustness.get("protocol") == "journey":
        try:
            journey_settings(robustness)
        except ValueError as err:
            raise ConfigError(str(err)) from None
