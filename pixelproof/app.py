"""A browser demo of a trained detector: drop images, see the verdict and what it rests on.

    python -m pixelproof.app ckpt_path=<ckpt>                      # http://127.0.0.1:7860
    python -m pixelproof.app ckpt_path=<ckpt> server_port=8080 scorer.name_or_path=<clip dir>

For each image: the verdict at the checkpoint's calibrated threshold and p(fake), the detector's
attribution overlay (Integrated Gradients; Grad-CAM where it has a conv stage), the frequency
bands its fake logit rests on, the image's spectrum, and the smallest PGD budget that flips the
verdict. For a batch: a sortable table and the Task-1 JSON to download. With a local CLIP
directory (``scorer.name_or_path``), also the artifacts CLIP finds and where.

Images are read and scored as ``pixelproof.predict`` reads and scores them (``load_rgb``, then
:class:`pixelproof.Detector`: the checkpoint's resize, threshold and verdict rule), so the demo
and ``predict`` give the same p(fake); the Task-1 download follows predict's ``task1_index``
rule (:mod:`pixelproof.data.task1`), so a misnamed upload is left out of it instead of
renumbering the others. Uploads are decoded one at a time, each brought at once to what the
analysis keeps (the model's input; for CLIP, a copy reduced to about its input size), so memory
holds at most one full-size image; an image of more than ``max_pixels`` pixels is refused from
its header, before decoding. Needs the ``app`` extra (``pip install 'pixelproof[app]'``); heavy
imports wait until the app starts, so ``--help`` answers at once.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from pixelproof.utils.cli import run_entry_point

log = logging.getLogger(__name__)

COLUMNS = ["index", "file", "verdict", "p_fake", "flip_eps_255", "strongest_band"]


@dataclass
class Result:
    """One uploaded file: an error, or everything the demo shows for the image."""

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
    overlay: Any = None  # PIL images
    chart: Any = None
    spectrum: Any = None
    artifacts: list[dict] = field(default_factory=list)
    size: tuple[int, int] | None = None  # of the upload, (width, height)
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


class DetectorDemo:
    """The demo's model and analysis, without the web page (tests call :meth:`analyse`)."""

    def __init__(self, cfg: DictConfig) -> None:
        from pixelproof.attribution.maps import AttributionSettings
        from pixelproof.models.detector import Detector
        from pixelproof.utils.validation import has_scorer

        self.cfg = cfg
        self.detector = Detector.load(cfg.ckpt_path, **cfg.inference)
        self.attribution = AttributionSettings.from_config(
            OmegaConf.to_container(cfg.attribution, resolve=True)
        )
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

    # ----------------------------------------------------------------------------- analysis

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
        from pixelproof.attribution.plots import attribution_panels, band_chart, spectrum

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
            bands = found[i].bands
            result.strongest_band = bands.labels()[bands.strongest]
            result.strongest_drop = bands.drops[bands.strongest]
            result.overlay = attribution_panels(x, found[i])
            result.chart = band_chart(bands, f"{result.name}: fake logit {bands.logit:+.2f}")
            result.spectrum = spectrum(x)
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

    # ------------------------------------------------------------------------------ outputs

    @staticmethod
    def task1(results: Sequence[Result]) -> str:
        """The Task-1 JSON of the scored images that have an index."""
        from pixelproof.data.task1 import task1_text

        return task1_text(
            (r.index, r.verdict) for r in results if r.error is None and r.index is not None
        )

    @staticmethod
    def rows(results: Sequence[Result]) -> list[list]:
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

    def summary(self, results: Sequence[Result], notes: Sequence[str]) -> str:
        good = [r for r in results if r.error is None]
        bad = [r for r in results if r.error is not None]
        lines = []
        if good:
            fake = sum(r.verdict == "fake" for r in good)
            lines.append(
                f"Analysed {len(good)} image{'s' * (len(good) != 1)}: {fake} fake, "
                f"{len(good) - fake} real (p(fake) >= {self.detector.threshold:.3f}: fake)."
            )
        if bad:
            lines.append(f"**Could not read {len(bad)} file{'s' * (len(bad) != 1)}:**")
            lines += [f"- `{r.name}`: {r.error}" for r in bad]
        if good:
            lines += [""] + list(notes)
        return "\n".join(lines)

    def describe(self, result: Result | None) -> str:
        """The verdict panel of one image, in Markdown."""
        if result is None:
            return ""
        detector, size = self.detector, self.detector.image_size
        index = "no Task-1 index" if result.index is None else f"index {result.index}"
        lines = [
            f"## {result.verdict.upper()}: p(fake) = {result.p_fake:.3f}",
            f"`{result.name}` ({index}), seen at {size}x{size} ({detector.resize_mode}); fake "
            f"when p(fake) >= {detector.threshold:.3f}, {self.threshold_source}.",
        ]
        if self.gauge:
            from pixelproof.attacks.spec import attack_spec, format_eps

            attack = attack_spec({**self.gauge["attack"], "eps": self.gauge["max_eps"]})
            name = f"{attack.name.upper()}-{attack.steps}"
            if result.flip_eps is None:
                gauge = f"{name} does not flip it within eps {format_eps(attack.eps)}"
            else:
                gauge = (
                    f"{name} flips it at eps {format_eps(result.flip_eps)} (L-inf, 8-bit levels)"
                )
            lines.append(f"\n**Robustness:** {gauge}.")
        if result.strongest_drop > 0:
            frequencies = (
                f"the fake logit rests most on the {result.strongest_band} cycles/pixel band "
                f"(without it, it falls by {result.strongest_drop:.2f})"
            )
        else:
            frequencies = "no frequency band carries evidence of a fake (removing one never lowers "
            frequencies += "the fake logit)"
        lines.append(f"\n**Frequencies:** {frequencies}.")
        return "\n".join(lines)

    @staticmethod
    def describe_artifacts(result: Result | None) -> str:
        if result is None or not result.artifacts:
            return ""
        lines = ["**Artifacts (CLIP zero-shot):**"]
        for a in result.artifacts:
            lines.append(f"- {a['name']}: {a['score']:.2f}, {a['region']} (box {a['box']})")
        return "\n".join(lines)

    # ---------------------------------------------------------------------------------- page

    def ui(self):
        """The Gradio page."""
        gr = _gradio()

        def detail(results: list, position) -> tuple:
            chosen = next((r for r in results if str(r.position) == str(position)), None)
            if chosen is None:
                return "", None, None, None, ""
            return (
                self.describe(chosen),
                chosen.overlay,
                chosen.chart,
                chosen.spectrum,
                self.describe_artifacts(chosen),
            )

        def on_upload(files, progress=gr.Progress()) -> tuple:  # noqa: B008 (Gradio's way)
            empty = gr.Dropdown(choices=[], value=None)
            if not files:
                return [], "", None, None, empty, "", None, None, None, ""
            paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
            try:
                progress(0, desc="Scoring and attributing")
                results, notes = self.analyse(
                    paths, lambda done, total: progress(done / total, desc=f"{done}/{total} images")
                )
            except Exception as err:  # a message on the page, the traceback in the log
                log.exception("analysis failed")
                text = f"**Could not analyse the upload:** {type(err).__name__}: {err}"
                return [], text, None, None, empty, "", None, None, None, ""
            good = [r for r in results if r.error is None]
            table = json_file = None
            if good:
                import pandas as pd

                table = pd.DataFrame(self.rows(results), columns=COLUMNS)
                json_file = Path(tempfile.mkdtemp(prefix="pixelproof-")) / "predictions.json"
                json_file.write_text(self.task1(results))
            choices = [(f"{r.name} ({r.verdict} {r.p_fake:.2f})", r.position) for r in good]
            first = good[0].position if good else None
            return (
                results,
                self.summary(results, notes),
                table,
                str(json_file) if json_file else None,
                gr.Dropdown(choices=choices, value=first),
                *detail(results, first),
            )

        detector = self.detector
        header = (
            f"# pixelproof: is this image real or generated?\n"
            f"Detector `{Path(self.cfg.ckpt_path).name}` (images brought to "
            f"{detector.image_size}x{detector.image_size} by {detector.resize_mode}; fake when "
            f"p(fake) >= {detector.threshold:.3f}, {self.threshold_source}). Drop one image or "
            "several, of any format, size and mode."
        )
        with gr.Blocks(title="pixelproof") as page:
            results = gr.State([])
            gr.Markdown(header)
            files = gr.File(file_count="multiple", label="Images", elem_id="upload")
            status = gr.Markdown(elem_id="status")
            with gr.Row():
                table = gr.Dataframe(
                    headers=COLUMNS,
                    label=self._table_label(),
                    interactive=False,
                    elem_id="table",
                    scale=3,
                )
                download = gr.File(label="Task-1 JSON", elem_id="task1", scale=1)
            choice = gr.Dropdown(label="Image shown below", choices=[], elem_id="choice")
            verdict = gr.Markdown(elem_id="verdict")
            overlay = gr.Image(label="Attribution of the fake logit", type="pil", elem_id="overlay")
            with gr.Row():
                chart = gr.Image(label="Frequency bands", type="pil", elem_id="bands")
                spectrum = gr.Image(
                    label="Spectrum (log magnitude)", type="pil", elem_id="spectrum"
                )
            artifacts = gr.Markdown(elem_id="artifacts", visible=self.scorer is not None)
            shown = [verdict, overlay, chart, spectrum, artifacts]
            files.change(on_upload, files, [results, status, table, download, choice, *shown])
            choice.input(detail, [results, choice], shown)
        return page

    def _table_label(self) -> str:
        label = "All images (sort from a column's menu)"
        if self.gauge:
            from pixelproof.attacks.spec import format_eps

            label += (
                "; flip_eps_255: the smallest PGD eps (in 1/255) that flips the verdict, blank "
                f"when none up to {format_eps(self.gauge['max_eps'])} does"
            )
        return label

    def launch(self, **kwargs):
        gr = _gradio()
        font = ["ui-sans-serif", "system-ui", "sans-serif"]
        theme = gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"])
        return self.ui().launch(theme=theme, **kwargs)


def _reduced(image, size: int):
    """``image`` shrunk by the largest whole factor that keeps both sides at least ``size`` (a
    box filter, ``Image.reduce``): CLIP resizes it to ``size`` x ``size`` anyway."""
    factor = min(image.size) // size
    return image.reduce(factor) if factor > 1 else image


def _gradio():
    """Gradio, imported on first use (no analytics: the demo must run offline)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from pixelproof.utils.extras import require

    require("app", "gradio", what="the demo")
    import gradio

    return gradio


def app(cfg: DictConfig, **launch_kwargs):
    """Build the demo and serve it (blocks, unless ``prevent_thread_lock=True``)."""
    _gradio()  # the app extra, before any model is loaded
    demo = DetectorDemo(cfg)
    return demo.launch(
        server_name=cfg.server_name,
        server_port=cfg.server_port,
        max_file_size=cfg.get("max_file_size"),
        **launch_kwargs,
    )


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg: DictConfig) -> None:
    run_entry_point(app, cfg, "app")


if __name__ == "__main__":
    main()
