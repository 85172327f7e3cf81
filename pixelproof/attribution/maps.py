"""What a detector itself looks at: attributions of its fake logit, for any pixelproof detector.

Unlike the CLIP explainer (which names taxonomy classes), these explain the detector's own
verdict, with Captum:

- **Integrated Gradients** (Sundararajan et al. 2017), from a **blurred** copy of the image by
  default (``baseline=blur``; ``black`` is the other choice). Detectors of generated images key
  on fine detail (up-sampling grids, over-smoothed or repeated textures); a blurred copy keeps the
  scene's colours and layout and removes that detail, so the attribution answers "which pixels'
  fine structure makes this look fake". A black image is far from any training image, and the
  path from it mostly attributes brightness. The map is the channel sum: positive pushes towards
  fake; the heatmap shows its magnitude.
- **Grad-CAM** (Selvaraju et al. 2017) at the detector's last convolution stage: the last
  ``nn.Conv2d`` to run whose output is still a map of at least 2x2 cells, skipping a patch
  embedding (a conv on the image with kernel = stride > 1: a ViT's tokeniser, not a conv stage).
  A ViT (RINE) has none, so it gets no Grad-CAM; ``gradcam_layer=<module name>`` picks a layer.
  For ``wavefreq_resnet50`` at 32x32 the spatial ResNet ends at 1x1, so the FreqNet branch's
  last conv (4x4) is the one found.
- **Frequency bands**: see :mod:`pixelproof.attribution.bands`.

Maps are at the detector's input size (the image as the detector saw it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelproof.attacks.module_modes import eval_mode
from pixelproof.attribution.bands import BandAttribution, band_attribution
from pixelproof.attribution.settings import BASELINES, AttributionSettings

# ------------------------------------------------------------------------ Integrated Gradients


def baseline_images(images: torch.Tensor, kind: str = "blur", sigma: float = 2.0) -> torch.Tensor:
    """Integrated Gradients' baseline: a Gaussian-blurred copy of ``images`` (reflected borders)
    or black."""
    if kind == "black":
        return torch.zeros_like(images)
    if kind != "blur":
        raise ValueError(f"baseline={kind!r}: choose {' or '.join(BASELINES)}")
    from torchvision.transforms.v2.functional import gaussian_blur

    radius = max(1, int(3 * sigma + 0.5))
    radius = min(radius, (min(images.shape[-2:]) - 1) // 2) or 1  # reflect padding's limit
    return gaussian_blur(images, [2 * radius + 1] * 2, [sigma, sigma])


def integrated_gradients(
    model: nn.Module,
    images: torch.Tensor,
    baseline: str = "blur",
    sigma: float = 2.0,
    steps: int = 32,
    batch_size: int = 64,
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(maps [B, H, W], deltas [B])``: Captum's Integrated Gradients of the fake logit, summed
    over colour channels (positive: towards fake), and its completeness error (how far the
    attributions' sum is from ``logit(image) - logit(baseline)``)."""
    from captum.attr import IntegratedGradients

    with _differentiable(model, images) as x:
        start = baseline_images(x, baseline, sigma)
        attributions, delta = IntegratedGradients(_Logit(model)).attribute(
            x,
            baselines=start,
            n_steps=steps,
            internal_batch_size=max(batch_size, 1),
            return_convergence_delta=True,
        )
    return attributions.sum(1).detach().float().cpu(), delta.detach().float().cpu().reshape(-1)


# ------------------------------------------------------------------------------------ Grad-CAM


def is_patch_embedding(conv: nn.Conv2d, image_channels: int = 3) -> bool:
    """A conv that cuts the image into tokens (kernel = stride > 1 on the image's channels)."""
    kernel, stride = tuple(conv.kernel_size), tuple(conv.stride)
    return conv.in_channels == image_channels and kernel == stride and max(kernel) > 1


def conv_stage(model: nn.Module, example: torch.Tensor) -> tuple[str, nn.Module] | None:
    """``(name, module)`` of the detector's last convolution stage, found by one forward pass of
    ``example`` (``[B,3,H,W]``): the last ``nn.Conv2d`` to run whose output is at least 2x2 and
    that is not a patch embedding; ``None`` when there is none (a ViT)."""
    ran: list[tuple[str, nn.Conv2d, tuple[int, ...]]] = []
    hooks = [
        module.register_forward_hook(
            lambda m, args, out, name=name: ran.append((name, m, tuple(out.shape)))
        )
        for name, module in model.named_modules()
        if isinstance(module, nn.Conv2d)
    ]
    try:
        with torch.no_grad(), eval_mode(model):
            model(example[:1])
    finally:
        for hook in hooks:
            hook.remove()
    for name, module, shape in reversed(ran):
        if min(shape[-2:]) >= 2 and not is_patch_embedding(module, example.shape[1]):
            return name, module
    return None


def gradcam_layer(
    model: nn.Module, example: torch.Tensor, choice: str | None = "auto"
) -> tuple[str, nn.Module] | None:
    """The layer Grad-CAM runs at: ``auto`` (:func:`conv_stage`), ``None`` (none), or a module
    name of ``model``."""
    if choice in (None, "none", "null"):
        return None
    if choice == "auto":
        return conv_stage(model, example)
    modules = dict(model.named_modules())
    if choice not in modules:
        convs = [n for n, m in modules.items() if isinstance(m, nn.Conv2d)][-5:]
        raise ValueError(
            f"attribution.gradcam_layer={choice!r} is not a module of {type(model).__name__}; "
            f"pass auto, null or a module name, e.g. one of {convs}"
        )
    return choice, modules[choice]


def grad_cam(model: nn.Module, images: torch.Tensor, layer: nn.Module) -> torch.Tensor:
    """``[B, H, W]``: Captum's Grad-CAM of the fake logit at ``layer`` (ReLU'd: the regions that
    push towards fake), bilinearly up-sampled to the images' size."""
    from captum.attr import LayerAttribution, LayerGradCam

    with _differentiable(model, images) as x:
        cam = LayerGradCam(_Logit(model), layer).attribute(x, relu_attributions=True)
        cam = LayerAttribution.interpolate(cam, tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return cam.sum(1).detach().float().cpu().clamp_min(0)


# ----------------------------------------------------------------------------------- together


def heatmap(values: torch.Tensor, outlier_percent: float = 2.0) -> torch.Tensor:
    """An attribution map's magnitude scaled to [0, 1]: divided by its ``100 - outlier_percent``
    percentile and clipped (Captum's display default: a few extreme pixels would otherwise
    leave the rest of the map black), or by its maximum when that percentile is 0 or
    ``outlier_percent`` is 0. All zeros stays zeros."""
    magnitude = values.abs().float()
    top = magnitude.max()
    if outlier_percent > 0:
        level = torch.quantile(magnitude.flatten(), 1 - outlier_percent / 100)
        top = level if level > 0 else top
    return (magnitude / top).clamp(max=1) if top > 0 else torch.zeros_like(magnitude)


def grid(values: torch.Tensor, cells: int = 8) -> list[list[float]]:
    """``[H, W]`` map -> a ``cells x cells`` list of lists of its heatmap, area-averaged and
    scaled to [0, 1], rounded to 3 decimals (the form of the CLIP explainer's heatmaps)."""
    cells = min(cells, *values.shape)
    pooled = F.adaptive_avg_pool2d(values.abs().float()[None, None], cells)[0, 0]
    return [[round(float(v), 3) for v in row] for row in heatmap(pooled, outlier_percent=0)]


@dataclass(frozen=True)
class DetectorAttribution:
    """One image's attributions. ``integrated_gradients``: ``[H, W]`` signed channel sum;
    ``gradcam``: ``[H, W]`` (>= 0) or ``None``; ``bands``: the frequency attribution."""

    integrated_gradients: torch.Tensor
    ig_delta: float
    gradcam: torch.Tensor | None
    gradcam_layer: str | None
    bands: BandAttribution
    baseline: str

    def to_dict(self, cells: int = 8) -> dict:
        """For JSON: the heatmaps as small grids (Integrated Gradients as ``heatmap``)."""
        return {
            "heatmap": grid(self.integrated_gradients, cells),
            "heatmap_method": f"integrated_gradients (baseline: {self.baseline})",
            "ig_convergence_delta": round(self.ig_delta, 5),
            "gradcam": grid(self.gradcam, cells) if self.gradcam is not None else None,
            "gradcam_layer": self.gradcam_layer,
            "logit": round(self.bands.logit, 5),
            "bands": self.bands.to_dict(),
            "strongest_band": self.bands.strongest,
        }


def attribute(
    model: nn.Module, images: torch.Tensor, settings: AttributionSettings | None = None
) -> list[DetectorAttribution]:
    """Integrated Gradients, Grad-CAM (where there is a conv stage) and the frequency bands of
    every image in ``images`` ``[B,3,H,W]`` in [0, 1], for a detector mapping them to ``[B]``
    fake logits. The model runs in eval mode; every module's mode is restored after."""
    settings = settings or AttributionSettings()
    device = next((p.device for p in model.parameters()), images.device)
    images = images.to(device)
    ig, deltas = integrated_gradients(
        model,
        images,
        settings.baseline,
        settings.blur_sigma,
        settings.ig_steps,
        settings.batch_size,
    )
    layer = gradcam_layer(model, images, settings.gradcam_layer)
    cams = grad_cam(model, images, layer[1]) if layer else [None] * len(images)
    bands = band_attribution(model, images, settings.bands, settings.batch_size)
    return [
        DetectorAttribution(
            integrated_gradients=ig[i],
            ig_delta=float(deltas[i]),
            gradcam=cams[i],
            gradcam_layer=layer[0] if layer else None,
            bands=bands[i],
            baseline=settings.baseline,
        )
        for i in range(len(images))
    ]


# ------------------------------------------------------------------------------------ helpers


class _Logit(nn.Module):
    """The detector's fake logit as a ``[B]`` output, the form Captum attributes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x).reshape(-1)


@contextmanager
def _differentiable(model: nn.Module, images: torch.Tensor) -> Iterator[torch.Tensor]:
    """A copy of ``images`` that autograd accepts, gradients on (also inside
    ``torch.inference_mode`` or ``no_grad``), the model in eval mode with every module's own mode
    restored after."""
    with torch.inference_mode(False), torch.enable_grad(), eval_mode(model):
        yield images.detach().clone()  # an inference tensor cannot enter autograd: copy it out
