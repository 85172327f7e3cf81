"""Pictures of a detector's attributions: heatmap overlays, the frequency-band bar chart and the
image's spectrum, as PIL images (``pixelproof.explain`` saves them as PNG, the demo shows them).

Matplotlib draws without pyplot (a ``Figure`` on an Agg canvas): no global state, so the demo's
worker threads can draw at once.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from pixelproof.attribution.bands import BandAttribution
from pixelproof.attribution.maps import DetectorAttribution, heatmap

PANEL = 192  # side of each square panel, in pixels (a 32x32 image is shown 6x, nearest)


def to_pil(image: torch.Tensor) -> Image.Image:
    """``[3, H, W]`` in [0, 1] -> an RGB PIL image."""
    array = (image.detach().float().clamp(0, 1) * 255).round().byte().permute(1, 2, 0)
    return Image.fromarray(array.cpu().numpy())


def _colour(values: np.ndarray, cmap: str) -> np.ndarray:
    """``[H, W]`` in [0, 1] -> ``[H, W, 3]`` floats in [0, 1] through a matplotlib colormap."""
    import matplotlib

    return matplotlib.colormaps[cmap](np.clip(values, 0, 1))[..., :3]


def overlay(
    image: torch.Tensor, heat: torch.Tensor, size: int = PANEL, cmap: str = "inferno"
) -> Image.Image:
    """The image with ``heat`` (``[H, W]`` in [0, 1]) laid over it: each pixel blends towards the
    colormap as much as its heat (the image stays visible where there is no attribution)."""
    rgb = image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    h = heat.detach().float().cpu().numpy()
    alpha = 0.25 + 0.6 * h[..., None]
    blended = (1 - alpha) * rgb + alpha * _colour(h, cmap)
    picture = Image.fromarray((blended * 255).round().astype(np.uint8))
    return picture.resize((size, size), Image.Resampling.NEAREST)


def _labelled(picture: Image.Image, label: str) -> Image.Image:
    width, height = picture.size
    out = Image.new("RGB", (width, height + 22), "white")
    out.paste(picture, (0, 22))
    ImageDraw.Draw(out).text((4, 4), label, fill="black", font=ImageFont.load_default())
    return out


def attribution_panels(
    image: torch.Tensor, attribution: DetectorAttribution, size: int = PANEL
) -> Image.Image:
    """One picture: the image as the detector saw it, its Integrated Gradients overlay, and its
    Grad-CAM overlay when the detector has a conv stage, side by side and labelled."""
    panels = [
        _labelled(to_pil(image).resize((size, size), Image.Resampling.NEAREST), "input"),
        _labelled(
            overlay(image, heatmap(attribution.integrated_gradients), size),
            "Integrated Gradients",
        ),
    ]
    if attribution.gradcam is not None:
        panels.append(_labelled(overlay(image, heatmap(attribution.gradcam), size), "Grad-CAM"))
    gap = 6
    out = Image.new("RGB", (len(panels) * (size + gap) - gap, panels[0].height), "white")
    for i, panel in enumerate(panels):
        out.paste(panel, (i * (size + gap), 0))
    return out


def _figure_image(figure) -> Image.Image:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    return Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3].copy())


def band_chart(bands: BandAttribution, title: str = "") -> Image.Image:
    """A bar per frequency band: how much the fake logit drops without it (red: evidence for
    fake, blue: against)."""
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.2, 2.9), dpi=100, layout="constrained")
    axes = figure.add_subplot()
    drops = np.array(bands.drops)
    colours = ["#c0392b" if d > 0 else "#2e86c1" for d in drops]
    axes.bar(range(len(drops)), drops, color=colours)
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(drops)), bands.labels(), rotation=30, fontsize=7)
    axes.set_xlabel("radial frequency band (cycles/pixel)", fontsize=8)
    axes.set_ylabel("fake-logit drop\nwithout the band", fontsize=8)
    axes.tick_params(axis="y", labelsize=7)
    axes.set_title(title or f"fake logit {bands.logit:+.2f}", fontsize=9)
    return _figure_image(figure)


def spectrum(image: torch.Tensor, size: int = PANEL, cmap: str = "viridis") -> Image.Image:
    """The log-magnitude spectrum of the grey image, zero frequency in the centre."""
    grey = image.detach().float().mean(0).cpu()
    magnitude = torch.fft.fftshift(torch.fft.fft2(grey - grey.mean())).abs().log1p().numpy()
    top = magnitude.max()
    scaled = magnitude / top if top > 0 else magnitude
    picture = Image.fromarray((_colour(scaled, cmap) * 255).round().astype(np.uint8))
    return picture.resize((size, size), Image.Resampling.NEAREST)
