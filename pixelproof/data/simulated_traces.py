"""Simulated generator traces: hand-made pipelines that turn a clean 32x32 photo crop into a
"fake". They are simulations, not generators: the embedded dataset's fakes come from the trained
generator zoo (:mod:`pixelproof.generators`), and these can be mixed in as extra fake sources
(``data.embedded.simulations``).

Each pipeline is a small pure function ``(content, rng) -> fake``: ``content`` is a uint8
32x32x3 RGB crop of a real photograph, ``rng`` a ``numpy.random.Generator`` that supplies every
random choice (so a seeded rng gives byte-identical output), and the result is a uint8 32x32x3
array. Each one re-synthesises the content the way a family of real generators does and so
leaves that family's trace: the checkerboard of transposed convolutions, the blur and aliasing of
interpolating decoders, the over-smoothed texture of denoisers, the spectral peaks of generator
fingerprints. Strengths are drawn per image so that some fakes are easy and some are hard.

Every random pattern is shared by the three channels: a greyscale photograph stays greyscale, so
"grey image with colour noise" is never a shortcut to the label.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image
from scipy import ndimage

SIZE = 32

Simulation = Callable[[np.ndarray, np.random.Generator], np.ndarray]


def _check(content: np.ndarray) -> np.ndarray:
    """Validate the input and return it as float64 (exact arithmetic, reproducible rounding)."""
    if content.shape != (SIZE, SIZE, 3) or content.dtype != np.uint8:
        raise ValueError(
            f"expected a uint8 array of shape ({SIZE}, {SIZE}, 3), got {content.dtype} "
            f"{content.shape}"
        )
    return content.astype(np.float64)


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _box_downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Area-average ``factor`` x ``factor`` blocks of an HxWxC float array."""
    h, w, c = x.shape
    return x.reshape(h // factor, factor, w // factor, factor, c).mean(axis=(1, 3))


def _conv_transpose_x2(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Stride-2 transposed convolution with a 4x4 kernel, same for every channel.

    The scatter-add form of ``torch.nn.functional.conv_transpose2d(stride=2, padding=1)``:
    input pixel (i, j) adds ``x[i, j] * kernel`` at output (2i + ky - 1, 2j + kx - 1). The input
    is replicate-padded first so the border rows get as many contributions as the inside ones
    (zero padding would darken the frame, a trace no real generator has).
    """
    n = x.shape[0]
    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)), mode="edge")
    full = np.zeros((2 * n + 6, 2 * n + 6, x.shape[2]))
    for ky in range(4):
        for kx in range(4):
            full[ky : ky + 2 * (n + 2) : 2, kx : kx + 2 * (n + 2) : 2] += kernel[ky, kx] * xp
    # Padded input index p = i + 1, so output o = 2i + k - 1 sits at full index o + 3.
    return full[3 : 3 + 2 * n, 3 : 3 + 2 * n]


# Bilinear x2 up-sampling as a 4-tap transposed-convolution kernel; each output pixel gets
# weights summing to 1, so an unperturbed kernel up-samples without any periodic pattern.
_BILINEAR_1D = np.array([0.25, 0.75, 0.75, 0.25])
_BILINEAR_2D = np.outer(_BILINEAR_1D, _BILINEAR_1D)


def tconv_upsample(content: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """GAN up-convolutions: stride-2 transposed convs with uneven kernels leave a checkerboard."""
    x = _check(content)
    factor = 2 if rng.random() < 0.7 else 4  # from 16x16 (one up-sampling) or 8x8 (two)
    smooth = _box_downsample(x, factor)
    # The up-sampled "features" are the pixels plus an offset, as a network's activations are
    # not zero where the image is black: the checkerboard then shows in dark regions too.
    offset = rng.uniform(32.0, 96.0)
    learned = smooth + offset
    while learned.shape[0] < SIZE:
        # A "learned" kernel: bilinear plus a per-image perturbation. Its four stride phases
        # then sum to slightly different gains, which is exactly what makes the checkerboard;
        # renormalising to a total of 4 (= stride^2) keeps the mean brightness.
        kernel = _BILINEAR_2D + rng.normal(0.0, rng.uniform(0.006, 0.025), size=(4, 4))
        kernel *= 4.0 / kernel.sum()
        learned = _conv_transpose_x2(learned, kernel)
        smooth = _conv_transpose_x2(smooth, _BILINEAR_2D)
    # A GAN's feature maps carry fine detail through the up-sampling, so its images are not
    # blurry: put back part of the detail the low resolution lost. What is left is mostly the
    # checkerboard, not blur, which smooth real photographs have too.
    return _to_uint8(learned - offset + rng.uniform(0.3, 0.9) * (x - smooth))


_INTERPOLATIONS = (Image.Resampling.NEAREST, Image.Resampling.BILINEAR, Image.Resampling.BICUBIC)


def interp_upsample(content: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Interpolating decoders: a low-resolution image up-sampled back, blurred or aliased."""
    _check(content)
    mode = _INTERPOLATIONS[rng.choice(len(_INTERPOLATIONS), p=[0.2, 0.4, 0.4])]
    # Nearest-neighbour from very low resolutions is blocky beyond any real model; keep it >= 12.
    low = int(rng.integers(12 if mode == Image.Resampling.NEAREST else 8, 21))
    img = Image.fromarray(content).resize((low, low), Image.Resampling.BOX)
    return np.asarray(img.resize((SIZE, SIZE), mode), dtype=np.uint8).copy()


def _bilateral(
    x: np.ndarray, sigma_space: float, sigma_range: float, radius: int = 2
) -> np.ndarray:
    """Bilateral filter: neighbours weigh by distance and by likeness (on the channel mean, so
    a grey image stays grey). Texture finer than ``sigma_range`` is flattened, edges survive."""
    pad = np.pad(x, ((radius, radius), (radius, radius), (0, 0)), mode="reflect")
    grey = x.mean(axis=2, keepdims=True)
    total = np.zeros_like(x)
    weights = np.zeros_like(grey)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            shifted = pad[radius + dy : radius + dy + SIZE, radius + dx : radius + dx + SIZE]
            w = np.exp(
                -(dy * dy + dx * dx) / (2 * sigma_space**2)
                - (shifted.mean(axis=2, keepdims=True) - grey) ** 2 / (2 * sigma_range**2)
            )
            total += w * shifted
            weights += w
    return total / weights


def smooth_resynth(content: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Diffusion/denoiser output: over-smoothed texture, flattened tones, faint structured noise."""
    x = _check(content)
    kind = rng.integers(3)
    if kind == 0:
        x = ndimage.gaussian_filter(x, sigma=(rng.uniform(0.7, 1.4),) * 2 + (0,))
    elif kind == 1:
        x = ndimage.median_filter(x, size=(3, 3, 1), mode="reflect")
    else:
        x = _bilateral(x, sigma_space=rng.uniform(1.0, 2.0), sigma_range=rng.uniform(25.0, 60.0))
    if rng.random() < 0.5:
        # Tone flattening: fewer distinct levels, like a denoiser snapping to smooth gradients.
        step = float(rng.choice([4.0, 6.0, 8.0]))
        x = np.round(x / step) * step
    # Faint noise with a fixed structure (diagonal streaks: a box blur along one diagonal), the
    # residue a sampler leaves; shared by the channels.
    noise = rng.normal(0.0, 1.0, size=(SIZE, SIZE))
    noise = sum(np.roll(noise, (k, k), axis=(0, 1)) for k in range(3)) / np.sqrt(3.0)
    x = x + rng.uniform(2.5, 5.0) * noise[:, :, None]
    return _to_uint8(x)


# The fingerprint: a few fixed high spatial frequencies, each with its fixed phase (cycles per
# pixel, on the 32-point FFT grid so they are exact spectral peaks). A real generator leaves the
# same peaks, anchored to its pixel grid, in every image it makes; only how strongly each one
# shows varies from image to image.
_FINGERPRINT = (
    # (fy, fx, phase)
    (0.5, 0.5, 0.0),
    (0.0, 0.5, np.pi),
    (0.25, 0.25, np.pi / 4),
    (0.375, -0.125, -np.pi / 3),
)


def spectral_peaks(content: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Generator fingerprints: a faint fixed periodic pattern, i.e. a few peaks in the spectrum."""
    x = _check(content)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    pattern = np.zeros((SIZE, SIZE))
    for fy, fx, phase in _FINGERPRINT:
        weight = rng.uniform(0.2, 1.0)
        pattern += weight * np.cos(2 * np.pi * (fy * yy + fx * xx) + phase)
    # Peak-to-peak amplitude of 5-12 grey levels, whatever the mix.
    pattern *= rng.uniform(5.0, 12.0) / np.ptp(pattern)
    return _to_uint8(x + pattern[:, :, None])


SIMULATIONS: dict[str, Simulation] = {
    "tconv_upsample": tconv_upsample,
    "interp_upsample": interp_upsample,
    "smooth_resynth": smooth_resynth,
    "spectral_peaks": spectral_peaks,
}
