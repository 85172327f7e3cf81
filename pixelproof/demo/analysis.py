"""What the demo finds in each upload, as plain data: no Gradio, no Markdown, no pictures.

Images are read and scored as ``pixelproof.predict`` reads and scores them (``load_rgb``, then
:class:`pixelproof.Detector`: the checkpoint's resize, threshold and verdict rule), so the demo
and ``predict`` give the same p(fake); the Task-1 JSON follows predict's ``task1_index`` rule
(:mod:`pixelproof.data.task1`), so a misnamed upload is left out of it instead of renumbering the
others. Uploads are decoded one at a time, each brought at once to what the analysis keeps (the
model's input; for CLIP, a copy reduced to about its input size), so memory holds at most one
full-size image; an image of more than ``max_pixels`` pixels is refused from its header, before
decoding. :mod:`pixelproof.demo.rendering` draws the pictures and the page from these results.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

COLUMNS = ["index", "file", "verdict", "p_fake", "flip_eps_255", "strongest_band"]


@dataclass
class Result:
    """One uploaded file: an error, or everything the analysis found in the image."""

    position: int  # in the upload order
    name: str
    error: str | None = None
    index: int | None = None  # Task-1 index (task1_index); None: not in the Task-1 JSON
    no_index: str | None = None  # why it has none
    p_fake: float | None = None
    verdict: str | None = None
    flip_eps: float | None = None
    strongest_band: str | None = None
    strongest_drop: float | None = None
    artifacts: list[dict] = field(default_factory=list)
    size: tuple[int, int] | None = None  # of the upload, (width, height)
    input: Any = None  # the model's input ([3, H, W] tensor in [0, 1]), as the detector saw it
    attribution: Any = None  # pixelproof.attribution.maps.DetectorAttribution of the fake logit
    image: Any = None  # CLIP's reduced copy (with a scorer), dropped after the analysis


def assign_indices(results: Sequence[Result], rule: str = "name") -> str:
    """Set each image's Task-1 index by ``rule`` (:func:`pixelproof.data.task1.task1_indices`,
    over every upload in order); returns the note that says how, and which images have none."""
    from pixelproof.data.task1 import task1_indices

    indices, why = task1_indices([r.name for r in results], rule)
    for position, result in enumerate(results):
        result.index, result.no_index = indices[position], why.get(position)
    note = "from the file names (`<N>.<ext>`)" if rule == "name" else "the upload order (0-based)"
    left_out = [r for r in results if r.error is None and r.index is None]
    if left_out:
        note += "; not in the Task-1 JSON: " + ", ".join(
            f"`{r.name}` ({r.no_index})" for r in left_out
        )
    return note


def task1(results: Sequence[Result]) -> str:
    """The Task-1 JSON of the scored images that have an index."""
    from pixelproof.data.task1 import task1_text

    return task1_text(
        (r.index, r.verdict) for r in results if r.error is None and r.index is not None
    )


def rows(results: Sequence[Result]) -> list[list]:
    """The batch table (one row per scored image, :data:`COLUMNS`)."""
    return [
        [
            r.index,
            r.name,
            r.verdict,
            round(r.p_fake, 4),
            None if r.flip_eps is None else round(r.flip_eps * 255, 2),
            r.strongest_band,
        ]
        for r in results
        if r.error is None
    ]


class DemoAnalysis:
    """The demo's detector, settings and analysis of an upload (``cfg``: ``conf/app.yaml``)."""

    def __init__(self, cfg: DictConfig) -> None:
        from pixelproof.attribution.maps import AttributionSettings
        from pixelproof.explainer.scorer_settings import has_scorer
        from pixelproof.models.detector import Detector

        self.cfg = cfg
        self.detector = Detector.load(cfg.ckpt_path, **cfg.inference)
        self.attribution = AttributionSettings.from_node(cfg.attribution)
        self.gauge = OmegaConf.to_container(cfg.gauge, resolve=True) if cfg.get("gauge") else None
        if self.gauge:
            from pixelproof.attacks.spec import attack_spec, pixel_value

            self.gauge["max_eps"] = pixel_value(self.gauge["max_eps"], "gauge.max_eps")
            self.gauge["resolution"] = pixel_value(self.gauge["resolution"], "gauge.resolution")
            attack_spec({**self.gauge["attack"], "eps": self.gauge["max_eps"]}, "gauge.attack")
        self.threshold_source = (
            "the checkpoint's calibrated threshold"
            if cfg.inference.get("threshold") is None
            else "inference.threshold"
        )
        self.scorer = self._scorer(cfg) if has_scorer(cfg) else None

    @staticmethod
    def _scorer(cfg: DictConfig):
        from hydra.errors import InstantiationException

        from pixelproof.explainer.taxonomy import Taxonomy

        taxonomy = Taxonomy.from_config(**OmegaConf.to_container(cfg.taxonomy, resolve=True))
        try:
            build = hydra.utils.instantiate(cfg.scorer, _partial_=True, _convert_="all")
            return build(taxonomy=taxonomy)
        except InstantiationException as err:  # the constructor's own one-line error
            raise (err.__cause__ or err) from None

    def analyse(
        self, paths: Sequence[str | Path], progress: Callable[[int, int], Any] | None = None
    ) -> tuple[list[Result], list[str]]:
        """``(results in upload order, notes)`` for uploaded files, images or not;
        ``progress(done, total)`` is called after each image."""
        from pixelproof.data.decoding import BadImageError

        notes = []
        paths = list(paths)
        limit = int(self.cfg.max_files)
        if len(paths) > limit:
            notes.append(f"Only the first {limit} of {len(paths)} files were analysed (max_files).")
            paths = paths[:limit]
        results, ready = [], []
        for position, path in enumerate(paths):
            result = Result(position, Path(path).name)
            results.append(result)
            try:
                x, result.size, result.image = self._read(path)
                ready.append((result, x))
            except BadImageError as err:
                result.error = err.reason
            except ValueError as err:  # resize_mode=none and another size
                result.error = str(err)
        done = 0

        def tick() -> None:
            nonlocal done
            done += 1
            if progress is not None:
                progress(done, len(ready))

        step = self.detector.settings.batch_size
        for start in range(0, len(ready), step):
            self._score(ready[start : start + step], tick)
        for result in results:
            result.image = None
        notes.append("Task-1 indices: " + assign_indices(results, self.cfg.task1_index) + ".")
        return results, notes

    def _read(self, path: str | Path) -> tuple[Any, tuple[int, int], Any]:
        """``(model input, (width, height), CLIP's reduced copy or None)`` of one upload, read
        as predict reads it (``load_rgb``, then the checkpoint's size and resize mode). The
        full-size image lives only in this call: it is gone before the next file is read."""
        from pixelproof.data.decoding import load_rgb

        image = load_rgb(path, max_pixels=self.cfg.get("max_pixels"))
        reduced = _reduced(image, self.scorer.input_size) if self.scorer is not None else None
        return self.detector.to_input(image), image.size, reduced

    def _score(self, chunk: list, tick: Callable[[], None]) -> None:
        import torch

        from pixelproof.attacks.flip_eps import smallest_flip_eps
        from pixelproof.attribution.maps import attribute

        detector = self.detector
        images = torch.stack([x for _, x in chunk]).to(detector.device)
        probs = detector.score(images)
        found = attribute(detector.model, images, self.attribution)
        artifacts = (
            self.scorer.score([r.image for r, _ in chunk], [r.size for r, _ in chunk])
            if self.scorer
            else None
        )
        for i, ((result, x), p) in enumerate(zip(chunk, probs.tolist())):
            result.p_fake, result.verdict = p, detector.verdict(p)
            result.input, result.attribution = x, found[i]
            bands = found[i].bands
            result.strongest_band = bands.labels()[bands.strongest]
            result.strongest_drop = bands.drops[bands.strongest]
            if self.gauge:
                result.flip_eps = smallest_flip_eps(
                    detector.model,
                    images[i : i + 1],
                    detector.threshold,
                    self.gauge["attack"],
                    self.gauge["max_eps"],
                    self.gauge["resolution"],
                )
            if artifacts is not None:
                result.artifacts = [
                    {"name": a.name, "score": a.score, **a.location.to_dict()} for a in artifacts[i]
                ]
            tick()


def _reduced(image, size: int):
    """``image`` shrunk by the largest whole factor that keeps both sides at least ``size`` (a
    box filter, ``Image.reduce``): CLIP resizes it to ``size`` x ``size`` anyway."""
    factor = min(image.size) // size
    return image.reduce(factor) if factor > 1 else image
