"""The demo's page, drawn from :mod:`pixelproof.demo.analysis`'s results: the Markdown of the
verdict, summary and artifacts, the pictures (attribution overlay, frequency-band chart,
spectrum, drawn for the image shown), the batch table, the Task-1 download, and the Gradio page
that holds them. Gradio is imported on first use, with analytics off (the demo runs offline).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

from pixelproof.demo.analysis import COLUMNS, DemoAnalysis, Result, rows, task1

log = logging.getLogger(__name__)


class Pictures(NamedTuple):
    """One image's pictures, as PIL images."""

    overlay: Any  # the input and its attribution overlays, side by side
    chart: Any  # the frequency bands' drops of the fake logit
    spectrum: Any  # the input's log-magnitude spectrum


def pictures(result: Result) -> Pictures:
    """The pictures of one scored image (:mod:`pixelproof.attribution.plots`)."""
    from pixelproof.attribution.plots import attribution_panels, band_chart, spectrum

    bands = result.attribution.bands
    return Pictures(
        attribution_panels(result.input, result.attribution),
        band_chart(bands, f"{result.name}: fake logit {bands.logit:+.2f}"),
        spectrum(result.input),
    )


def summary(results: Sequence[Result], notes: Sequence[str], threshold: float) -> str:
    """The upload's summary in Markdown: how many fake and real, the files not read, notes."""
    good = [r for r in results if r.error is None]
    bad = [r for r in results if r.error is not None]
    lines = []
    if good:
        fake = sum(r.verdict == "fake" for r in good)
        lines.append(
            f"Analysed {len(good)} image{'s' * (len(good) != 1)}: {fake} fake, "
            f"{len(good) - fake} real (p(fake) >= {threshold:.3f}: fake)."
        )
    if bad:
        lines.append(f"**Could not read {len(bad)} file{'s' * (len(bad) != 1)}:**")
        lines += [f"- `{r.name}`: {r.error}" for r in bad]
    if good:
        lines += [""] + list(notes)
    return "\n".join(lines)


def describe(result: Result | None, analysis: DemoAnalysis) -> str:
    """The verdict panel of one image, in Markdown."""
    if result is None:
        return ""
    detector, size = analysis.detector, analysis.detector.image_size
    index = "no Task-1 index" if result.index is None else f"index {result.index}"
    lines = [
        f"## {result.verdict.upper()}: p(fake) = {result.p_fake:.3f}",
        f"`{result.name}` ({index}), seen at {size}x{size} ({detector.resize_mode}); fake "
        f"when p(fake) >= {detector.threshold:.3f}, {analysis.threshold_source}.",
    ]
    if analysis.gauge:
        from pixelproof.attacks.spec import attack_spec, format_eps

        gauge = analysis.gauge
        attack = attack_spec({**gauge["attack"], "eps": gauge["max_eps"]})
        name = f"{attack.name.upper()}-{attack.steps}"
        if result.flip_eps is None:
            flips = f"{name} does not flip it within eps {format_eps(attack.eps)}"
        else:
            flips = f"{name} flips it at eps {format_eps(result.flip_eps)} (L-inf, 8-bit levels)"
        lines.append(f"\n**Robustness:** {flips}.")
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


def describe_artifacts(result: Result | None) -> str:
    """The artifacts CLIP found in one image, in Markdown ("" without a scorer)."""
    if result is None or not result.artifacts:
        return ""
    lines = ["**Artifacts (CLIP zero-shot):**"]
    for a in result.artifacts:
        lines.append(f"- {a['name']}: {a['score']:.2f}, {a['region']} (box {a['box']})")
    return "\n".join(lines)


def table_label(gauge: dict | None) -> str:
    label = "All images (sort from a column's menu)"
    if gauge:
        from pixelproof.attacks.spec import format_eps

        label += (
            "; flip_eps_255: the smallest PGD eps (in 1/255) that flips the verdict, blank "
            f"when none up to {format_eps(gauge['max_eps'])} does"
        )
    return label


def header(analysis: DemoAnalysis) -> str:
    detector = analysis.detector
    return (
        f"# pixelproof: is this image real or generated?\n"
        f"Detector `{Path(analysis.cfg.ckpt_path).name}` (images brought to "
        f"{detector.image_size}x{detector.image_size} by {detector.resize_mode}; fake when "
        f"p(fake) >= {detector.threshold:.3f}, {analysis.threshold_source}). Drop one image or "
        "several, of any format, size and mode."
    )


def page(analysis: DemoAnalysis):
    """The Gradio page over ``analysis``."""
    gr = gradio()

    def detail(results: list, position) -> tuple:
        chosen = next((r for r in results if str(r.position) == str(position)), None)
        if chosen is None:
            return "", None, None, None, ""
        return (describe(chosen, analysis), *pictures(chosen), describe_artifacts(chosen))

    def on_upload(files, progress=gr.Progress()) -> tuple:  # noqa: B008 (Gradio's way)
        empty = gr.Dropdown(choices=[], value=None)
        if not files:
            return [], "", None, None, empty, "", None, None, None, ""
        paths = [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]
        try:
            progress(0, desc="Scoring and attributing")
            results, notes = analysis.analyse(
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

            table = pd.DataFrame(rows(results), columns=COLUMNS)
            json_file = Path(tempfile.mkdtemp(prefix="pixelproof-")) / "predictions.json"
            json_file.write_text(task1(results))
        choices = [(f"{r.name} ({r.verdict} {r.p_fake:.2f})", r.position) for r in good]
        first = good[0].position if good else None
        return (
            results,
            summary(results, notes, analysis.detector.threshold),
            table,
            str(json_file) if json_file else None,
            gr.Dropdown(choices=choices, value=first),
            *detail(results, first),
        )

    with gr.Blocks(title="pixelproof") as blocks:
        results = gr.State([])
        gr.Markdown(header(analysis))
        files = gr.File(file_count="multiple", label="Images", elem_id="upload")
        status = gr.Markdown(elem_id="status")
        with gr.Row():
            table = gr.Dataframe(
                headers=COLUMNS,
                label=table_label(analysis.gauge),
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
            spectrum = gr.Image(label="Spectrum (log magnitude)", type="pil", elem_id="spectrum")
        artifacts = gr.Markdown(elem_id="artifacts", visible=analysis.scorer is not None)
        shown = [verdict, overlay, chart, spectrum, artifacts]
        files.change(on_upload, files, [results, status, table, download, choice, *shown])
        choice.input(detail, [results, choice], shown)
    return blocks


def launch(analysis: DemoAnalysis, **kwargs):
    """Serve the page (Gradio's ``launch`` arguments: port, file size, thread lock ...)."""
    gr = gradio()
    font = ["ui-sans-serif", "system-ui", "sans-serif"]
    theme = gr.themes.Default(font=font, font_mono=["ui-monospace", "monospace"])
    return page(analysis).launch(theme=theme, **kwargs)


def gradio():
    """Gradio, imported on first use (no analytics: the demo must run offline)."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from pixelproof.utils.extras import require

    require("app", "gradio", what="the demo")
    import gradio

    return gradio
