"""Which frequencies a detector's verdict rests on: the drop of the fake logit when each radial
frequency band is removed from the image.

The 2D spectrum of each colour channel (``fft2``) is cut into ``bands`` rings of equal width in
radial frequency, from 0 to the corners of the spectrum (``sqrt(2)`` x Nyquist, 0.707
cycles/pixel). For every ring, the image without it (ring zeroed, inverse FFT, clipped to [0, 1];
the mean colour is always kept, see :func:`remove_band`) is scored again:
``drop = logit(image) - logit(image without the ring)``. A large positive drop: that band carries
the evidence that the image is fake; negative: removing it makes the image look more fake.
Up-sampling grids and over-smoothed textures of generators sit in the high bands; a detector that
reads them shows it here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from pixelproof.attacks.module_modes import eval_mode


def radial_frequency(height: int, width: int) -> torch.Tensor:
    """``[H, W]`` radial frequency in cycles/pixel of every ``fft2`` coefficient (unshifted)."""
    fy = torch.fft.fftfreq(height).view(-1, 1)
    fx = torch.fft.fftfreq(width).view(1, -1)
    return torch.sqrt(fy**2 + fx**2)


def band_edges(height: int, width: int, bands: int = 8) -> list[float]:
    """The ``bands + 1`` ring radii (cycles/pixel), equally spaced from 0 to the spectrum's
    largest radial frequency."""
    if bands < 1:
        raise ValueError(f"bands={bands}: at least one frequency band")
    top = float(radial_frequency(height, width).max())
    return [top * i / bands for i in range(bands + 1)]


def band_of(radius: float, edges: Sequence[float]) -> int:
    """The band that holds radial frequency ``radius`` (the last band includes its top edge)."""
    for i in range(len(edges) - 1):
        if radius < edges[i + 1]:
            return i
    return len(edges) - 2


def band_masks(height: int, width: int, bands: int = 8) -> torch.Tensor:
    """``[bands, H, W]`` booleans over the ``fft2`` coefficients: every coefficient in exactly one
    band. Rings are symmetric in frequency, so a masked spectrum stays that of a real image."""
    radius = radial_frequency(height, width)
    edges = band_edges(height, width, bands)
    index = torch.full(radius.shape, bands - 1, dtype=torch.long)
    for i in reversed(range(bands - 1)):
        index[radius < edges[i + 1]] = i
    return torch.stack([index == i for i in range(bands)])


def remove_band(images: torch.Tensor, mask: torch.Tensor, keep_mean: bool = True) -> torch.Tensor:
    """``images`` ``[..., H, W]`` in [0, 1] with the frequencies in ``mask`` ``[H, W]`` zeroed,
    clipped back to [0, 1]. ``keep_mean``: never remove the mean colour (the DC coefficient):
    without it every pixel moves by the image's mean and the clip destroys all the rest."""
    removed = mask.clone()
    if keep_mean:
        removed[0, 0] = False
    spectrum = torch.fft.fft2(images.float())
    kept = spectrum * (~removed).to(images.device)
    return torch.fft.ifft2(kept).real.clamp(0.0, 1.0).to(images.dtype)


@dataclass(frozen=True)
class BandAttribution:
    """One image's frequency attribution. ``edges``: the ``len(drops) + 1`` ring radii in
    cycles/pixel; ``logit``: the fake logit of the whole image; ``drops[i]``: how much it falls
    when band ``i`` is removed."""

    edges: tuple[float, ...]
    logit: float
    drops: tuple[float, ...]

    @property
    def strongest(self) -> int:
        """The band whose removal lowers the fake logit most."""
        return max(range(len(self.drops)), key=self.drops.__getitem__)

    def labels(self) -> list[str]:
        return [f"{lo:.2f}-{hi:.2f}" for lo, hi in zip(self.edges, self.edges[1:])]

    def to_dict(self) -> list[dict]:
        return [
            {"band": i, "from": round(lo, 4), "to": round(hi, 4), "logit_drop": round(drop, 4)}
            for i, (lo, hi, drop) in enumerate(zip(self.edges, self.edges[1:], self.drops))
        ]


@torch.no_grad()
def band_attribution(
    model: nn.Module, images: torch.Tensor, bands: int = 8, batch_size: int = 64
) -> list[BandAttribution]:
    """The frequency attribution of every image of ``images`` ``[B,3,H,W]`` in [0, 1] for a
    detector (``[B,3,H,W]`` -> ``[B]`` fake logits), run in eval mode ``bands + 1`` times per
    image, ``batch_size`` images per forward pass."""
    height, width = images.shape[-2:]
    masks = band_masks(height, width, bands)
    edges = tuple(band_edges(height, width, bands))
    # [B, 1 + bands, 3, H, W]: each image, then each image without each band
    variants = torch.stack([images, *(remove_band(images, m) for m in masks)], dim=1)
    flat = variants.flatten(0, 1)
    with eval_mode(model):
        logits = torch.cat([model(chunk).float().reshape(-1) for chunk in flat.split(batch_size)])
    logits = logits.view(len(images), bands + 1).cpu()
    return [
        BandAttribution(edges, float(row[0]), tuple((row[0] - row[1:]).tolist())) for row in logits
    ]
